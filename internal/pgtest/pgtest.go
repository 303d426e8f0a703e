package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/internal/lsn"
)

// Options configures a cluster. The zero value is a wal_level=replica
// cluster without data checksums.
type Options struct {
	WALLevel   string            // "minimal", "replica" (default) or "logical"
	Checksums  bool              // initdb --data-checksums
	Conf       map[string]string // extra postgresql.conf settings, e.g. {"wal_compression":"lz4"}; they override pgtest's
	InitdbArgs []string          // extra initdb arguments (not -D or -U); implies FreshInitdb
	// FreshInitdb runs initdb for this cluster instead of copying the
	// machine's cached template cluster (see doc.go). Either way the
	// cluster gets its own system identifier.
	FreshInitdb bool
}

// Server is a running (or stopped) PostgreSQL 15 cluster owned by one test.
// The exported fields are set by Start and must not be changed.
type Server struct {
	BinDir, DataDir, Host string
	Port                  int
	User                  string // OS user that owns the cluster and is the superuser name

	clusterDir string
	logPath    string
	owner      osUser
	conf       confSettings

	mu sync.Mutex // serializes Stop, Restart and Crash
}

const (
	// pgctlTimeoutSeconds bounds pg_ctl's wait for start and for stop.
	pgctlTimeoutSeconds = 60
	// portAttempts is how often Start picks a new port when another process
	// took the free one between FreePort and the server's bind.
	portAttempts = 5
	// commandTimeout bounds helpers that take a testing.TB instead of a context.
	commandTimeout = 5 * time.Minute
	// stopTimeout bounds the cleanup's shutdown; it must exceed two pg_ctl waits.
	stopTimeout = 3 * time.Minute
)

// BinDir returns the directory holding the PostgreSQL 15 binaries:
// $STRATA_PG_BIN when set, else `pg_config --bindir`, else Debian's
// /usr/lib/postgresql/15/bin. It checks that postgres there is version 15.
func BinDir() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, _, err := findBinDir(ctx)
	return dir, err
}

