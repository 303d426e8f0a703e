package pgproxy

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/pgtest"
)

// TestPsqlFullbackupBoots: a data directory that went through the fake
// pageserver's GetBaseBackup stream, pgproxy's CopyOut and `psql -c
// "fullbackup ..." -o x.tar` boots a vanilla PostgreSQL 15 with the data
// intact. (The fake serves a tar of a cleanly stopped real cluster; with the
// real pageserver the tar is its D11 fullbackup.)
func TestPsqlFullbackupBoots(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	pg.Exec(t, "postgres", "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 4242);")
	pg.Stop(t)
	archive := tarDir(t, pg.DataDir)

	e := startEnv(t, envOptions{})
	e.fake.SetBackup(archive)
	out := filepath.Join(t.TempDir(), "x.tar")
	msg, err := e.psql(e.token(auth.ScopeTenant, tenantA), "fullbackup "+tenantA+" "+timelineA, "-o", out)
	require.NoError(t, err, msg)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, archive, got)

	// Replace the cluster's directory with the tar's content and boot it.
	st, err := os.Stat(pg.DataDir)
	require.NoError(t, err)
	uid, gid := int(st.Sys().(*syscall.Stat_t).Uid), int(st.Sys().(*syscall.Stat_t).Gid)
	entries, err := os.ReadDir(pg.DataDir)
	require.NoError(t, err)
	for _, en := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(pg.DataDir, en.Name())))
	}
	untar(t, got, pg.DataDir, uid, gid)
	pg.Restart(t)
	require.Equal(t, "4242", pg.Query(t, "postgres", "SELECT count(*) FROM t"))
}

func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func untar(t *testing.T, data []byte, dir string, uid, gid int) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		require.NoError(t, err)
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(path, 0o700))
		case tar.TypeReg:
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			require.NoError(t, err)
			_, err = io.Copy(f, tr)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		default:
			continue
		}
		if os.Geteuid() == 0 {
			require.NoError(t, os.Lchown(path, uid, gid))
		}
	}
}
