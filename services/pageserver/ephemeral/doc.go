// Package ephemeral owns the ephemeral file behind a timeline's open
// in-memory layer: an append-only scratch file in the timeline directory
// (named "ephemeral-<seq>") holding serialized values, read back through the
// shared page cache (design §4; Neon's ephemeral_file).
//
// Appended bytes collect in a 256 KiB write buffer (32 blocks); when it is
// full it is written with one pwrite and its 8 KB blocks, write-through, into
// the page cache (kind Ephemeral), so a cached block always equals the
// file's block. Reads of written blocks go through the page cache (pread on
// a miss); reads of the buffered tail copy from memory. Map writes the
// partly filled buffer too (it is written again, whole, when it fills) and
// maps the file read-only (MAP_POPULATE): the flush of a frozen layer reads
// every value once from that mapping, bypassing the page cache.
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
