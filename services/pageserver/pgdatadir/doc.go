// Package pgdatadir maps PostgreSQL's data-directory concepts onto a
// timeline's keys, in both directions:
//
//   - reading: relation existence and sizes (checked against the relation
//     directory, since drops only edit directories), pages (a block at or
//     beyond the relation size reads as zeros, as in Neon), database sizes,
//     SLRU segments, twophase files, relmapper files, the control file and
//     the checkpoint — at any LSN; Reader implements basebackup.Source;
//   - writing: Ingest feeds raw WAL through internal/pgwal and
//     services/pageserver/walingest into the timeline, one record at a time
//     (timeline.IngestRecord), so only whole records become visible.
//
// Values' formats (directories, sizes) are walingest's.
//
// Concurrency: a Reader is safe for concurrent use; an Ingest belongs to
// one goroutine (the timeline's WAL receiver).
package pgdatadir
