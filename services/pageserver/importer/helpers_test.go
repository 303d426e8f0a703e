package importer_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
	"github.com/stratadb/strata/services/pageserver/timeline"
	"github.com/stratadb/strata/services/walredo/pgext"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/redo"
)

// testLogger logs warnings and errors only.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

var (
	templateOnce sync.Once
	templateVal  *process.Template
	templateErr  error
)

// walredoTemplate builds the strata_walredo extension and its template once
// per test binary (as services/walredo/internal/walredotest does, which is
// internal to services/walredo).
func walredoTemplate(t *testing.T) *process.Template {
	t.Helper()
	templateOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "..", "walredo", "pgext")
		build, err := os.MkdirTemp("", "strata-importer-walredo-build-")
		if err != nil {
			templateErr = err
			return
		}
		defer os.RemoveAll(build)
		lib, err := pgext.Build(ctx, src, build, "")
		if err != nil {
			templateErr = fmt.Errorf("building strata_walredo (run make deps): %w", err)
			return
		}
		work := filepath.Join(os.TempDir(), "strata-walredo-test-"+strconv.Itoa(os.Geteuid()))
		templateVal, templateErr = process.PrepareTemplate(ctx, process.Config{
			ExtensionPath: lib, WorkDir: work, Logger: testLogger(), RequestTimeout: 60 * time.Second,
		})
	})
	require.NoError(t, templateErr)
	return templateVal
}

// newRedoPool returns a real walredo pool, closed at the end of the test.
func newRedoPool(t *testing.T, walLogHints bool) redo.Redoer {
	p, err := pool.New(walredoTemplate(t), pool.Config{MaxChildren: 2, MaxChildrenPerTenant: 2, WALLogHints: walLogHints, Logger: testLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// env holds what the timelines of one test share.
type env struct {
	t      testing.TB
	cache  *pagecache.Cache
	mem    *ephemeral.Memory
	redo   redo.Redoer
	tenant ids.TenantID
	root   string
}

func newEnv(t testing.TB, r redo.Redoer) *env {
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 4096 * pagecache.PageSize}, nil)
	require.NoError(t, err)
	// A budget of 16 chunks (4 MiB): layers keep their first chunks in
	// memory and write the rest to their ephemeral files, as a pageserver
	// does once ephemeral_memory_limit is reached.
	return &env{t: t, cache: cache, mem: ephemeral.NewMemory(16 * ephemeral.ChunkSize), redo: r, tenant: ids.NewTenantID(), root: t.TempDir()}
}

func (e *env) config() timeline.Config {
	return timeline.Config{CheckpointDistance: 64 << 20, CheckpointTimeout: time.Hour, WaitLSNTimeout: 3 * time.Second}
}

// newTimeline opens an empty root timeline.
func (e *env) newTimeline() *timeline.Timeline {
	id := ids.NewTimelineID()
	dir := filepath.Join(e.root, id.String())
	require.NoError(e.t, os.MkdirAll(dir, 0o755))
	tl, err := timeline.Open(context.Background(), timeline.Options{
		Tenant: e.tenant, ID: id, Dir: dir, Cache: e.cache, EphemeralMemory: e.mem, Redo: e.redo, Native: pgdatadir.Native{},
		Config: e.config(), Logger: testLogger(),
		Keyspace: func(ctx context.Context, tl *timeline.Timeline, at lsn.LSN) ([]keyspace.Key, error) {
			return pgdatadir.NewReader(tl).Keys(ctx, at)
		},
		PersistMetadata: func(lsn.LSN, lsn.LSN) error { return nil },
	})
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = tl.Close() })
	return tl
}

// branch creates a branch of tl at at.
func (e *env) branch(tl *timeline.Timeline, at lsn.LSN) *timeline.Timeline {
	id := ids.NewTimelineID()
	dir := filepath.Join(e.root, id.String())
	require.NoError(e.t, os.MkdirAll(dir, 0o755))
	br, err := tl.Branch(context.Background(), id, dir, at, func(lsn.LSN, lsn.LSN) error { return nil })
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = br.Close() })
	return br
}

// bootOptions are the settings of every server in these tests.
var bootOptions = pgtest.Options{Conf: map[string]string{
	"max_prepared_transactions": "10",
	"autovacuum":                "off",
	"wal_keep_size":             "4GB",
	"max_wal_size":              "4GB",
	"full_page_writes":          "on",
}}

