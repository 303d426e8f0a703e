package basebackup

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
)

// bootWorkload leaves a cluster with heap and index data, TOAST, a
// sequence, an unlogged table, a second database, multixacts, a committed
// and an aborted prepared transaction, and one left prepared.
const bootWorkload = `
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric);
INSERT INTO accounts SELECT g, md5(g::text), g * 1.25 FROM generate_series(1, 20000) g;
CREATE INDEX accounts_owner ON accounts (owner);
CREATE INDEX accounts_balance_brin ON accounts USING brin (balance);
CREATE TABLE docs (id serial PRIMARY KEY, body text);
INSERT INTO docs (body) SELECT repeat(md5(g::text), 400) FROM generate_series(1, 50) g;
CREATE SEQUENCE counter;
SELECT nextval('counter') FROM generate_series(1, 7);
CREATE UNLOGGED TABLE scratch (a int PRIMARY KEY);
INSERT INTO scratch SELECT generate_series(1, 100);
DELETE FROM accounts WHERE id % 10 = 0;
VACUUM accounts;
BEGIN;
SELECT id FROM accounts WHERE id <= 5 FOR KEY SHARE;
SAVEPOINT s1;
UPDATE accounts SET balance = balance + 1 WHERE id <= 5;
COMMIT;
BEGIN; INSERT INTO accounts VALUES (900001, 'committed-2pc', 1); PREPARE TRANSACTION 'gid_done'; COMMIT PREPARED 'gid_done';
BEGIN; INSERT INTO accounts VALUES (900002, 'aborted-2pc', 2); PREPARE TRANSACTION 'gid_undone'; ROLLBACK PREPARED 'gid_undone';
BEGIN; INSERT INTO accounts VALUES (900003, 'pending-2pc', 3); UPDATE accounts SET owner = 'locked' WHERE id = 1; PREPARE TRANSACTION 'gid_pending';
CREATE DATABASE other;
`

const otherWorkload = `
CREATE TABLE items (k text PRIMARY KEY, n int);
INSERT INTO items SELECT 'k' || g, g FROM generate_series(1, 3000) g;
CREATE INDEX items_n ON items USING hash (n);
`

