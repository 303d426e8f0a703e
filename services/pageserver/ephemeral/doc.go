// Package ephemeral owns the ephemeral file behind a timeline's open
// in-memory layer: an append-only scratch file in the timeline directory
// (named "ephemeral-<seq>") holding serialized values, read back through the
// shared page cache (design §4; Neon's ephemeral_file).
//
// Full 8 KB blocks are written to the file and, write-through, into the page
// cache (kind Ephemeral), so a cached block always equals the file's block.
// The partly filled last block lives only in memory until it is full; the
// file never holds a partial block. Reads of full blocks go through the page
// cache (pread on a miss); reads of the tail copy from memory.
//
// Ephemeral files are never fsynced and are deleted at startup
// (RemoveStale): their content is recovered by re-ingesting WAL from
// disk_consistent_lsn.
//
// Concurrency: one appender at a time (the timeline's ingest); any number of
// concurrent readers. Appended bytes are immutable.
//
// On-disk format: raw appended bytes, no header (the file never outlives
// the process that wrote it).
package ephemeral
