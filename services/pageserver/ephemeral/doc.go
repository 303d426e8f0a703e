// Package ephemeral owns the ephemeral file behind a timeline's open
// in-memory layer: an append-only scratch file in the timeline directory
// (named "ephemeral-<seq>") holding serialized values, read back through the
// shared page cache (design §4; Neon's ephemeral_file).
//
// Appended bytes collect in a 256 KiB write buffer (32 blocks, ChunkSize).
// When it is full it becomes a chunk: kept in memory if the process-wide
// Memory budget (ephemeral_memory_limit) has room for one more chunk, and
// otherwise written with one pwrite and its 8 KB blocks, write-through, into
// the page cache (kind Ephemeral), so a cached block always equals the
// file's block. Keeping chunks in memory saves the write into the OS page
// cache (page allocation, copy, dirty accounting, later writeback), which
// measured as the larger part of storing a record; the budget keeps memory
// bounded however many timelines ingest. Reads of chunks in memory and of
// the buffered tail copy from memory; reads of written blocks go through the
// page cache (pread on a miss). Map snapshots the chunk list and the partly
// filled buffer and maps the written chunks of the file read-only
// (MAP_POPULATE): the flush of a frozen layer reads every value once from
// memory or that mapping, bypassing the page cache. A file's chunks go back
// to the budget (and their buffers to its free list, for reuse without new
// page faults) when the file and every Mapping of it are closed.
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
