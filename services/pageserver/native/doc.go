// Package native owns Strata's native records: small changes to SLRU pages
// and visibility-map pages that the pageserver applies in Go instead of
// sending the PostgreSQL WAL record to walredo (design D3: "simple records
// that need no Postgres may be applied natively in Go"). They correspond to
// Neon's NeonWalRecord variants 1–5 and 7 (reference neon-anchor.md §5.2,
// §6.4), with Strata's own payload encodings.
//
// Each record has a subtype (stored by package value as
// value.AppendNative(dst, subtype, payload)) and a payload built by the
// Append* functions here. Apply changes an 8 KB page in place, exactly as
// PostgreSQL 15's redo routines change it (clog.c TransactionIdSetStatusBit,
// multixact.c RecordNewMultiXact, visibilitymap.c visibilitymap_clear and
// visibilitymap_prepare_truncate); bit layouts are in pg15-formats.md §4 and
// §6.4.
//
// Decisions:
//   - ClogSetCommitted carries the commit timestamp in its payload, but the
//     page stays 8192 bytes: Neon's trick of appending an 8-byte timestamp to
//     the CLOG page (8200-byte values) is not kept. A timestamp→LSN search
//     can read the timestamps from the records themselves, and every reader
//     of a CLOG page (fullbackup, GetSlruSegment, walredo) then sees exactly
//     the on-disk format.
//   - ClearVisibilityMapFlags does not set the VM page's LSN: PostgreSQL's
//     visibilitymap_clear does not either (Neon does), so a materialized VM
//     page equals the primary's.
//   - MultixactOffsetCreate writes a list of (multi, offset) entries, so one
//     record can also store the offset of multi+1, which PostgreSQL 15.18's
//     RecordNewMultiXact writes (pg15-formats.md §4.2).
//
// Every record checks that the page it is applied to is the one its
// payload addresses (the key's SLRU page or VM block) and fails with
// ErrWrongPage otherwise; no input makes it panic.
//
// Concurrency: stateless; all functions are safe for concurrent use on
// different pages. Payload format version 1 (implied by the subtype; a new
// layout gets a new subtype).
package native
