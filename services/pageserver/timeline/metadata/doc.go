// Package metadata owns the timeline metadata file, <timeline dir>/metadata:
// the few LSNs and the ancestry a timeline needs before any layer file is
// read (design §4: "Metadata is a small file written atomically").
//
// It owns the byte format, its strict decoding and the atomic write. It does
// not own the timeline directory, the layer files, nor the rules that relate
// the LSNs of different timelines (branch points, GC cutoffs): those belong to
// the tenant repository and the timeline.
//
// # On-disk format, version 1
//
// A fixed 80-byte file. Integers are little-endian. LSNs are PostgreSQL LSNs
// as uint64 (lsn.LSN); 0 is lsn.Invalid.
//
//	offset size field
//	     0    4 magic "STLM" (0x53 0x54 0x4C 0x4D)
//	     4    2 format version = 1
//	     6    2 total file length in bytes = 80
//	     8   16 ancestor timeline id; all zero = no ancestor (root timeline)
//	    24    8 ancestor LSN: the branch point; 0 exactly when there is no ancestor
//	    32    8 disk_consistent_lsn: every record below it is in layer files
//	    40    8 prev_record_lsn: start of the last record before disk_consistent_lsn (0 if unknown)
//	    48    8 start LSN: the initdb/import LSN at which the timeline's history begins
//	    56    8 latest GC cutoff LSN: reads and branches below it are refused
//	    64    4 PostgreSQL major version (e.g. 15); never 0
//	    68    8 created-at, Unix time in nanoseconds (UTC), signed; 0 = unset (zero time.Time)
//	    76    4 CRC-32C (Castagnoli) of bytes 0..75
//
// Decoding is strict: a wrong magic, version, length field, file size,
// checksum, non-zero ancestor LSN without an ancestor (or the reverse), or a
// zero PostgreSQL version is an error wrapping ErrCorrupt. A later version
// gets a new version number and its own decoder; version 1 files are never
// rewritten in place by older code.
//
// Write replaces the file with durable.WriteFile (temp file, fsync, rename,
// fsync directory): after a crash the file holds the old or the new
// metadata, never a mix. A temp file left by a crash is named
// ".metadata.tmp-*" and removed by durable.RemoveTemps.
//
// # Concurrency
//
// Metadata is a plain value. Encode, Decode and Read are safe for concurrent
// use; concurrent Writes to the same directory must be serialized by the
// caller (the last rename wins).
package metadata
