// Package ingest owns the bridge's client of the pageserver's IngestService
// for one timeline (design §5): on every (re)connect it sends IngestStart,
// reads IngestReady.start_lsn, and streams WAL from the spool from there;
// it turns the pageserver's progress messages into the feedback LSNs the
// replication client reports to the primary, and trims the spool below
// disk_consistent_lsn.
//
// Flow control: WAL always goes through the spool, never from the live
// replication stream directly, and the sender holds one chunk (at most
// spool.MaxFrameBytes) at a time; gRPC's stream flow control blocks Send
// while the pageserver is slow. So a slow or stopped pageserver makes the
// spool grow, not the bridge's memory.
//
// What it does not do: it does not read WAL from the primary, does not
// interpret WAL (design D2), and does not decide where replication starts.
// A pageserver that needs WAL the spool no longer holds is a permanent
// error (errors.Is ErrWALGap), never skipped.
//
// Concurrency: Run is called once; it owns one receive goroutine per
// session, stopped with the session. Stats and DiskConsistentLSN may be
// called from any goroutine.
package ingest
