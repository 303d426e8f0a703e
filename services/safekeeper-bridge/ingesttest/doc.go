// Package ingesttest provides an in-process fake of the pageserver's
// IngestService for the bridge's tests (in the spirit of net/http/httptest).
// It decodes every WAL byte it receives with internal/pgwal's StreamDecoder,
// so contiguity and record integrity (CRC, page headers, xl_prev links) are
// checked; it acknowledges last_record_lsn at once and advances
// disk_consistent_lsn to the last record end after every FlushBytes bytes or
// FlushInterval (a simulated layer flush). A new stream resumes from
// disk_consistent_lsn, as a restarted pageserver would, so the bridge must
// resend what was not "flushed".
//
// It is test support only: no tenants, no storage, no auth.
//
// Concurrency: one Ingest stream at a time is served (a second one waits);
// the accessors may be called from any goroutine.
package ingesttest
