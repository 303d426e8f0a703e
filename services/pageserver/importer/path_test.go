package importer

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

func TestClassify(t *testing.T) {
	rel := func(spc, db, node pgtypes.Oid, fork pgtypes.ForkNumber, seg uint32) dataFile {
		return dataFile{kind: kindRel, seg: seg, rel: pgtypes.RelTag{SpcNode: spc, DbNode: db, RelNode: node, ForkNum: fork}}
	}
	base := pgtypes.DefaultTablespaceOid
	for _, tc := range []struct {
		name  string
		isDir bool
		want  dataFile
	}{
		{"base/5/16384", false, rel(base, 5, 16384, pgtypes.MainForkNum, 0)},
		{"./base/5/16384.2", false, rel(base, 5, 16384, pgtypes.MainForkNum, 2)},
		{"base/5/16384_fsm", false, rel(base, 5, 16384, pgtypes.FSMForkNum, 0)},
		{"base/5/16384_vm.1", false, rel(base, 5, 16384, pgtypes.VisibilityMapForkNum, 1)},
		{"base/5/16384_init", false, rel(base, 5, 16384, pgtypes.InitForkNum, 0)},
		{"global/1262", false, rel(pgtypes.GlobalTablespaceOid, 0, 1262, pgtypes.MainForkNum, 0)},
		{"global/pg_control", false, dataFile{kind: kindControl}},
		{"global/pg_filenode.map", false, dataFile{kind: kindRelMap, rel: pgtypes.RelTag{SpcNode: pgtypes.GlobalTablespaceOid}}},
		{"base/16384/pg_filenode.map", false, dataFile{kind: kindRelMap, rel: pgtypes.RelTag{SpcNode: base, DbNode: 16384}}},
		{"backup_label", false, dataFile{kind: kindBackupLabel}},
		{"pg_xact/0000", false, dataFile{kind: kindSlru, slru: keyspace.SlruClog}},
		{"pg_multixact/offsets/001A", false, dataFile{kind: kindSlru, slru: keyspace.SlruMultiXactOffsets, seg: 0x1A}},
		{"pg_multixact/members/0003", false, dataFile{kind: kindSlru, slru: keyspace.SlruMultiXactMembers, seg: 3}},
		{"pg_twophase/000002DC", false, dataFile{kind: kindTwoPhase, xid: 0x2DC}},
		{"pg_tblspc/16400", false, dataFile{kind: kindTablespace}},
		{"pg_tblspc/16400/PG_15_202209061/5/16384", false, dataFile{kind: kindTablespace}},
		{"base/5/", true, dataFile{kind: kindDir, db: true, rel: pgtypes.RelTag{SpcNode: base, DbNode: 5}}},
		{"pg_wal/", true, dataFile{kind: kindDir}},
		// Ignored: what PostgreSQL or pg_basebackup also leave out.
		{"base/5/t3_16384", false, dataFile{}},
		{"base/5/pg_internal.init", false, dataFile{}},
		{"base/5/PG_VERSION", false, dataFile{}},
		{"base/5/16384.0", false, dataFile{}},
		{"base/5/016384", false, dataFile{}},
		{"base/5/16384_foo", false, dataFile{}},
		{"base/pgsql_tmp/pgsql_tmp1.0", false, dataFile{}},
		{"pg_xact/000g", false, dataFile{}},
		{"pg_xact/0000.tmp", false, dataFile{}},
		{"pg_twophase/2DC", false, dataFile{}},
		{"postgresql.conf", false, dataFile{}},
		{"pg_wal/000000010000000000000001", false, dataFile{}},
		{"pg_subtrans/0000", false, dataFile{}},
		{"base/99999999999/1", false, dataFile{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, classify(tc.name, tc.isDir))
		})
	}
}

func TestParseBackupLabel(t *testing.T) {
	const label = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-01-01 00:00:00 UTC
LABEL: pg_basebackup base backup
START TIMELINE: 1
`
	l, err := parseBackupLabel([]byte(label))
	require.NoError(t, err)
	require.Equal(t, backupLabel{Start: lsn.MustParse("0/2000028"), Checkpoint: lsn.MustParse("0/2000060"), Timeline: 1}, l)

	for name, bad := range map[string]string{
		"no start":           "CHECKPOINT LOCATION: 0/2000060\n",
		"no checkpoint":      "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n",
		"bad lsn":            "START WAL LOCATION: zz (file x)\nCHECKPOINT LOCATION: 0/2000060\n",
		"checkpoint < start": "START WAL LOCATION: 0/3000028 (file x)\nCHECKPOINT LOCATION: 0/2000060\n",
		"bad timeline":       "START WAL LOCATION: 0/2000028 (file x)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: x\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseBackupLabel([]byte(bad))
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func FuzzParseBackupLabel(f *testing.F) {
	f.Add([]byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n"))
	f.Add([]byte("CHECKPOINT LOCATION: 0/0\r\nSTART WAL LOCATION: 0/0\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseBackupLabel(b)
		if err == nil && (!l.Start.IsValid() || l.Checkpoint < l.Start || l.Timeline == 0) {
			t.Fatalf("accepted an inconsistent label %+v", l)
		}
	})
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"base/5/16384_vm.3", "global/pg_control", "pg_xact/00AB", "pg_twophase/000002DC", "pg_tblspc/1/x", "./base/1/"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, name string, isDir bool) {
		d := classify(name, isDir)
		switch d.kind {
		case kindRel:
			if !d.rel.ForkNum.Valid() || d.rel.RelNode == 0 || uint64(d.seg)*pgtypes.RelSegSize >= 1<<32 {
				t.Fatalf("%q: bad relation file %+v", name, d)
			}
		case kindSlru:
			if !d.slru.Valid() {
				t.Fatalf("%q: bad SLRU %+v", name, d)
			}
		}
	})
}
