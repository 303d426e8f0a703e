// Package inmemory owns a timeline's open (and frozen) in-memory layer: the
// page versions ingested since the last flush, serialized into an ephemeral
// file (services/pageserver/ephemeral) and indexed in memory by key and LSN
// (design §4). The index holds only (lsn, file offset, length, will-init) per
// version; the bytes are read back through the page cache.
//
// A layer covers the LSN range [Start, End): End is unknown (the layer is
// open) until Freeze. A frozen layer takes no more puts and stays readable
// until its delta layer file is on disk.
//
// Concurrency: one writer (the timeline's ingest) and any number of readers.
// Put, Freeze and the readers are safe to call concurrently.
package inmemory
