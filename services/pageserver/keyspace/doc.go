// Package keyspace owns the pageserver's key space (design §4): the 18-byte
// key that names every object the pageserver stores — relation blocks,
// relation sizes (their own keys), relation directories, the database
// directory, SLRU blocks and segment sizes, twophase files, relmapper files,
// the control file and the checkpoint — and key ranges.
//
// Layout (as Neon's, reference neon-anchor.md §5.1): six fields
//
//	field1 u8 | field2 u32 | field3 u32 | field4 u32 | field5 u8 | field6 u32
//
// serialized big-endian in that order, so byte order equals key order. The
// kind lives in field1:
//
//	0x00  relation data:  (spc, db, rel, fork, blkno); blkno 0xFFFFFFFF is
//	      the relation's size; (spc, db, 0, 0, 0) its relmapper file;
//	      (spc, db, 0, 0, 1) its relation directory; all zero: the
//	      database directory
//	0x01  SLRU: (kind, 0, 0, 0, 0) directory; (kind, 1, segno, 0, blkno)
//	      blocks; blkno 0xFFFFFFFF the segment's size
//	0x02  twophase: all zero the directory; (0, 0, xid) a state file
//	0x03  control file (…, 0) and checkpoint (…, 1)
//
// Strata's on-disk formats are its own, but keeping Neon's key layout lets
// the two be compared and keeps the key order (relation data before SLRUs
// before metadata) that basebackup relies on.
//
// It owns no I/O. Keys are comparable values, safe to share.
package keyspace
