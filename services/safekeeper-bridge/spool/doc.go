// Package spool owns the bridge's durable WAL spool for one timeline: raw WAL
// bytes received from the primary are appended at their LSN, fsynced, read
// back for streaming to the pageserver, and removed only after the
// pageserver's disk_consistent_lsn has passed them (design §5).
//
// The spool never interprets WAL (design D2): it stores opaque byte ranges
// keyed by LSN and checks only that they are contiguous.
//
// # Durability contract
//
// Append writes to the operating system; Sync fsyncs and only then advances
// FlushLSN. Only bytes below FlushLSN count as spooled: they are what the
// bridge may report to the primary as written, and the only bytes readers
// see. A new segment file is created as a temporary file, fsynced, renamed
// and its directory fsynced; a segment is fsynced before the next one is
// created, so after a crash only the last segment can have a torn tail.
// Open finds the durable end by checking every frame of the last segment
// (length, LSN and CRC-32C), truncates a torn tail and fsyncs the result.
// A damaged segment that is not the last one is reported as ErrCorrupt,
// never repaired silently.
//
// # On-disk format, version 1
//
// A spool directory holds segment files named "<16 hex digits>.spool", the
// uppercase hexadecimal start LSN of the segment. A segment starts with a
// 40-byte header, all integers little-endian:
//
//	magic     [8]byte  "STRASPOL"
//	version   uint32   1
//	timeline  uint32   PostgreSQL timeline id of the WAL (0 = unknown)
//	systemID  uint64   primary's system identifier (0 = unknown)
//	startLSN  uint64   LSN of the first byte of the first frame
//	reserved  uint32   0
//	crc       uint32   CRC-32C of the 36 bytes before it
//
// followed by frames, back to back:
//
//	length    uint32   number of data bytes, 1..MaxFrameBytes
//	crc       uint32   CRC-32C of the LSN field and the data
//	lsn       uint64   LSN of the first data byte
//	data      [length]byte
//
// The first frame's LSN is the segment's start LSN and each frame starts
// where the previous one ended; a segment ends where the next one starts.
// A segment is closed once it holds at least Options.SegmentBytes bytes, so
// trimming works on whole segments of about that size.
//
// # Concurrency
//
// Append, Sync and SetIdentity are called by one writer goroutine. Readers
// (NewReader, Reader.Next), TrimBelow, FlushLSN, StartLSN and Wait may be
// called concurrently with the writer and with each other; each Reader is
// used by one goroutine. Memory is bounded: the writer keeps one frame
// buffer, each Reader one frame, and the spool one entry per segment file.
package spool
