// Package timeline owns one timeline's page history at runtime (design §4):
// the open in-memory layer, frozen layers waiting to be flushed, the
// immutable layer files on disk, last_record_lsn (a seqwait that GetPage@LSN
// waits on) and disk_consistent_lsn, and the read path that rebuilds the
// value of a key at an LSN:
//
//  1. wait until last_record_lsn ≥ LSN (bounded by wait_lsn_timeout);
//  2. take the newest materialized version at or below LSN from the page
//     cache, if any (found by inexact LSN);
//  3. walk newest to oldest: the open layer, frozen layers, delta and image
//     layer files, then the ancestor timeline below the branch LSN —
//     collecting values until an image, a will-init record or the cached
//     version;
//  4. apply the collected records oldest first: Strata-native records in Go,
//     PostgreSQL records through the Redoer (walredo);
//  5. store the result in the page cache under the LSN of its newest record.
//
// Ingest writes through IngestRecord: all values of one WAL record are put
// at the record's end LSN, then last_record_lsn advances, so readers never
// see half a record. IngestBatch does the same for the records of one
// received chunk under one hold of the ingest lock, advancing
// last_record_lsn once, to the end of the last whole record. When the open
// layer holds checkpoint_distance bytes of WAL (or is older than
// checkpoint_timeout) it is frozen and the flusher writes it as a delta
// layer file (fsync file and directory), then advances and persists
// disk_consistent_lsn.
//
// Crash recovery (Open): ephemeral files are deleted; layer files whose LSN
// range ends above disk_consistent_lsn, or that fail their header checks,
// are moved aside to "<name>.quarantine-<unix time>" with an error log;
// last_record_lsn restarts at disk_consistent_lsn, from which WAL must be
// re-sent.
//
// Branches: a branch is a Timeline with an ancestor and an ancestor LSN,
// created in O(1); reads at or below the ancestor LSN are answered by the
// ancestor, and the branch's own writes never reach the ancestor.
//
// Concurrency: one ingesting goroutine (IngestRecord and IngestBatch are
// serialized); any number of readers; Run owns the background flusher.
package timeline