// bootFullbackup writes a fullbackup of tl at at into the data directory of
// a fresh pgtest server (keeping its postgresql.conf and pg_hba.conf) and
// starts it: vanilla PostgreSQL 15 booting from Strata's archive.
func bootFullbackup(t *testing.T, tl *timeline.Timeline, at lsn.LSN) *pgtest.Server {
	t.Helper()
	dst := pgtest.Start(t, bootOptions)
	dst.Stop(t)
	st, err := os.Stat(dst.DataDir)
	require.NoError(t, err)
	sys := st.Sys().(*syscall.Stat_t)
	keep := map[string][]byte{}
	for _, name := range []string{"postgresql.conf", "pg_hba.conf"} {
		keep[name], err = os.ReadFile(filepath.Join(dst.DataDir, name))
		require.NoError(t, err)
	}
	entries, err := os.ReadDir(dst.DataDir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(dst.DataDir, e.Name())))
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := basebackup.Write(context.Background(), pw, pgdatadir.NewReader(tl), at, basebackup.Options{Full: true, ConfigFiles: keep})
		pw.CloseWithError(err)
		done <- err
	}()
	extractErr := extract(pr, dst.DataDir)
	_ = pr.CloseWithError(fmt.Errorf("extract stopped"))
	require.NoError(t, <-done)
	require.NoError(t, extractErr)
	require.NoError(t, filepath.Walk(dst.DataDir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(sys.Uid), int(sys.Gid))
	}))
	dst.Restart(t)
	return dst
}

// extract unpacks a tar stream into dir.
func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected tar entry type %c for %s", h.Typeflag, h.Name)
		}
	}
}

// fingerprintSQL prints, for the current database, every permanent table's
// and materialized view's row count and ordered md5, every sequence's
// state, and the large objects' digests. A sequence is compared by
// last_value + log_cnt: the value its last WAL record logged (nextval logs
// 32 values ahead), which is what any physical copy of the primary shows.
const fingerprintSQL = `
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(x::text, %L ORDER BY x::text), %L)) FROM %s x',
              c.oid::regclass::text, ',', '', c.oid::regclass)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1 \gexec
SELECT format('SELECT %L, last_value + log_cnt, is_called FROM %s', c.oid::regclass::text, c.oid::regclass)
FROM pg_class c WHERE c.relkind = 'S' ORDER BY 1 \gexec
SELECT 'lo', oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY 2;
`

// fingerprint returns the logical content of every database of s: the
// list of databases, prepared transactions, and per database its schema
// (pg_dump --schema-only) and data digest.
func fingerprint(t *testing.T, s *pgtest.Server) map[string]string {
	t.Helper()
	fp := map[string]string{}
	dbs := s.Query(t, "postgres", "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1")
	fp["databases"] = dbs
	fp["prepared"] = s.Query(t, "postgres", "SELECT gid, database, owner FROM pg_prepared_xacts ORDER BY 1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, db := range strings.Fields(dbs) {
		fp[db+"/data"] = s.Query(t, db, fingerprintSQL)
		if db == "template1" {
			continue
		}
		out, err := s.Run(ctx, "pg_dump", "--schema-only", "--no-comments", "--restrict-key=strata", "-d", db)
		require.NoError(t, err, "pg_dump %s", db)
		fp[db+"/schema"] = string(out)
	}
	return fp
}

// requireSameFingerprint fails with a readable diff.
func requireSameFingerprint(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing in the copy", k))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s differs:\n%s", k, lineDiff(w, g)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in the copy", k))
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("%s: fingerprint differs from the primary's:\n%s", what, strings.Join(diffs, "\n"))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		count[l]--
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if count[l] > 0 {
			fmt.Fprintf(&b, "- %s\n", l)
			count[l]--
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if count[l] < 0 {
			fmt.Fprintf(&b, "+ %s\n", l)
			count[l]++
		}
	}
	return b.String()
}

// amcheck runs pg_amcheck --heapallindexed over every database of s.
func amcheck(t *testing.T, s *pgtest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := s.Run(ctx, "pg_amcheck", "--install-missing", "--heapallindexed", "--all")
	require.NoError(t, err, "pg_amcheck:\n%s", out)
}
