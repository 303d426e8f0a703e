package importer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/importer"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
)

// controlFile builds a valid PostgreSQL 15 pg_control (pg15-formats §5.1).
func controlFile(state uint32, checkPoint lsn.LSN, cp rmgr.CheckPoint) []byte {
	b := make([]byte, basebackup.ControlFileSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], 7712168714569648973)
	le.PutUint32(b[8:], basebackup.ControlVersion)
	le.PutUint32(b[12:], pgtypes.CatalogVersion)
	le.PutUint32(b[16:], state)
	le.PutUint64(b[32:], uint64(checkPoint))
	copy(b[40:], cp.Encode())
	for off, v := range map[int]uint32{204: 8, 216: 8192, 220: 131072, 224: 8192, 228: 16 << 20, 232: 64, 236: 32, 240: 1996, 244: 2048} {
		le.PutUint32(b[off:], v)
	}
	le.PutUint64(b[208:], math.Float64bits(1234567.0))
	b[248] = 1
	le.PutUint32(b[288:], crc32.Checksum(b[:288], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func pages(n int, fill byte) []byte {
	b := make([]byte, n*8192)
	for i := range b {
		b[i] = fill + byte(i/8192)
	}
	return b
}

func twoPhaseFile(xid uint32) []byte {
	b := make([]byte, 80)
	le := binary.LittleEndian
	le.PutUint32(b, 0x57F94534)
	le.PutUint32(b[4:], uint32(len(b)))
	le.PutUint32(b[8:], xid)
	return b
}

// TestImportSynthetic imports a hand-made archive and reads every kind of
// key back through pgdatadir.Reader.
func TestImportSynthetic(t *testing.T) {
	start := lsn.MustParse("0/2000028")
	cp := rmgr.CheckPoint{Redo: start, ThisTimeLineID: 1, PrevTimeLineID: 1, FullPageWrites: true, NextXid: 800, NextOid: 24576, NextMulti: 1, OldestXid: 716, OldestXidDB: 1, OldestMulti: 1, OldestMultiDB: 1}
	archive := makeTar(t,
		tarFile{"backup_label", tar.TypeReg, []byte(testLabel)},
		tarFile{"PG_VERSION", tar.TypeReg, []byte("15\n")},
		tarFile{"base/", tar.TypeDir, nil},
		tarFile{"base/1/", tar.TypeDir, nil},
		tarFile{"base/1/pg_filenode.map", tar.TypeReg, make([]byte, 512)},
		tarFile{"base/1/1259", tar.TypeReg, pages(3, 1)},
		tarFile{"base/1/1259_fsm", tar.TypeReg, pages(1, 9)},
		tarFile{"base/1/16384", tar.TypeReg, pages(2, 20)}, // unlogged: main fork left out
		tarFile{"base/1/16384_init", tar.TypeReg, pages(1, 30)},
		tarFile{"base/1/t3_16390", tar.TypeReg, pages(1, 40)},
		tarFile{"base/5/", tar.TypeDir, nil}, // a database without relmap yet
		tarFile{"global/pg_filenode.map", tar.TypeReg, make([]byte, 512)},
		tarFile{"global/1262", tar.TypeReg, pages(1, 50)},
		tarFile{"pg_xact/0000", tar.TypeReg, pages(2, 60)},
		tarFile{"pg_multixact/offsets/0000", tar.TypeReg, pages(1, 70)},
		tarFile{"pg_multixact/members/0000", tar.TypeReg, pages(1, 80)},
		tarFile{"pg_twophase/00000300", tar.TypeReg, twoPhaseFile(0x300)},
		tarFile{"pg_wal/", tar.TypeDir, nil},
		tarFile{"global/pg_control", tar.TypeReg, controlFile(6, lsn.MustParse("0/2000060"), cp)},
	)
	e := newEnv(t, nil)
	tl := e.newTimeline()
	ctx := context.Background()
	res, err := importer.ImportBaseBackup(ctx, tl, archive, importer.Options{})
	require.NoError(t, err)
	require.Equal(t, start, res.At)
	require.Equal(t, lsn.MustParse("0/2000060"), res.CheckpointLSN)
	require.True(t, res.FromBackup)
	require.Equal(t, uint64(3+1+2+1+1), res.Blocks)
	require.Equal(t, start, tl.LastRecordLSN())

	r := pgdatadir.NewReader(tl)
	dbs, err := r.Databases(ctx, start)
	require.NoError(t, err)
	require.Equal(t, []basebackup.Database{{Spc: 1663, Db: 1, HasRelmap: true}, {Spc: 1663, Db: 5}, {Spc: 1664, Db: 0, HasRelmap: true}}, dbs)
	rels, err := r.Relations(ctx, start)
	require.NoError(t, err)
	tag := func(spc, db, node pgtypes.Oid, fork pgtypes.ForkNumber) pgtypes.RelTag {
		return pgtypes.RelTag{SpcNode: spc, DbNode: db, RelNode: node, ForkNum: fork}
	}
	require.ElementsMatch(t, []pgtypes.RelTag{
		tag(1663, 1, 1259, pgtypes.MainForkNum), tag(1663, 1, 1259, pgtypes.FSMForkNum),
		tag(1663, 1, 16384, pgtypes.InitForkNum), tag(1664, 0, 1262, pgtypes.MainForkNum),
	}, rels)
	n, err := r.RelSize(ctx, tag(1663, 1, 1259, pgtypes.MainForkNum), start)
	require.NoError(t, err)
	require.Equal(t, uint32(3), n)
	page := make([]byte, 8192)
	require.NoError(t, r.Page(ctx, tag(1663, 1, 1259, pgtypes.MainForkNum), 2, start, page))
	require.Equal(t, byte(3), page[0])
	seg, err := r.SlruSegment(ctx, keyspace.SlruClog, 0, start)
	require.NoError(t, err)
	require.Equal(t, pages(2, 60), seg)
	xids, err := r.TwoPhaseFiles(ctx, start)
	require.NoError(t, err)
	require.Equal(t, []uint64{0x300}, xids)
	got, err := r.Checkpoint(ctx, start)
	require.NoError(t, err)
	want := cp
	want.Redo = 0 // walingest's convention: no shutdown checkpoint ingested
	require.Equal(t, want, got)
}

// TestImportShutDownTar: an archive of a stopped cluster has no
// backup_label; the import LSN comes from Options and must match pg_control.
func TestImportShutDownTar(t *testing.T) {
	at := lsn.MustParse("0/1A2B3C0")
	cp := rmgr.CheckPoint{Redo: at, ThisTimeLineID: 1, PrevTimeLineID: 1, NextXid: 740, NextOid: 16384, NextMulti: 1, OldestXid: 716, OldestMulti: 1}
	files := func(state uint32, checkPoint lsn.LSN) []tarFile {
		return []tarFile{{"global/1262", tar.TypeReg, pages(1, 1)}, {"global/pg_control", tar.TypeReg, controlFile(state, checkPoint, cp)}}
	}
	for _, tc := range []struct {
		name       string
		state      uint32
		checkPoint lsn.LSN
		ok         bool
	}{
		{"shut down", 1, at, true},
		{"running", 6, at, false},
		{"other checkpoint", 1, at + 0x100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newEnv(t, nil).newTimeline()
			_, err := importer.ImportBaseBackup(context.Background(), tl, makeTar(t, files(tc.state, tc.checkPoint)...), importer.Options{At: at})
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, at, tl.LastRecordLSN())
			} else {
				require.ErrorIs(t, err, importer.ErrNoImportLSN)
			}
		})
	}
}

