// Package replication owns the bridge's physical replication client for one
// timeline: it connects to a PostgreSQL 15 primary with a replication
// connection (pgx/v5/pgconn + pglogrepl, design D4), runs IDENTIFY_SYSTEM,
// creates or reuses a permanent physical replication slot, and streams WAL
// with START_REPLICATION SLOT … PHYSICAL … TIMELINE … into the spool. It
// answers keepalives and sends standby status updates, and reconnects with
// exponential backoff after any transient failure.
//
// # Feedback and the slot
//
// PostgreSQL 15 moves a physical slot's restart_lsn to the *flush* position
// of every standby status update (walsender.c, ProcessStandbyReplyMessage →
// PhysicalConfirmReceivedLocation). So the flush position decides which WAL
// the primary may remove, and the bridge reports:
//
//	write = the spool's durable end (FlushLSN)
//	flush = min(spool durable end, pageserver disk_consistent_lsn)
//	apply = the same as flush
//
// and sends InvalidXLogRecPtr (0/0) for flush and apply while the pageserver
// has reported nothing, which PostgreSQL takes as "no confirmation". The slot
// therefore never passes what the pageserver has persisted (issue #7), even
// though the spool already holds more; the spool is the second copy, not the
// only one. A consequence: a synchronous_standby_names entry for the bridge
// with synchronous_commit=on waits for the pageserver's flush; remote_write
// waits only for the spool.
//
// # What it does not do
//
// It never interprets WAL (design D2) and never skips WAL: a stream that
// does not continue where the spool ends, a missing slot while the spool
// holds WAL, a slot whose restart_lsn is past the spool's end, or a
// requested segment that the primary has removed are permanent errors
// (errors.Is ErrWALGap, ErrSlotMissing, ErrWALRemoved) returned by Run and
// kept in Stats for the timeline's status. It does not take base backups
// (package timelines does, with Connect and EnsureSlot from here).
//
// # Concurrency
//
// A Streamer is the single writer of its spool. Run must be called once;
// Stats may be read from any goroutine at any time.
package replication
