// Package importer creates a timeline's first state from a PostgreSQL 15
// data directory: a base backup tar (BASE_BACKUP / pg_basebackup -Ft
// base.tar) of a running primary, or the directory of a cluster that
// initdb just created and shut down (Bootstrap). It then feeds the WAL that
// follows through services/pageserver/pgdatadir.Ingest (ImportWAL,
// ImportWALDir), as Neon's import_basebackup_from_tar + import_wal do.
//
// What is stored, all as one image layer (timeline.WriteImageLayer) at one
// LSN, the "import LSN":
//
//   - every block of every relation fork under base/<db>/ and global/
//     (segments .1, .2… appended; all-zero pages included), its size from
//     the file lengths, the relation directory of each database and the
//     database directory (with has_relmap when pg_filenode.map is there);
//     relations with an init fork (unlogged) keep only the init fork in the
//     directory, as WAL ingest would (their other forks are not WAL-logged;
//     the backup writes the init fork and a copy of it as main fork);
//   - pg_xact, pg_multixact/offsets and pg_multixact/members pages, segment
//     sizes and directories; pg_twophase state files (the whole on-disk
//     file, CRC included) and their directory; pg_filenode.map files;
//     global/pg_control; and the checkpoint (pg_control's checkPointCopy
//     with Redo cleared: walingest's convention keeps Redo = end LSN of a
//     shutdown checkpoint record that was ingested, 0 otherwise).
//
// Not stored: PG_VERSION and configuration files (the backup writer makes
// them), pg_wal, pg_subtrans, pg_commit_ts, pg_notify, pg_serial, stats,
// replication slots, pg_internal.init, temporary relations. User
// tablespaces (anything under pg_tblspc/) fail with ErrUnsupported.
//
// Which LSN, and where ingest continues. A base backup of a running primary
// is fuzzy: each file is copied at some moment after the backup's start, so
// a page may be torn or newer than the start. PostgreSQL makes it
// consistent by replaying WAL from the backup checkpoint's REDO point (the
// backup_label's START WAL LOCATION) to the backup's end; full_page_writes
// guarantees that the first change of every page after REDO carries a
// full-page image (or re-initializes the page), which overwrites whatever
// the copy held. So the images are stored at START WAL LOCATION and ingest
// continues from there, every record from START on stored above the images
// (values are put at a record's end LSN, always > START). Reads at an LSN
// below the backup's end LSN may see fuzzy pages; from the backup end on
// (the end LSN pg_basebackup reports, or the backup_manifest's WAL range)
// the timeline is consistent. For a cleanly shut-down cluster (no
// backup_label, pg_control state DB_SHUTDOWNED) the import LSN is
// pg_control's checkPoint, the start of the shutdown checkpoint record,
// whose redo is itself; ingesting that record next (ImportWALDir from the
// cluster's pg_wal) leaves the stored checkpoint exactly as walingest
// keeps it and sets prev_record_lsn, as Neon's import_datadir does.
//
// NewIngest builds the pgdatadir.Ingest that continues from the import LSN:
// the record link (prev) before it is unknown, so the decoder starts at the
// WAL page holding the import LSN and skips the records that end at or
// before it.
//
// Memory: the importer keeps one page buffer, per-relation sizes and the
// directories (proportional to the number of relations, not to their
// size); values are staged on disk by WriteImageLayer. Errors name the tar
// entry or file that caused them.
//
// Concurrency: every function runs on the caller's goroutine and starts
// none, except Bootstrap, which runs initdb as a child process and waits for
// it. There is no on-disk format of its own.
package importer