// fingerprint returns, per database, each user table's row count and the
// md5 of its rows in order, plus sequence states.
func fingerprint(t *testing.T, s *pgtest.Server) map[string]string {
	t.Helper()
	fp := make(map[string]string)
	for _, db := range []string{"postgres", "other"} {
		tables := s.Query(t, db, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND relpersistence = 'p' ORDER BY 1")
		for _, tbl := range strings.Fields(tables) {
			fp[db+"."+tbl] = s.Query(t, db, fmt.Sprintf(
				"SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM %s x", tbl))
		}
		seqs := s.Query(t, db, "SELECT relname FROM pg_class WHERE relkind = 'S' ORDER BY 1")
		for _, seq := range strings.Fields(seqs) {
			fp[db+"."+seq] = s.Query(t, db, "SELECT last_value || ' ' || is_called FROM "+seq)
		}
	}
	return fp
}

func TestFullbackupBootsVanillaPostgres(t *testing.T) {
	for _, checksums := range []bool{false, true} {
		t.Run("checksums="+strconv.FormatBool(checksums), func(t *testing.T) {
			testBoot(t, checksums)
		})
	}
}

func testBoot(t *testing.T, checksums bool) {
	opts := pgtest.Options{Checksums: checksums, Conf: map[string]string{"max_prepared_transactions": "10"}}
	src := pgtest.Start(t, opts)
	src.Exec(t, "postgres", bootWorkload)
	src.Exec(t, "other", otherWorkload)
	// The subtransaction update above must have created a multixact.
	src.Checkpoint(t)
	require.NotEqual(t, "1", src.Query(t, "postgres", "SELECT next_multixact_id FROM pg_control_checkpoint()"))
	want := fingerprint(t, src)
	lastXid, err := strconv.ParseUint(src.Query(t, "postgres", "SELECT txid_current()"), 10, 64)
	require.NoError(t, err)
	src.Stop(t)

	source := &dirSource{dir: src.DataDir}
	defer source.Close()
	end, err := source.clusterEnd()
	require.NoError(t, err)
	at := end + 3*lsn.DefaultSegmentSize + 4242 // a backup LSN past the cluster's end

	dst := pgtest.Start(t, opts)
	dst.Stop(t)
	res := restoreBackup(t, dst.DataDir, source, at)
	require.Equal(t, lsn.LSN((uint64(at)/lsn.DefaultSegmentSize+1)*lsn.DefaultSegmentSize+40), res.CheckpointLSN)

	logStart := fileSize(t, dst.LogFile())
	dst.Restart(t)
	logText := readFrom(t, dst.LogFile(), logStart)
	t.Logf("booted server log:\n%s", logText)
	require.Contains(t, logText, "database system was shut down at", "server log:\n%s", logText)
	require.NotContains(t, logText, "redo starts", "server log:\n%s", logText)
	require.NotContains(t, logText, "not properly shut down", "server log:\n%s", logText)

	require.Equal(t, want, fingerprint(t, dst))
	require.Equal(t, "gid_pending", dst.Query(t, "postgres", "SELECT gid FROM pg_prepared_xacts"))
	require.Equal(t, "0", dst.Query(t, "postgres", "SELECT count(*) FROM scratch"), "unlogged table must be reset")
	nextXid, err := strconv.ParseUint(dst.Query(t, "postgres", "SELECT txid_current()"), 10, 64)
	require.NoError(t, err)
	require.Greater(t, nextXid, lastXid)
	// The booted server continues the WAL right after the checkpoint.
	require.Greater(t, dst.CurrentWALLSN(t), res.CheckpointLSN)
	require.Less(t, dst.CurrentWALLSN(t), res.CheckpointLSN+lsn.DefaultSegmentSize)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := dst.Run(ctx, "pg_amcheck", "--install-missing", "--heapallindexed", "--all")
	require.NoError(t, err, "pg_amcheck:\n%s", out)
	// The prepared transaction is still committable.
	dst.Exec(t, "postgres", "COMMIT PREPARED 'gid_pending'")
	require.Equal(t, "locked", dst.Query(t, "postgres", "SELECT owner FROM accounts WHERE id = 1"))

	if checksums {
		dst.Stop(t)
		out, err := dst.Run(ctx, "pg_checksums", "--check", "-D", dst.DataDir)
		require.NoError(t, err, "pg_checksums:\n%s", out)
		require.Contains(t, string(out), "Bad checksums:  0")
	}
}

// restoreBackup replaces dataDir's contents with a fullbackup of src at at,
// streamed through a pipe and extracted as it arrives, keeping dataDir's own
// postgresql.conf and pg_hba.conf (port and socket of that server) and its
// ownership.
func restoreBackup(t *testing.T, dataDir string, src Source, at lsn.LSN) Result {
	t.Helper()
	st, err := os.Stat(dataDir)
	require.NoError(t, err)
	sys := st.Sys().(*syscall.Stat_t)
	keep := map[string][]byte{}
	for _, name := range []string{"postgresql.conf", "pg_hba.conf"} {
		keep[name], err = os.ReadFile(filepath.Join(dataDir, name))
		require.NoError(t, err)
	}
	entries, err := os.ReadDir(dataDir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(dataDir, e.Name())))
	}

	pr, pw := io.Pipe()
	type written struct {
		res Result
		err error
	}
	done := make(chan written, 1)
	go func() {
		res, err := Write(context.Background(), pw, src, at, Options{Full: true, ConfigFiles: keep})
		pw.CloseWithError(err)
		done <- written{res, err}
	}()
	names := extract(t, pr, dataDir)
	_ = pr.Close()
	w := <-done
	require.NoError(t, w.err)
	require.Equal(t, "global/pg_control", names[len(names)-1], "pg_control must be the last entry")
	require.NoError(t, filepath.Walk(dataDir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(sys.Uid), int(sys.Gid))
	}))
	return w.res
}

// extract unpacks a tar stream into dir and returns the entry names.
func extract(t *testing.T, r io.Reader, dir string) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		require.NoError(t, err)
		names = append(names, strings.TrimSuffix(h.Name, "/"))
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(target, 0o700))
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			require.NoError(t, err)
			_, err = io.Copy(f, tr)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		default:
			t.Fatalf("unexpected tar entry type %c for %s", h.Typeflag, h.Name)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

func readFrom(t *testing.T, path string, off int64) string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b[off:])
}
