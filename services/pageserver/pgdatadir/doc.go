// Package pgdatadir maps PostgreSQL's data-directory concepts onto a
// timeline's keys, in both directions:
//
//   - reading: relation existence and sizes (checked against the relation
//     directory, since drops only edit directories), pages (a block at or
//     beyond the relation size reads as zeros, as in Neon), database sizes,
//     SLRU segments, twophase files, relmapper files, the control file and
//     the checkpoint — at any LSN; Reader implements basebackup.Source;
//   - writing: Ingest feeds raw WAL through internal/pgwal and
//     services/pageserver/walingest into the timeline, one chunk's records
//     per timeline batch (timeline.IngestBatch), so only whole records
//     become visible.
//
// Values' formats (directories, sizes) are walingest's.
//
// Concurrency: a Reader is safe for concurrent use. An Ingest's two steps,
// Decode and Store, may run on two goroutines (one each) with Decodeds
// handed from one to the other in order; Feed does both on the caller's.
// IngestService calls Feed: on 2 cores shared with the primary and the
// bridge, decoding on the receiving goroutine cost ~0.05-0.1 CPU-s more per
// 100 MB of WAL and gained no end-to-end throughput (BenchmarkEndToEnd);
// with a free core it is ~35 % faster (BenchmarkIngestWAL/*/ingest-pipelined).
package pgdatadir
