// Package walingest turns decoded PostgreSQL 15 WAL records
// (internal/pgwal) into the pageserver's key/value puts (design §4, D2):
// what Neon's walingest.rs does (reference neon-anchor.md §6), with
// PostgreSQL's redo routines as the final word where the two differ.
//
// Generic block handling: every block reference stores the whole raw record
// under the block's key (value.AppendRecord, will-init when the block is
// initialized or restored from its image), except the images of XLOG FPI
// and FPI_FOR_HINT records, which are stored as page images with the page
// LSN set to the record's end LSN (as xlog_redo does; any compression is
// undone here). A write past a relation's end creates the relation if
// needed, extends its size and fills the gap with zero pages.
//
// Special records: Storage create/truncate (FSM tail page zeroed, VM tail
// cleared by a native TruncateVisibilityMap), Database create (FILE_COPY
// copies the source database's relmapper file and every block through a
// PageReader; WAL_LOG only creates the directory entry) and drop,
// Transaction commit/abort (+prepared: native CLOG records per page with
// subxacts grouped by page, relation files dropped, twophase files
// removed), PREPARE (twophase file = main data + CRC-32C, the on-disk
// file), CLOG and MultiXact zero/create/truncate (native offsets and
// members records, checkpoint counters), RelMap update, XLOG checkpoints
// (merged as PostgreSQL's xlog_redo does; Neon's redo convention),
// NEXTOID, PARAMETER_CHANGE (stored control file), END_OF_RECOVERY, heap
// records clearing VM bits (native ClearVisibilityMapFlags), Standby
// RUNNING_XACTS (oldestActiveXid). nextXid advances (epoch-aware, in steps
// of 1024) past every xid a record shows. Logical messages and Tablespace
// records are ignored (documented in special).
//
// Metadata values (all images): relation and SLRU segment sizes are u32
// little-endian block counts; directories use the versioned encoding in
// dirs.go. A directory is authoritative: a relation, SLRU segment, database
// or twophase file exists at LSN X iff it is in its directory at X; keys of
// removed objects are left behind for garbage collection, and readers must
// consult the directory before a size key.
//
// What it does not do: it does not read WAL (pgwal), apply PostgreSQL
// records (walredo) or store anything itself (Store, implemented by the
// timeline; MemStore here for tests). It does not advance last_record_lsn:
// its caller does that after Ingest returns for a whole record.
//
// Concurrency: an Ingester is used by one goroutine (the timeline's WAL
// receiver) and must be the only writer of its timeline's keys, because it
// caches metadata. MemStore is safe for concurrent use. On-disk format:
// directory encoding version 1 (dirs.go).
package walingest