// findBinDir is BinDir, also returning `postgres --version`.
func findBinDir(ctx context.Context) (dir, version string, err error) {
	if dir := os.Getenv("STRATA_PG_BIN"); dir != "" {
		version, err := checkBinDir(ctx, dir)
		if err != nil {
			return "", "", fmt.Errorf("STRATA_PG_BIN: %w", err)
		}
		return dir, version, nil
	}
	var problems []string
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err != nil {
		problems = append(problems, fmt.Sprintf("pg_config --bindir: %v", err))
	} else {
		dir := strings.TrimSpace(string(out))
		version, err := checkBinDir(ctx, dir)
		if err == nil {
			return dir, version, nil
		}
		problems = append(problems, err.Error())
	}
	const debianDir = "/usr/lib/postgresql/15/bin"
	version, err = checkBinDir(ctx, debianDir)
	if err == nil {
		return debianDir, version, nil
	}
	problems = append(problems, err.Error())
	return "", "", fmt.Errorf("%w (install postgresql-15 or set STRATA_PG_BIN): %s", ErrNoPostgres, strings.Join(problems, "; "))
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// checkBinDir checks that dir/postgres exists and is PostgreSQL 15, and
// returns its --version line. (postgres answers --version before it
// refuses to run as root.)
func checkBinDir(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s/postgres --version: %v", ErrNoPostgres, dir, err)
	}
	version := strings.TrimSpace(string(out))
	m := versionRE.FindStringSubmatch(version)
	if m == nil || m[1] != "15" {
		return "", fmt.Errorf("%w: %s/postgres says %q", ErrWrongVersion, dir, version)
	}
	return version, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port can be taken by someone else before the caller binds it; callers that
// can tell a bind failure apart should retry with a new port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start creates a cluster (a copy of the cached initdb template, or its own
// initdb with Options.FreshInitdb) and starts it on a free loopback port.
// The server is stopped and its directory removed by t.Cleanup. Start never
// skips: a missing or broken PostgreSQL fails the test.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := validateOptions(opts); err != nil {
		t.Fatal(err)
	}
	binDir, version, err := findBinDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base, err := baseDir()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := resolveUser(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	reapLeftovers(ctx, base, binDir, owner, t.Logf)
	removeStaleTemplateTemps(base, 30*time.Minute)

	clusterDir, err := os.MkdirTemp(base, "pg-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &Server{
		BinDir:     binDir,
		DataDir:    filepath.Join(clusterDir, "data"),
		Host:       "127.0.0.1",
		User:       owner.name,
		clusterDir: clusterDir,
		logPath:    filepath.Join(clusterDir, "postgres.log"),
		owner:      owner,
		conf:       confSettings{socketDir: clusterDir, walLevel: opts.WALLevel, userConf: maps.Clone(opts.Conf)},
	}
	// owner.pid lets a later Start reap this cluster if this process dies
	// before its cleanups run.
	if err := os.WriteFile(filepath.Join(clusterDir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// Registered before anything can start a postmaster, so every failure
	// below still stops it and removes the directory.
	t.Cleanup(func() { s.cleanup(t) })
	if err := owner.chown(clusterDir); err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	prepared := time.Now()
	how := "initdb"
	if opts.FreshInitdb || len(opts.InitdbArgs) > 0 {
		args := append(initdbArgs(s.DataDir, owner.name, opts.Checksums), opts.InitdbArgs...)
		if out, err := s.command(ctx, "initdb", args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: initdb %s: %v\n%s", ErrStart, strings.Join(args, " "), err, out)
		}
	} else {
		key := templateKey(binDir, version, owner, opts.Checksums)
		tmpl, built, err := ensureTemplate(ctx, base, binDir, key, owner, opts.Checksums)
		if err != nil {
			t.Fatal(err)
		}
		how = "template copy"
		if built {
			how = "initdb of a new template + copy"
		}
		if err := copyTree(tmpl, s.DataDir, owner); err != nil {
			t.Fatalf("pgtest: copy template %s: %v", tmpl, err)
		}
		if err := setSystemIdentifier(s.DataDir, newSystemIdentifier()); err != nil {
			t.Fatal(err)
		}
	}
	prepareTime := time.Since(prepared)
	initdbConf, err := os.ReadFile(filepath.Join(s.DataDir, "postgresql.conf"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.conf.initdbConf = string(initdbConf)
	if err := s.writeFile("pg_hba.conf", []byte(hbaConf)); err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startOnFreePort(ctx, FreePort, t.Logf); err != nil {
		t.Fatal(err)
	}
	t.Logf("pgtest: PostgreSQL 15 at %s:%d (data %s, user %s) ready in %v (%s %v)",
		s.Host, s.Port, s.DataDir, s.User, time.Since(began).Round(time.Millisecond), how, prepareTime.Round(time.Millisecond))
	return s
}

// startOnFreePort writes postgresql.conf with a port from pickPort and
// starts the server, picking another port when the chosen one was taken
// before the postmaster could bind it. The caller holds s.mu.
func (s *Server) startOnFreePort(ctx context.Context, pickPort func() (int, error), logf func(string, ...any)) error {
	for attempt := 1; ; attempt++ {
		port, err := pickPort()
		if err != nil {
			return err
		}
		s.Port, s.conf.port = port, port
		if err := s.writeFile("postgresql.conf", renderConf(s.conf)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		err = s.startLocked(ctx)
		if err == nil || !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return err
		}
		logf("pgtest: port %d was taken before PostgreSQL bound it; retrying with another", port)
	}
}

// startLocked runs pg_ctl start. The caller holds s.mu.
func (s *Server) startLocked(ctx context.Context) error {
	logOffset := fileSize(s.logPath)
	out, err := s.command(ctx, "pg_ctl", "-D", s.DataDir, "-w", "-t", strconv.Itoa(pgctlTimeoutSeconds),
		"-l", s.logPath, "start").CombinedOutput()
	if err == nil {
		return nil
	}
	logText := readFrom(s.logPath, logOffset)
	if strings.Contains(logText, "Address already in use") {
		// pg_ctl gave up because the postmaster exited; nothing to stop.
		return fmt.Errorf("%w: %w", ErrStart, errPortInUse)
	}
	// A start that timed out may leave a postmaster behind; stop it now so
	// the failure does not leak processes even if cleanup is delayed.
	_ = s.stopLocked(context.WithoutCancel(ctx), func(string, ...any) {})
	return fmt.Errorf("%w: pg_ctl start on port %d: %v\n%s\n--- server log (%s), last lines ---\n%s",
		ErrStart, s.Port, err, bytes.TrimSpace(out), s.logPath, lastLines(logText, 40))
}

// Stop shuts the server down (fast mode, then immediate if fast fails). It
// is idempotent; Restart starts the server again.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(ctx, t.Logf); err != nil {
		t.Fatal(err)
	}
}

// Restart stops the server (if running) and starts it again on the same
// port with the same data directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(ctx, t.Logf); err != nil {
		t.Fatal(err)
	}
	// The port was ours a moment ago; PostgreSQL binds with SO_REUSEADDR, so
	// only a process that grabbed it in between can make this fail.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = s.startLocked(ctx); err == nil || !errors.Is(err, errPortInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// stopLocked stops the server if a postmaster.pid says it may be running.
// logf receives notes about escalations. The caller holds s.mu.
func (s *Server) stopLocked(ctx context.Context, logf func(string, ...any)) error {
	if _, err := os.Stat(filepath.Join(s.DataDir, "postmaster.pid")); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return stopCluster(ctx, s.BinDir, s.DataDir, s.clusterDir, s.owner, logf)
}

// stopCluster stops the cluster in dataDir: pg_ctl fast, then immediate,
// then SIGKILL of a verified postmaster.
func stopCluster(ctx context.Context, binDir, dataDir, clusterDir string, owner osUser, logf func(string, ...any)) error {
	// A stale postmaster.pid (after Crash, or a zombie postmaster that init
	// has not reaped yet) means stopped; pg_ctl would signal whatever
	// process now has that pid, or wait for a zombie.
	if pid, err := runningPostmaster(dataDir); err == nil && pid == 0 {
		return removeStaleLockFiles(dataDir, clusterDir)
	}
	pgctl := func(mode string) ([]byte, error) {
		return newCommand(ctx, binDir, clusterDir, owner, nil, "pg_ctl",
			"-D", dataDir, "-m", mode, "-w", "-t", strconv.Itoa(pgctlTimeoutSeconds), "stop").CombinedOutput()
	}
	out, err := pgctl("fast")
	if err == nil {
		return nil
	}
	logf("pgtest: fast shutdown of %s failed (%v: %s); trying immediate", dataDir, err, bytes.TrimSpace(out))
	out, err = pgctl("immediate")
	if err == nil {
		return nil
	}
	logf("pgtest: immediate shutdown of %s failed (%v: %s); killing the postmaster", dataDir, err, bytes.TrimSpace(out))
	if kerr := killPostmaster(ctx, dataDir, clusterDir); kerr != nil {
		return fmt.Errorf("%w: %s: pg_ctl: %v: %s; kill: %v", ErrStop, dataDir, err, bytes.TrimSpace(out), kerr)
	}
	return nil
}

// cleanup runs from t.Cleanup: stop, then remove the directory. A cluster
// that cannot be stopped keeps its directory so that a later Start reaps it.
func (s *Server) cleanup(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.Failed() {
		t.Logf("pgtest: server log %s, last lines:\n%s", s.logPath, lastLines(readFrom(s.logPath, 0), 30))
	}
	if err := s.stopLocked(ctx, t.Logf); err != nil {
		t.Errorf("pgtest: cleanup: %v (directory %s kept)", err, s.clusterDir)
		return
	}
	if err := os.RemoveAll(s.clusterDir); err != nil {
		t.Errorf("pgtest: cleanup: %v", err)
	}
}

// Crash kills the postmaster and every server process with SIGKILL, as a
// crash of the machine would (the OS page cache survives, so this tests
// PostgreSQL's crash recovery, not lost writes). Restart then runs crash
// recovery. Crash is a no-op on a stopped server.
func (s *Server) Crash(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := killPostmaster(ctx, s.DataDir, s.clusterDir); err != nil {
		t.Fatal(err)
	}
}

// ConnString returns a keyword/value connection string for database db over
// TCP, usable by libpq and pgx.
func (s *Server) ConnString(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		s.Host, s.Port, quoteConnValue(s.User), quoteConnValue(db))
}

