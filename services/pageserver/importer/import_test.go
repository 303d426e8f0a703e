package importer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/services/pageserver/importer"
)

const testLabel = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n"

type tarFile struct {
	name string
	typ  byte
	data []byte
}

func makeTar(t testing.TB, files ...tarFile) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: f.typ, Mode: 0o600, Size: int64(len(f.data))}
		if f.typ == tar.TypeDir || f.typ == tar.TypeSymlink {
			h.Size, h.Mode = 0, 0o700
			if f.typ == tar.TypeSymlink {
				h.Linkname = "/somewhere"
			}
		}
		require.NoError(t, tw.WriteHeader(h))
		if h.Size > 0 {
			_, err := tw.Write(f.data)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return &buf
}

// TestImportRejects checks the errors of malformed or unsupported archives:
// each names its cause and the timeline stays empty.
func TestImportRejects(t *testing.T) {
	label := tarFile{"backup_label", tar.TypeReg, []byte(testLabel)}
	page := make([]byte, 8192)
	for _, tc := range []struct {
		name    string
		files   []tarFile
		opts    importer.Options
		want    error
		mention string
	}{
		{"user tablespace", []tarFile{label, {"pg_tblspc/16400", tar.TypeSymlink, nil}}, importer.Options{}, importer.ErrUnsupported, "pg_tblspc/16400"},
		{"no import LSN", []tarFile{{"base/1/1259", tar.TypeReg, page}}, importer.Options{}, importer.ErrNoImportLSN, "backup_label"},
		{"no pg_control", []tarFile{label, {"base/1/1259", tar.TypeReg, page}}, importer.Options{}, importer.ErrIncomplete, "pg_control"},
		{"bad label", []tarFile{{"backup_label", tar.TypeReg, []byte("LABEL: x\n")}}, importer.Options{}, importer.ErrCorrupt, "backup_label"},
		{"label vs At", []tarFile{label}, importer.Options{At: lsn.MustParse("0/3000000")}, importer.ErrNoImportLSN, "0/2000028"},
		{"bad relmap", []tarFile{label, {"base/1/pg_filenode.map", tar.TypeReg, make([]byte, 100)}}, importer.Options{}, importer.ErrCorrupt, "base/1/pg_filenode.map"},
		{"bad twophase", []tarFile{label, {"pg_twophase/000002DC", tar.TypeReg, make([]byte, 100)}}, importer.Options{}, importer.ErrCorrupt, "pg_twophase/000002DC"},
		{"bad control", []tarFile{label, {"global/pg_control", tar.TypeReg, make([]byte, 8192)}}, importer.Options{}, nil, "global/pg_control"},
		{"oversized SLRU", []tarFile{label, {"pg_xact/0000", tar.TypeReg, make([]byte, 33*8192)}}, importer.Options{}, importer.ErrCorrupt, "pg_xact/0000"},
		{"duplicate", []tarFile{label, {"base/1/1259", tar.TypeReg, page}, {"base/1/1259", tar.TypeReg, page}}, importer.Options{}, importer.ErrCorrupt, "base/1/1259"},
		{"hard link", []tarFile{label, {"base/1/1259", tar.TypeLink, nil}}, importer.Options{}, importer.ErrUnsupported, "base/1/1259"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tl := e.newTimeline()
			_, err := importer.ImportBaseBackup(context.Background(), tl, makeTar(t, tc.files...), tc.opts)
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			require.Contains(t, err.Error(), tc.mention)
			require.Equal(t, lsn.Invalid, tl.LastRecordLSN(), "nothing stored")
		})
	}
}

// TestBootstrap runs initdb, imports the cluster, and boots a fullbackup of
// the new timeline with vanilla PostgreSQL.
func TestBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("runs initdb and PostgreSQL")
	}
	ref := pgtest.Start(t, bootOptions) // makes sure the unprivileged user exists
	ref.Stop(t)
	scratch, err := os.MkdirTemp("", "strata-importer-initdb-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(scratch) })
	require.NoError(t, os.Chmod(scratch, 0o755))

	e := newEnv(t, newRedoPool(t, false))
	tl := e.newTimeline()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := importer.Bootstrap(ctx, tl, ref.BinDir, scratch, importer.BootstrapOptions{RunAs: ref.User, Superuser: ref.User, Logger: testLogger()})
	require.NoError(t, err)
	t.Logf("bootstrapped at %s: %d databases, %d relation forks, %d blocks in %s; last_record_lsn %s",
		res.At, res.Databases, res.Relations, res.Blocks, res.Elapsed, tl.LastRecordLSN())
	require.False(t, res.FromBackup)
	require.Equal(t, res.At, res.CheckpointLSN)
	require.Greater(t, tl.LastRecordLSN(), res.At, "the shutdown checkpoint record is ingested")
	require.Equal(t, res.At, tl.PrevRecordLSN())
	left, err := os.ReadDir(scratch)
	require.NoError(t, err)
	require.Empty(t, left, "the initdb directory is removed")

	dst := bootFullbackup(t, tl, tl.LastRecordLSN())
	dst.Exec(t, "postgres", "CREATE TABLE hello (a int PRIMARY KEY); INSERT INTO hello SELECT generate_series(1, 1000);")
	require.Equal(t, "1000", dst.Query(t, "postgres", "SELECT count(*) FROM hello"))
	require.Equal(t, "postgres\ntemplate0\ntemplate1", dst.Query(t, "postgres", "SELECT datname FROM pg_database ORDER BY 1"))
	amcheck(t, dst)
}
