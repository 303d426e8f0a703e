// Package server holds the pageserver's gRPC adapters (design §5, D8):
// ManagementService, PageService and IngestService over a
// tenantmgr.Manager. The adapters are thin: they authorize, parse ids and
// LSNs, call the manager, the timeline or pgdatadir, and map errors to
// gRPC codes in one place (status.go).
//
// Authorization (design D5): management calls that are global (create and
// list tenants, delete a tenant) need scope pageserverapi; every other
// management and page call is checked against its tenant
// (auth.Authorize). Ingest needs scope safekeeperdata or pageserverapi.
// GetPages authorizes every request of the stream on its own and answers
// a refused one with status PERMISSION_DENIED; the stream stays open.
//
// GetPages pipelining: one goroutine receives requests, each request is
// processed on its own goroutine, and one goroutine sends the responses in
// request order. At most MaxInflightGetPages requests are between receipt
// and response; past that the receiver stops reading, so HTTP/2 flow
// control pushes back on the client. Page images come from a pool of 8 KB
// buffers returned once the response is sent.
//
// LSN semantics of ReadLsn follow Neon (neon-anchor.md §1.7): request_lsn 0
// is invalid; not_modified_since must not exceed request_lsn and defaults
// to request_lsn (unless request_lsn is "latest", all ones); when
// not_modified_since is above last_record_lsn the read waits for it
// (wait_lsn_timeout) and happens at not_modified_since, otherwise at
// min(last_record_lsn, request_lsn).
//
// Ingest: one session per timeline; a new stream for a timeline replaces
// the running one, which ends with ABORTED (a reconnecting bridge must not
// be locked out by its own dead stream). IngestReady.start_lsn is the
// timeline's last_record_lsn, where the next record starts (right after an
// import: the backup's start LSN); progress is
// sent every ProgressInterval, on keepalives that ask for it, and as soon
// as disk_consistent_lsn moves. A stream runs as a two-stage pipeline: its
// receive goroutine takes each message as gRPC's receive buffers
// (grpcserver.RawReceiver; a WAL chunk is parsed without protobuf's copies,
// anything unusual is decoded by protobuf), decodes the WAL records
// straight from them and frees them; the handler's goroutine stores the
// records (one timeline batch per message) while the next message is
// decoded, and does every Send. Errors: a malformed message or one other
// than WAL and keepalive after IngestStart is InvalidArgument, WAL that
// does not continue the timeline FailedPrecondition, corrupt WAL DataLoss.
//
// Concurrency: every handler may run concurrently with any other. The
// goroutines a stream starts stop before its handler returns, except the
// Ingest receive goroutine, which ends with the stream right after (gRPC
// ends its RecvMsg when the handler returns).
package server
