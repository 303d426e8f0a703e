// Package basebackup writes a timeline's state at an LSN as a tar archive
// of a PostgreSQL 15 data directory: a fullbackup, which a vanilla
// PostgreSQL 15 boots from without recovery (design D11), or a Neon-style
// basebackup without relation data, for computes that read pages lazily.
//
// How a vanilla server is made to start cleanly at a backup LSN X. The
// archive is the data directory of a cluster that shut down cleanly right
// after X, as pg_resetwal would leave it (pg15-formats.md §5.3, §5.4):
//
//   - CheckpointLocation puts a CHECKPOINT_SHUTDOWN record at the first
//     record position of the first segment starting after X;
//   - ShutdownCheckpoint makes its CheckPoint from the state the WAL up to
//     X established (nextXid, nextOid, nextMulti, oldest*), with redo equal
//     to its own location;
//   - WriteWALSegment writes that segment: long page header, the record
//     (xl_prev 0, as pg_resetwal writes it), zeros;
//   - GenerateControlFile patches the stored pg_control: DB_SHUTDOWNED,
//     checkPoint and checkPointCopy pointing at that record, recovery and
//     backup fields cleared, CRC-32C recomputed;
//   - the pg_xact and pg_multixact pages startup reads (those of nextXid,
//     nextMulti and nextMultiOffset) are added as zeros when the timeline
//     does not hold them.
//
// The server then reads only that record, writes its first WAL right after
// it, and never sees the timeline's own WAL.
//
// Archive order: directories, PG_VERSION, configuration files, SLRU
// segments, per-database PG_VERSION and pg_filenode.map, relation files in
// 1 GiB segments (sorted by tablespace, database, relation, fork),
// pg_twophase, neon.signal (basebackup only), the WAL segment, and
// global/pg_control last: an archive cut short is never a startable data
// directory. Unlogged relations (those with an init fork) get their init
// fork and a copy of it as main fork, nothing else, as after a crash.
//
// What it does not own: choosing and validating the LSN against the
// timeline (the caller waits for it and checks the GC horizon), reading
// pages (Source, implemented by the timeline), compression, and removing a
// partially written archive when the client goes away. User tablespaces are
// not supported yet (ErrUnsupported).
//
// Concurrency: Write runs on the caller's goroutine and starts none; it
// calls the Source from that goroutine only. It checks ctx between files
// and every few blocks, so cancelling ctx stops a backup promptly. Memory
// is flat in the database size: one 8 KB page buffer, one SLRU segment
// (at most 256 KiB) at a time, a 64 KiB write buffer.
//
// Formats: PostgreSQL 15 only (PG_CONTROL_VERSION 1300, XLOG_PAGE_MAGIC
// 0xD110, catalog version 202209061); the WAL segment size is taken from
// the stored control file.
package basebackup
