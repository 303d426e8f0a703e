// Package process runs one WAL-redo child: an unmodified PostgreSQL 15
// `postgres --single` backend executing strata_walredo_main() from the
// strata_walredo extension (services/walredo/pgext), spoken to over its
// stdin/stdout with the binary protocol in protocol.go.
//
// It owns:
//   - the template data directory, prepared once per work dir and extension
//     build (initdb, pg_resetwal to a huge LSN, CREATE FUNCTION), guarded by
//     a file lock so concurrent processes prepare it once;
//   - per-child copies of the template (single-user mode locks its data dir),
//     removed when the child is closed;
//   - the child process: started as an unprivileged OS user when we run as
//     root (PostgreSQL refuses root), with core dumps off and SIGKILL on our
//     death; stderr logged line by line; a version handshake that rejects a
//     stale .so; a deadline per request after which the child is killed.
//
// It does not own pooling, retries or respawning (services/walredo/pool).
//
// Concurrency: a Child serves one request at a time; callers (the pool)
// serialise requests. Kill and Close may be called from any goroutine at any
// time. Each child owns two goroutines (exit waiter, stderr reader) that end
// when the process exits; Close and Kill guarantee it exits.
//
// On-disk layout under the work dir (no format version; everything is
// rebuilt when missing):
//
//	lib/strata_walredo-<buildid>.so   copy of the extension the template references
//	template-<buildid>/data           the prepared template
//	children/child-*/data             one copy per live child
package process