// BenchmarkImportBaseBackup measures the import of relation pages (the bulk
// of any archive) into an image layer.
//
// Baseline (2 shared cores, loaded machine, 16 MiB relation):
//
//	BenchmarkImportBaseBackup-2  5  100773390 ns/op  166.48 MB/s  1661931 B/op  2337 allocs/op
func BenchmarkImportBaseBackup(b *testing.B) {
	start := lsn.MustParse("0/2000028")
	cp := rmgr.CheckPoint{Redo: start, ThisTimeLineID: 1, PrevTimeLineID: 1, NextXid: 800, NextOid: 24576, NextMulti: 1, OldestXid: 716, OldestMulti: 1}
	const blocks = 2048 // 16 MiB
	archive := makeTar(b,
		tarFile{"backup_label", tar.TypeReg, []byte(testLabel)},
		tarFile{"base/1/16384", tar.TypeReg, pages(blocks, 1)},
		tarFile{"global/pg_control", tar.TypeReg, controlFile(6, lsn.MustParse("0/2000060"), cp)},
	).Bytes()
	e := newEnv(b, nil)
	b.SetBytes(blocks * 8192)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		tl := e.newTimeline()
		b.StartTimer()
		if _, err := importer.ImportBaseBackup(context.Background(), tl, bytes.NewReader(archive), importer.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
