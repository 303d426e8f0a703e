// Package pgtest starts a real PostgreSQL 15 server for tests.
//
// Start creates a cluster (initdb, or a copy of a cached initdb template, see
// below) in a fresh directory, writes a configuration suited to
// Strata's tests (loopback TCP on a free port, Unix socket in the cluster
// directory, wal_level replica by default, max_wal_senders and
// max_replication_slots 10, fsync left on because Strata tests WAL durability,
// trust authentication for local, host and replication connections from
// 127.0.0.1) and starts the server with pg_ctl. The server is always stopped
// and its directory removed through t.Cleanup.
//
// PostgreSQL refuses to run as root. When the test process is root (as in
// CI), every PostgreSQL binary is run through exec with
// SysProcAttr.Credential as the system user "strata-pg", which is created on
// first use (tolerating concurrent creation by other test binaries). Cluster
// directories live under os.TempDir()/strata-pgtest-0 (mode 0755, root-owned),
// each one 0700 and owned by that user, because t.TempDir() is 0700 root and
// cannot be traversed by it. When the test process is not root, everything
// runs as the current user and that user's name is the superuser name.
//
// Template cluster: running initdb for every cluster is the slowest part
// of Start (about 1 s of CPU idle, far more on a loaded machine). So the
// first Start per (binaries, superuser, checksums) runs initdb once into
// <base>/template-<key>/data, under a file lock, and renames it into place
// only when complete; later Starts, in any test binary, copy that directory
// and then give the copy a fresh random system identifier (pg_control, with
// its CRC, and the long header of the initial WAL segment), so every cluster
// is a distinct database system as far as IDENTIFY_SYSTEM is concerned. The
// template is never started. Options.FreshInitdb, or any InitdbArgs, runs a
// real initdb for that cluster instead. Templates stay in the base directory
// across runs (about 40 MB each); a new PostgreSQL build gets a new key.
// Setting TMPDIR to a tmpfs such as /dev/shm makes Start faster still.
//
// Binaries come from $STRATA_PG_BIN when set, else from `pg_config --bindir`;
// their major version must be 15.
//
// What it does not do: it never skips a test (a missing PostgreSQL is a test
// failure, not a skip), it does not manage replication between clusters, and
// it does not speak the wire protocol itself (tests use psql through
// Exec/Query/Psql, or pgx with ConnString).
//
// Leftovers: a test binary killed before its cleanups run (go test -timeout,
// SIGKILL) leaves its cluster running. Every Start first reaps such clusters:
// a cluster directory records the pid of the test process that owns it, and
// when that process no longer exists the cluster is stopped and removed.
// This assumes that test processes sharing a TMPDIR share a pid namespace.
//
// Concurrency: Start may be called from parallel tests and from parallel test
// binaries; each call gets its own cluster, port and directory. A Server's
// methods are safe for concurrent use; Stop and Restart are serialized. As
// with any testing.TB method, the helpers taking a testing.TB must be called
// from the test's goroutine, because they call t.Fatal on failure.
//
// On-disk layout (template format "1", see templateFormat): the base
// directory os.TempDir()/strata-pgtest-<euid> holds useradd.lock,
// template-<key>/data with template-<key>.lock, and one pg-<random>
// directory per cluster with "data" (the PostgreSQL data directory),
// "postgres.log" (the server log, also the Unix socket directory) and
// "owner.pid" (the test process's pid, for reaping).
package pgtest
