// Package lsn owns the PostgreSQL log sequence number: a 64-bit byte position
// in the WAL stream, printed "%X/%X" (high and low 32 bits in uppercase hex,
// no padding) exactly as PostgreSQL prints it.
//
// It also owns the arithmetic that maps an LSN to WAL segments, WAL pages and
// WAL file names, and AtomicLSN, an LSN that may be read and advanced from
// several goroutines.
//
// It does not decode WAL (see internal/pgwal) and does not wait for LSNs (see
// internal/seqwait).
//
// Concurrency: LSN is a value type; AtomicLSN is safe for concurrent use.
package lsn
