// Package pgwal owns the reading and decoding of PostgreSQL 15 write-ahead
// log: it finds records in WAL pages and segments, checks them exactly as
// PostgreSQL's xlogreader does, and splits each record into its header, block
// references, full-page images and main data (design D2: WAL is decoded only
// here, in the pageserver).
//
// # Reading
//
// WAL is a byte stream cut into 8 KiB pages (a 24-byte header each, 40 bytes
// on the first page of a 16 MiB segment). Records start 8-byte aligned and may
// span any number of pages and segments; a continuation page says so with
// XLP_FIRST_IS_CONTRECORD and xlp_rem_len. StreamDecoder is the one state
// machine: it is fed bytes in arbitrary chunks from any start position and
// returns whole records (Record: start LSN, end LSN as PostgreSQL's
// EndRecPtr, and exactly xl_tot_len raw bytes with page headers removed, which
// walredo needs as they are). Reader drives a StreamDecoder from segment files
// in a pg_wal directory.
//
// Every page header is validated (magic 0xD110, flags, xlp_pageaddr, long
// header fields, timeline order), every record's CRC-32C is checked, and the
// end of valid WAL is reported as an *EndOfWALError (errors.Is ErrEndOfWAL)
// with the position and reason, at exactly the places PostgreSQL stops.
//
// # Decoding
//
// DecodeRecord splits raw record bytes into a DecodedRecord; BlockRef.RestorePage
// rebuilds an 8 KiB page from a full-page image (pglz, our own port of
// PostgreSQL's pglz_decompress; lz4 and zstd through pierrec/lz4 and
// klauspost/compress). Typed bodies of records belong to package rmgr.
//
// What it does not do: it does not choose segment files by timeline history,
// does not apply records (walredo does), and does not interpret rmgr bodies.
//
// Concurrency: a StreamDecoder, Reader or DecodedRecord is used by one
// goroutine at a time. DecodeRecord and RestorePage are safe to call
// concurrently on different values. Memory is bounded by the bytes fed: no
// allocation is sized from a length read from WAL before that many bytes have
// actually arrived.
//
// On-disk format: PostgreSQL 15's WAL (XLOG_PAGE_MAGIC 0xD110), read only.
package pgwal