// ReplicationConnString returns a connection string for a physical
// replication connection (replication=true), as the bridge opens.
func (s *Server) ReplicationConnString() string {
	return s.ConnString("postgres") + " replication=true"
}

// WALDir returns the cluster's pg_wal directory.
func (s *Server) WALDir() string { return filepath.Join(s.DataDir, "pg_wal") }

// LogFile returns the path of the server log.
func (s *Server) LogFile() string { return s.logPath }

// Psql runs psql with args as the cluster's OS user, with PGHOST, PGPORT,
// PGUSER and PGDATABASE=postgres set. It returns psql's standard output;
// on failure the error carries the exit status and standard error. Callers
// usually want -X (ignore psqlrc).
func (s *Server) Psql(ctx context.Context, args ...string) ([]byte, error) {
	return s.psql(ctx, nil, args...)
}

func (s *Server) psql(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := s.command(ctx, "psql", args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%w: psql %s: %v: %s", ErrCommand, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Exec runs sql (one or more statements, each in its own implicit
// transaction, so CREATE DATABASE and VACUUM work) in database db and stops
// at the first error, which fails the test.
func (s *Server) Exec(t testing.TB, db string, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if _, err := s.psql(ctx, strings.NewReader(sql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", "-"); err != nil {
		t.Fatalf("pgtest: Exec in %q: %v\nSQL: %s", db, err, abbreviate(sql, 2000))
	}
}

// Query runs sql in database db and returns psql's unaligned, tuples-only
// output (-AtX): one row per line, columns separated by "|", trimmed. An
// error fails the test.
func (s *Server) Query(t testing.TB, db string, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := s.psql(ctx, strings.NewReader(sql), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", "-")
	if err != nil {
		t.Fatalf("pgtest: Query in %q: %v\nSQL: %s", db, err, abbreviate(sql, 2000))
	}
	return strings.TrimSpace(string(out))
}

// Run runs a PostgreSQL program (a name in BinDir such as "pg_waldump", or
// an absolute path) as the cluster's OS user, in the cluster directory, with
// the same environment as Psql plus PGDATA. It returns the combined output.
func (s *Server) Run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	if filepath.Base(bin) != bin && !filepath.IsAbs(bin) {
		return nil, fmt.Errorf("%w: Run wants a program name in %s or an absolute path, not %q", ErrBadOption, s.BinDir, bin)
	}
	out, err := s.command(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%w: %s %s: %v: %s", ErrCommand, bin, strings.Join(args, " "), err,
			abbreviate(string(bytes.TrimSpace(out)), 2000))
	}
	return out, nil
}

// CurrentWALLSN returns pg_current_wal_lsn().
func (s *Server) CurrentWALLSN(t testing.TB) lsn.LSN {
	t.Helper()
	return s.queryLSN(t, "SELECT pg_current_wal_lsn()")
}

// SwitchWAL forces a switch to a new WAL segment and returns what
// pg_switch_wal() returns: the end (+1) of the record that closed the old
// segment. When nothing was written since the last switch it does not
// switch and returns the current insert position.
func (s *Server) SwitchWAL(t testing.TB) lsn.LSN {
	t.Helper()
	return s.queryLSN(t, "SELECT pg_switch_wal()")
}

// Checkpoint runs CHECKPOINT.
func (s *Server) Checkpoint(t testing.TB) {
	t.Helper()
	s.Exec(t, "postgres", "CHECKPOINT")
}

func (s *Server) queryLSN(t testing.TB, sql string) lsn.LSN {
	t.Helper()
	text := s.Query(t, "postgres", sql)
	v, err := lsn.Parse(text)
	if err != nil {
		t.Fatalf("pgtest: %s returned %q: %v", sql, text, err)
	}
	return v
}

// command prepares bin (a name in BinDir, or an absolute path) to run as the
// cluster's OS user.
func (s *Server) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	return newCommand(ctx, s.BinDir, s.clusterDir, s.owner, s.env(), bin, args...)
}

// env is the whole environment of a child: nothing leaks in from the test
// process's PG* variables, and HOME points into the cluster directory so
// that no client writes history or reads rc files from root's home.
func (s *Server) env() []string {
	env := []string{
		"PATH=" + s.BinDir + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + s.clusterDir,
		"LC_ALL=C",
		"LANG=C",
		"PGHOST=" + s.Host,
		"PGUSER=" + s.User,
		"PGDATABASE=postgres",
		"PGDATA=" + s.DataDir,
		"PGSSLMODE=disable",
		"PGCONNECT_TIMEOUT=10",
		"PGAPPNAME=pgtest",
	}
	// Before the port is chosen (initdb) PGPORT must be absent: the
	// bootstrap backend reads it, and 0 is out of range.
	if s.Port != 0 {
		env = append(env, "PGPORT="+strconv.Itoa(s.Port))
	}
	return env
}

func newCommand(ctx context.Context, binDir, dir string, owner osUser, env []string, bin string, args ...string) *exec.Cmd {
	path := bin
	if !filepath.IsAbs(bin) {
		path = filepath.Join(binDir, bin)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	if env == nil {
		env = []string{"PATH=" + binDir + ":/usr/bin:/bin", "HOME=" + dir, "LC_ALL=C", "LANG=C"}
	}
	cmd.Env = env
	cmd.SysProcAttr = owner.sysProcAttr()
	// A daemon that inherited an output pipe must not hang the test.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// writeFile replaces a file in the data directory, keeping it owned by the
// cluster's user.
func (s *Server) writeFile(name string, data []byte) error {
	path := filepath.Join(s.DataDir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return s.owner.chown(path)
}

// reapLeftovers stops and removes clusters whose owning test process is
// gone (killed before its cleanups ran). A cluster is claimed by renaming
// its directory, so concurrent reapers never work on the same one.
func reapLeftovers(ctx context.Context, base, binDir string, owner osUser, logf func(string, ...any)) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "pg-") {
			continue
		}
		dir := filepath.Join(base, e.Name())
		pid, err := readPID(filepath.Join(dir, "owner.pid"))
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		claimed := filepath.Join(base, "reap-"+e.Name())
		if err := os.Rename(dir, claimed); err != nil {
			continue // another reaper won
		}
		dataDir := filepath.Join(claimed, "data")
		if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); err == nil {
			if err := stopCluster(ctx, binDir, dataDir, claimed, owner, logf); err != nil {
				logf("pgtest: could not stop leftover cluster %s: %v", claimed, err)
				continue
			}
		}
		if err := os.RemoveAll(claimed); err == nil {
			logf("pgtest: removed leftover cluster %s of dead test process %d", dir, pid)
		}
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the file's content from offset on ("" if unreadable).
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

// lastLines returns at most n trailing lines of text.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d more bytes)", len(s)-n)
}
