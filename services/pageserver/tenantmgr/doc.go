// Package tenantmgr owns the pageserver's tenants and timelines at runtime:
// the on-disk repository (services/pageserver/tenant), one runtime
// timeline.Timeline per active timeline, the process-wide page cache and
// the walredo Redoer they share, and the background flusher of every
// timeline.
//
// Open loads every tenant and timeline (ancestors before descendants) from
// the repository: each runtime timeline starts from its metadata
// (disk_consistent_lsn, prev_record_lsn, start LSN, ancestor, GC cutoff),
// and WAL after disk_consistent_lsn must be re-sent by the bridge. A
// timeline whose runtime cannot be opened stays listed as "broken" with its
// reason; Open fails only when the work directory cannot be read.
//
// Every flush persists disk_consistent_lsn (and prev_record_lsn) through
// tenant.Timeline.UpdateMetadata before the timeline reports it; the first
// persist of an empty root timeline (an import or a bootstrap writing its
// image layer) also records its start LSN.
//
// Ingest ownership: at most one WAL ingest session per timeline. A new
// session replaces the running one (whose context is cancelled with
// ErrIngestReplaced, and which is waited for): a bridge that reconnects
// after a network failure must not be locked out by its own half-dead old
// stream.
//
// What it does not own: gRPC (services/pageserver/server), WAL decoding
// (pgdatadir, walingest), the layer formats.
//
// Concurrency: all methods are safe for concurrent use. Lifecycle changes
// of one tenant (create/branch/delete of timelines, tenant deletion) are
// serialized by a per-tenant mutex; lookups take a read lock only. Run owns
// the goroutines (one flusher per timeline, started for timelines created
// later too) and returns when its context is cancelled; Close, after Run
// returned, closes the timelines.
package tenantmgr
