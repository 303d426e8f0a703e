package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/lsn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestStartInsertWALAdvances is the acceptance test: a real server, a table,
// rows, and a WAL position that parses with internal/lsn and moves forward.
func TestStartInsertWALAdvances(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	require.Equal(t, "127.0.0.1", s.Host)
	require.NotZero(t, s.Port)
	require.DirExists(t, s.WALDir())
	require.Contains(t, s.Query(t, "postgres", "SELECT version()"), "PostgreSQL 15.")
	require.Equal(t, "replica", s.Query(t, "postgres", "SHOW wal_level"))
	require.Equal(t, "on", s.Query(t, "postgres", "SHOW fsync"))
	require.Equal(t, "10", s.Query(t, "postgres", "SHOW max_wal_senders"))
	require.Equal(t, "10", s.Query(t, "postgres", "SHOW max_replication_slots"))
	require.Equal(t, "127.0.0.1", s.Query(t, "postgres", "SHOW listen_addresses"))
	t.Logf("initdb chose %s", s.Query(t, "postgres", "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ') FROM pg_settings WHERE name IN ('max_connections', 'shared_buffers')"))
	require.Equal(t, s.User, s.Query(t, "postgres", "SELECT current_user"))
	require.Equal(t, "t", s.Query(t, "postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))

	before := s.CurrentWALLSN(t)
	require.True(t, before.IsValid())
	s.Exec(t, "postgres", `
		CREATE TABLE t (id int PRIMARY KEY, payload text);
		INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g;
		CREATE DATABASE other;`) // CREATE DATABASE cannot run in a multi-statement transaction: proves per-statement execution
	require.Equal(t, "1000", s.Query(t, "postgres", "SELECT count(*) FROM t"))
	after := s.CurrentWALLSN(t)
	require.Greater(t, after, before, "WAL did not advance: before %s after %s", before, after)
	// 1000 rows of >100 bytes must have produced at least that much WAL.
	require.Greater(t, after.Sub(before), uint64(100_000))

	// pg_current_wal_lsn text round-trips through internal/lsn.
	text := s.Query(t, "postgres", "SELECT pg_current_wal_lsn()")
	parsed, err := lsn.Parse(text)
	require.NoError(t, err)
	require.Equal(t, text, parsed.String())

	// Multi-row output: one row per line, columns separated by '|'.
	require.Equal(t, "1|a\n2|b", s.Query(t, "postgres", "SELECT * FROM (VALUES (1,'a'),(2,'b')) v ORDER BY 1"))
	require.Equal(t, "1", s.Query(t, "other", "SELECT 1"))

	// The TCP connection string works for pgx.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, s.ConnString("postgres"))
	require.NoError(t, err)
	res, err := conn.Exec(ctx, "SELECT count(*) FROM t").ReadAll()
	require.NoError(t, err)
	require.Equal(t, "1000", string(res[0].Rows[0][0]))
	require.NoError(t, conn.Close(ctx))

	// So does the replication connection string (pg_hba replication line).
	repl, err := pgconn.Connect(ctx, s.ReplicationConnString())
	require.NoError(t, err)
	res, err = repl.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	require.NoError(t, err)
	require.Len(t, res[0].Rows, 1)
	require.Equal(t, "1", string(res[0].Rows[0][1]), "timeline")
	require.NoError(t, repl.Close(ctx))
}

// TestChecksumsAndConf checks Options.Checksums and that Options.Conf is
// applied and overrides pgtest's own settings.
func TestChecksumsAndConf(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{
		WALLevel:  "logical",
		Checksums: true,
		Conf: map[string]string{
			"wal_compression": "lz4",
			"max_wal_senders": "7",             // overrides pgtest's 10
			"cluster_name":    `it's a \ test`, // quoting survives the conf file
		},
	})
	require.Equal(t, "on", s.Query(t, "postgres", "SHOW data_checksums"))
	require.Equal(t, "lz4", s.Query(t, "postgres", "SHOW wal_compression"))
	require.Equal(t, "logical", s.Query(t, "postgres", "SHOW wal_level"))
	require.Equal(t, "7", s.Query(t, "postgres", "SHOW max_wal_senders"))
	require.Equal(t, `it's a \ test`, s.Query(t, "postgres", "SHOW cluster_name"))

	// Run executes other PostgreSQL programs as the cluster's user: the
	// control file is readable only by that user when the test runs as root.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Run(ctx, "pg_controldata", s.DataDir)
	require.NoError(t, err)
	require.Regexp(t, `Data page checksum version:\s+1`, string(out))
	require.Contains(t, string(out), "in production")

	before := s.CurrentWALLSN(t)
	s.Exec(t, "postgres", "CREATE TABLE c AS SELECT g FROM generate_series(1, 100) g")
	after := s.CurrentWALLSN(t)
	require.Greater(t, after, before)

	// pg_waldump reads the cluster's WAL as the cluster's user.
	out, err = s.Run(ctx, "pg_waldump", "--path", s.WALDir(), "--start", before.String(), "--end", after.String())
	require.NoError(t, err)
	require.Contains(t, string(out), "rmgr: Heap")
	require.Contains(t, string(out), "rmgr: Transaction")

	// CHECKPOINT and a WAL switch: afterwards the insert position is at or
	// past what pg_switch_wal returned, and WAL keeps working.
	s.Checkpoint(t)
	require.Regexp(t, `^\d+$`, s.Query(t, "postgres", "SELECT checkpoints_req FROM pg_stat_bgwriter"))
	require.NotEqual(t, "0", s.Query(t, "postgres", "SELECT checkpoints_req FROM pg_stat_bgwriter"))
	switched := s.SwitchWAL(t)
	require.GreaterOrEqual(t, switched, after)
	next := s.CurrentWALLSN(t)
	require.GreaterOrEqual(t, next, switched)
	require.Equal(t, uint64(0), next.SegmentOffset(lsn.DefaultSegmentSize), "after a switch the write position is at a segment boundary (%s)", next)
}

// TestStopRestartPersists checks that Stop is idempotent and that committed
// data survives Stop + Restart.
func TestStopRestartPersists(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	s.Exec(t, "postgres", "CREATE TABLE p (v int); INSERT INTO p SELECT generate_series(1, 500)")
	lsnBefore := s.CurrentWALLSN(t)
	port := s.Port

	s.Stop(t)
	s.Stop(t) // idempotent
	require.NoFileExists(t, filepath.Join(s.DataDir, "postmaster.pid"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.Psql(ctx, "-X", "-c", "SELECT 1")
	require.ErrorIs(t, err, ErrCommand, "psql must fail while the server is stopped")

	s.Restart(t)
	require.Equal(t, port, s.Port)
	require.Equal(t, "500", s.Query(t, "postgres", "SELECT count(*) FROM p"))
	require.GreaterOrEqual(t, s.CurrentWALLSN(t), lsnBefore)

	s.Restart(t) // restart of a running server
	require.Equal(t, "125250", s.Query(t, "postgres", "SELECT sum(v) FROM p"))
}

// TestCrashRecovers kills the whole server with SIGKILL and checks that
// committed data survives crash recovery, and that Restart works even while
// the killed postmaster may linger as a zombie.
func TestCrashRecovers(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	s.Exec(t, "postgres", "CREATE TABLE k (v int); INSERT INTO k SELECT generate_series(1, 300)")
	pid, err := readPID(filepath.Join(s.DataDir, "postmaster.pid"))
	require.NoError(t, err)
	children := childrenOf(pid)
	require.NotEmpty(t, children, "a running postmaster has auxiliary processes")

	s.Crash(t)
	for _, p := range append(children, pid) {
		require.False(t, processAlive(p), "process %d survived Crash", p)
	}
	s.Crash(t) // no-op now
	s.Stop(t)  // no-op too

	s.Restart(t)
	require.Equal(t, "300", s.Query(t, "postgres", "SELECT count(*) FROM k"))
	require.Contains(t, readFrom(s.LogFile(), 0), "automatic recovery in progress")
}

func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlock, err := lockFile(ctx, path)
	require.NoError(t, err)

	// A second holder (another open file description) waits, and gives up
	// when its context ends.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	_, err = lockFile(short, path)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	got := make(chan error, 1)
	go func() {
		u, err := lockFile(ctx, path)
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second lock taken while the first is held: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	require.NoError(t, <-got)
}

func TestPsqlReturnsStdoutAndStderrInError(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	out, err := s.Psql(ctx, "-X", "-At", "-c", "SELECT current_database()")
	require.NoError(t, err)
	require.Equal(t, "postgres\n", string(out)) // PGDATABASE default

	_, err = s.Psql(ctx, "-X", "-v", "ON_ERROR_STOP=1", "-c", "SELECT * FROM no_such_table")
	require.ErrorIs(t, err, ErrCommand)
	require.Contains(t, err.Error(), `relation "no_such_table" does not exist`)

	// NOTICEs go to stderr and must not pollute Query results.
	require.Equal(t, "1", s.Query(t, "postgres", "DO $$BEGIN RAISE NOTICE 'hello'; END$$; SELECT 1"))

	_, err = s.Run(ctx, "../psql")
	require.ErrorIs(t, err, ErrBadOption)
	_, err = s.Run(ctx, "pg_controldata", "/nonexistent")
	require.ErrorIs(t, err, ErrCommand)
}

func TestStartFailureReportsServerLog(t *testing.T) {
	t.Parallel()
	ft := &fakeTB{TB: t}
	runFailing(ft, func() { Start(ft, Options{Conf: map[string]string{"shared_buffers": "nonsense"}}) })
	ft.runCleanups()
	require.True(t, ft.failed)
	require.Contains(t, ft.msg, "did not start")
	require.Contains(t, ft.msg, `invalid value for parameter "shared_buffers"`, "the server log tail must be in the failure")
	// The message names the log file; cleanup removed its cluster directory.
	m := regexp.MustCompile(`server log \((\S+)/postgres\.log\)`).FindStringSubmatch(ft.msg)
	require.NotNil(t, m, ft.msg)
	require.NoDirExists(t, m[1])
}

// TestPortTaken checks both port-race paths: Start's retry with a new port,
// and Restart's failure (with the reason) when its port stays taken.
func TestPortTaken(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	s.Stop(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(s.Port))
	require.NoError(t, err)
	defer l.Close()

	// Restart insists on its port and reports why it failed.
	ft := &fakeTB{TB: t}
	runFailing(ft, func() { s.Restart(ft) })
	require.True(t, ft.failed)
	require.Contains(t, ft.msg, "port already in use")

	// A start whose first port is taken moves on to a free one.
	taken := s.Port
	var picked []int
	pick := func() (int, error) {
		if len(picked) == 0 {
			picked = append(picked, taken)
			return taken, nil
		}
		p, err := FreePort()
		picked = append(picked, p)
		return p, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.mu.Lock()
	err = s.startOnFreePort(ctx, pick, t.Logf)
	s.mu.Unlock()
	require.NoError(t, err)
	require.Len(t, picked, 2)
	require.Equal(t, picked[1], s.Port)
	require.Equal(t, "1", s.Query(t, "postgres", "SELECT 1"))
	require.Equal(t, strconv.Itoa(s.Port), s.Query(t, "postgres", "SHOW port"))
}

// runFailing runs fn on its own goroutine, because a failing fakeTB ends
// the calling goroutine (as FailNow does), and waits for it.
func runFailing(ft *fakeTB, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func TestValidateOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		bad  []string
	}{
		{name: "zero", opts: Options{}},
		{name: "good", opts: Options{WALLevel: "logical", Conf: map[string]string{"wal_compression": "lz4", "auto_explain.log_min_duration": "0"}}},
		{name: "wal level", opts: Options{WALLevel: "archive"}, bad: []string{`WALLevel "archive"`}},
		{name: "key", opts: Options{Conf: map[string]string{"a b": "1", "x=y": "2"}}, bad: []string{`"a b"`, `"x=y"`}},
		{name: "newline", opts: Options{Conf: map[string]string{"work_mem": "1\nfsync=off"}}, bad: []string{"line break"}},
		{name: "initdb", opts: Options{InitdbArgs: []string{"-D", "/x", "--username=root"}}, bad: []string{`"-D"`, `"--username=root"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateOptions(tc.opts)
			if len(tc.bad) == 0 {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBadOption)
			for _, b := range tc.bad {
				require.Contains(t, err.Error(), b)
			}
		})
	}
}

func TestRenderConf(t *testing.T) {
	c := confSettings{
		port:       5555,
		socketDir:  "/tmp/x y",
		userConf:   map[string]string{"wal_level": "logical", "b": `q'\`, "a": "1"},
		initdbConf: "# initdb\nmax_connections = 100\n",
	}
	got := string(renderConf(c))
	require.True(t, strings.HasPrefix(got, "# initdb\nmax_connections = 100\n"+confMarker))
	require.Contains(t, got, "port = '5555'\n")
	require.Contains(t, got, "unix_socket_directories = '/tmp/x y'\n")
	require.Contains(t, got, "fsync = 'on'\n")
	// Default wal_level first, the user's override after it; user keys sorted.
	require.Less(t, strings.Index(got, "wal_level = 'replica'"), strings.Index(got, "wal_level = 'logical'"))
	require.Less(t, strings.Index(got, "a = '1'"), strings.Index(got, `b = 'q''\\'`))

	// Rendering again (new port) replaces pgtest's part instead of appending.
	c.initdbConf = got
	c.port = 6666
	again := string(renderConf(c))
	require.Equal(t, 1, strings.Count(again, confMarker))
	require.NotContains(t, again, "5555")
	require.Contains(t, again, "port = '6666'")

	c.walLevel = "minimal"
	require.Contains(t, string(renderConf(c)), "max_wal_senders = '0'")
}

func TestWALLevelMinimal(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{WALLevel: "minimal"})
	require.Equal(t, "minimal", s.Query(t, "postgres", "SHOW wal_level"))
	require.Equal(t, "0", s.Query(t, "postgres", "SHOW max_wal_senders"))
}

func TestQuoteConnValue(t *testing.T) {
	for in, want := range map[string]string{
		"postgres":  "postgres",
		"strata-pg": "strata-pg",
		"":          "''",
		"a b":       "'a b'",
		`it's`:      `'it\'s'`,
		`c:\x`:      `'c:\\x'`,
	} {
		require.Equal(t, want, quoteConnValue(in), in)
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	require.NoError(t, err)
	require.Greater(t, p, 0)
	require.Less(t, p, 65536)
}

func TestBinDir(t *testing.T) {
	dir, err := BinDir()
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(dir, "postgres"))

	t.Run("env override", func(t *testing.T) {
		t.Setenv("STRATA_PG_BIN", dir)
		got, err := BinDir()
		require.NoError(t, err)
		require.Equal(t, dir, got)
	})
	t.Run("env pointing nowhere", func(t *testing.T) {
		t.Setenv("STRATA_PG_BIN", t.TempDir())
		_, err := BinDir()
		require.ErrorIs(t, err, ErrNoPostgres)
	})
}

func TestLastLines(t *testing.T) {
	require.Equal(t, "c\nd", lastLines("a\nb\nc\nd\n", 2))
	require.Equal(t, "a", lastLines("a", 5))
	require.Equal(t, "", lastLines("", 5))
}

func TestReapLeftovers(t *testing.T) {
	t.Parallel()
	base, err := baseDir()
	require.NoError(t, err)
	binDir, err := BinDir()
	require.NoError(t, err)
	owner, err := resolveUser(context.Background(), base)
	require.NoError(t, err)

	// A directory owned by a process that no longer exists: a child that
	// already exited and was waited for.
	dead := deadPID(t)
	leftover, err := os.MkdirTemp(base, "pg-")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(leftover, "owner.pid"), []byte(strconv.Itoa(dead)+"\n"), 0o644))
	// A directory owned by this (live) process must stay.
	mine, err := os.MkdirTemp(base, "pg-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(mine) })
	require.NoError(t, os.WriteFile(filepath.Join(mine, "owner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644))

	// A running cluster whose test process died.
	orphan := Start(t, Options{})
	orphanDir := filepath.Dir(orphan.DataDir)
	pid, err := readPID(filepath.Join(orphan.DataDir, "postmaster.pid"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(orphanDir, "owner.pid"), []byte(strconv.Itoa(dead)+"\n"), 0o644))

	reapLeftovers(context.Background(), base, binDir, owner, t.Logf)
	require.NoDirExists(t, leftover)
	require.NoDirExists(t, orphanDir)
	require.False(t, processAlive(pid), "the orphan's postmaster must be stopped")
	require.DirExists(t, mine)
}

func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	require.NoError(t, err)
	_, err = p.Wait()
	require.NoError(t, err)
	return p.Pid
}

// fakeTB records a failure instead of failing the real test, so that
// Start's failure path can be checked.
type fakeTB struct {
	testing.TB
	failed   bool
	msg      string
	cleanups []func()
}

func (f *fakeTB) Helper()                         {}
func (f *fakeTB) Logf(format string, args ...any) { f.TB.Logf(format, args...) }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.failed = true
	f.msg += fmt.Sprintf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg += fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) { f.failed = true; f.msg += fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Failed() bool      { return f.failed }
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// BenchmarkStart measures Start (reported as start-ms/op) and a fast Stop;
// ns/op covers both. "template" copies the cached template cluster (the
// default), "fresh-initdb" is the baseline it replaces. Directories are
// removed by the cleanups at the end. Numbers measured on this machine are
// in the package report; on a loaded machine both grow with disk contention.
func BenchmarkStart(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"template", Options{}},
		{"fresh-initdb", Options{FreshInitdb: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var startTotal time.Duration
			for b.Loop() {
				began := time.Now()
				s := Start(b, bc.opts)
				startTotal += time.Since(began)
				s.Stop(b)
			}
			b.ReportMetric(float64(startTotal.Milliseconds())/float64(b.N), "start-ms/op")
		})
	}
}
