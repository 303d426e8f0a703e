// Package pgtypes owns PostgreSQL 15's basic storage identifiers and
// constants: OIDs, fork numbers, RelFileNode, RelTag, BufferTag, block and
// segment sizes, and helpers to read and write the standard page header.
//
// Layouts follow ../shared/reference/pg15-formats.md §2.5 and §6. Note that a
// data page's pd_lsn is two uint32s, high half first, not a little-endian
// uint64.
//
// It owns no I/O and no WAL decoding. All types are plain values, safe to copy
// and to share between goroutines.
package pgtypes
