// Package localstack owns a Strata stack on one machine, as Neon's
// neon_local does: the directory `stratactl init` writes (each service's
// TOML config on free loopback ports, an Ed25519 key pair, one token per
// scope), and starting, stopping and inspecting the four services as
// background processes with pid files and log files under that directory.
// It also owns booting a vanilla PostgreSQL 15 on a fullbackup directory
// (BootPostgres), which the stack's users do to turn a branch into a
// running database.
//
// It does not own the services themselves (services/*), their config
// structs (it writes TOML that their DefaultConfig + config.DecodeFile
// accept, which its tests prove), or talking to them beyond health checks:
// management RPCs are the CLI's (cmd/stratactl).
//
// On-disk layout, format version 1 (stack.toml's format_version):
//
//	<dir>/stack.toml                   format_version, created_at
//	<dir>/config/<service>.toml        one per service (pageserver, walredo,
//	                                   safekeeper-bridge, pgproxy)
//	<dir>/auth/auth_private_key.pem    0600; signs the tokens below
//	<dir>/auth/auth_public_key.pem     every service verifies with it
//	<dir>/tokens/<scope>               0600 JWTs: pageserverapi, safekeeperdata
//	<dir>/data/<service>/              work directories
//	<dir>/run/<service>.pid            pid of the running service
//	<dir>/logs/<service>.log           its stdout and stderr (appended)
//
// Services get their tokens through an environment variable naming the
// token file (e.g. STRATA_BRIDGE_TOKEN_FILE), never through arguments
// (design D5).
//
// Processes: Start launches each service in its own process group, detached
// from the caller, so the stack outlives `stratactl start`. A pid file is
// trusted only while /proc/<pid>/cmdline still names the service's binary,
// so a stale pid file whose pid was reused is reported as down and is never
// signalled.
//
// Concurrency: a Stack is immutable after Init or Open and its methods may
// be called concurrently, but two processes starting or stopping one stack
// at the same time are not coordinated (as with neon_local).
package localstack
