// Package value owns the encoding of the values the pageserver stores under
// a key at an LSN (design §4):
//
//   - an image: the whole object (an 8 KB page, a relation size, a
//     directory, a file's content) — reading can stop here;
//   - a WAL record: a raw PostgreSQL record to apply on top of the previous
//     version, with its start LSN (redo needs it) and a will-init flag (the
//     record initializes the page, so older versions are not needed);
//   - a native record: a Strata-specific change applied in Go (set CLOG
//     bits, clear visibility-map bits, ...), identified by a subtype; its
//     payload format belongs to the code that applies it.
//
// Encoding, version 1 (the length is stored by the container):
//
//	image:   0x00 0x00 <bytes>
//	record:  0x01 <flags: bit0 will_init> <start LSN u64 big-endian> <raw record>
//	native:  0x02 <subtype u8> <payload>
//
// It owns no I/O; encoded values are plain byte slices.
package value
