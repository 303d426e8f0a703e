// Package pagecache owns the pageserver's page cache: one per process, shared
// by every tenant, a fixed arena of 8 KiB slots with clock replacement.
//
// # Algorithm
//
// The cache is PostgreSQL's buffer-pool clock (src/backend/storage/buffer/freelist.c),
// as Neon's pageserver page cache also uses it:
//
//   - Every slot has a usage count, capped at MaxUsageCount (5), and a pin
//     count. A new page starts at usage 1; every hit adds 1 up to the cap.
//   - To find a victim the clock hand advances over the slots. A pinned slot
//     is skipped untouched. An unpinned slot with usage > 0 loses one usage
//     and is skipped. The first unpinned slot with usage 0 is taken.
//   - Pins are held by guards: a ReadGuard (shared: many readers) or a
//     WriteGuard (exclusive: excludes readers of that slot). A pinned slot is
//     never evicted and never reused.
//
// The arena is one []byte of slots × 8 KiB with no pointers, so the garbage
// collector never scans it and lookups never allocate. Slot metadata is about
// 100 bytes (1.2 % of the page).
//
// # Mapping kinds
//
// A cached page is identified by a kind tag plus a fixed-size key
// (cacheKey). Three kinds exist:
//
//   - KindImmutable: blocks of immutable layer files, keyed by (FileID, block).
//     Read-through with ReadImmutable, or LookupImmutable + LockImmutableForWrite.
//   - KindEphemeral: blocks of ephemeral (open-layer) files, keyed by
//     (FileID, block). Writers write through the cache: LockEphemeralForWrite,
//     modify the bytes, write them to the file, MarkValid, Release. Readers
//     (LookupEphemeral) see only valid pages and are excluded while a writer
//     holds the slot.
//   - KindMaterialized: reconstructed page versions keyed by (tenant,
//     timeline, 18-byte key) plus the LSN of the version. At most
//     MaxVersionsPerKey versions per key are kept (the newest ones). They are
//     found by inexact LSN, see LookupMaterialized.
//
// Exact kinds share one map per shard (cacheKey → slot); materialized pages
// use a second map (cacheKey → small version list). Adding a fourth exact
// kind takes a Kind constant, its name in kindNames, a key constructor and
// two thin wrappers over lookupExact/lockForWriteExact; metrics and eviction
// pick it up from the Kind.
//
// # The inexact-LSN contract
//
// LookupMaterialized(tenant, timeline, key, R) returns the newest cached
// version whose LSN C satisfies C ≤ R. The cache cannot know whether a WAL
// record for the key exists in (C, R]; the caller must check that, e.g. by
// asking the layer map for the LSN L of the last record for the key at or
// below R and accepting the page only if C ≥ L. LookupMaterializedSince(…, L, R)
// does that check for a caller that already knows L: it returns the newest
// version with L ≤ C ≤ R.
//
// # What it does not own
//
// It does no I/O: callers read and write files and fill the slots. It does not
// know layer files, timelines or WAL; it does not decide which LSN a page
// version is valid for beyond the contract above.
//
// # Concurrency contract
//
// Every method of Cache is safe for concurrent use. Guards are not: a guard
// belongs to the goroutine holding it until Release. Lock order is
// slot before shard; shard locks are never held while blocking on a slot.
//
// Guard rules (misuse is a programming error, not an input):
//   - Release every guard exactly once, through the variable it was returned
//     in. Release zeroes the guard, so a second Release of the same variable
//     is a no-op and Bytes of a released guard returns nil. Releasing a copy
//     of an already released guard corrupts the pin count (it may unpin a
//     slot held by someone else); don't copy guards.
//   - A guard that is never released pins its slot forever; once every slot is
//     pinned, allocation fails with ErrAllPinned.
//   - Do not retain the []byte of a guard after Release, and do not write
//     through a ReadGuard's bytes.
//   - A goroutine holding a ReadGuard on a page must not ask for a WriteGuard
//     on the same page (it would wait for itself); like sync.RWMutex, it must
//     not take a second guard on a page while a writer may be waiting for it.
//
// Allocation when every slot is pinned: the clock sweeps a bounded number of
// steps (2 × slots × (MaxUsageCount+1)) and then fails at once with an error
// that matches ErrAllPinned ("pagecache: all N slots pinned"). It never waits:
// a caller that holds guards while allocating could otherwise deadlock, and
// the caller knows better whether to retry, read without caching, or fail.
// Size the cache so that pins are a small fraction of the slots.
//
// On-disk format: none; the cache lives in memory only.
package pagecache
