package pagecache

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
)

const (
	// PageSize is the size of a slot: one PostgreSQL block.
	PageSize = pgtypes.BLCKSZ
	// MaxUsageCount caps a slot's usage count, as BM_MAX_USAGE_COUNT in PostgreSQL.
	MaxUsageCount = 5
	// MinSlots is the smallest cache accepted. Below it a handful of
	// concurrent guards could pin every slot.
	MinSlots = 16
	// MinSizeBytes is MinSlots pages.
	MinSizeBytes = MinSlots * PageSize
	// MaxSlots bounds the slot index to 31 bits (16 TiB of cache).
	MaxSlots = 1 << 31
	// MaxVersionsPerKey bounds the materialized versions kept per
	// (tenant, timeline, key); the newest ones are kept.
	MaxVersionsPerKey = 4

	numShards = 16 // power of two
)

// Config sizes the cache. It is parsed once at start and not changed.
type Config struct {
	// SizeBytes is the cache size; a multiple of PageSize, at least MinSizeBytes.
	SizeBytes int64 `toml:"page_cache_size_bytes"`
}

// DefaultConfig is Neon's default: 8192 slots, 64 MiB.
func DefaultConfig() Config { return Config{SizeBytes: 8192 * PageSize} }

// Validate reports every problem of c.
func (c Config) Validate() error {
	switch {
	case c.SizeBytes < MinSizeBytes:
		return fmt.Errorf("%w: page_cache_size_bytes %d is below the minimum %d (%d slots)",
			ErrInvalidConfig, c.SizeBytes, MinSizeBytes, MinSlots)
	case c.SizeBytes%PageSize != 0:
		return fmt.Errorf("%w: page_cache_size_bytes %d is not a multiple of %d",
			ErrInvalidConfig, c.SizeBytes, PageSize)
	case c.SizeBytes/PageSize > MaxSlots:
		return fmt.Errorf("%w: page_cache_size_bytes %d exceeds %d slots",
			ErrInvalidConfig, c.SizeBytes, MaxSlots)
	}
	return nil
}

// slot is the metadata of one arena page.
//
// mu is held shared by ReadGuards and exclusively by WriteGuards and by the
// clock while it repurposes the slot. key, lsn, mapped and valid are written
// only under mu held exclusively. pins counts guards (and goroutines about to
// take mu); the clock takes a slot only if it gets mu with pins == 0.
type slot struct {
	mu    sync.RWMutex
	pins  atomic.Int32
	usage atomic.Uint32
	lsn   lsn.LSN // materialized version; 0 for other kinds
	key   cacheKey
	// mapped: the slot holds key and a mapping may point to it.
	mapped bool
	// valid: the page bytes are complete and readable.
	valid bool
}

// shard is one part of the mapping; a key's shard is fixed by its hash.
type shard struct {
	mu       sync.RWMutex
	exact    map[cacheKey]uint32      // file-block kinds → slot
	versions map[cacheKey]versionList // materialized key → versions
	_        [40]byte                 // keep shards on separate cache lines
}

// versionList holds the cached versions of one materialized key, ascending
// by LSN. It is a value (no pointers) so the maps hold no GC work.
type versionList struct {
	n    int
	lsns [MaxVersionsPerKey]lsn.LSN
	idx  [MaxVersionsPerKey]uint32
}

// Cache is the process-wide page cache. Create it with New.
type Cache struct {
	slots      []slot
	arena      []byte
	shards     [numShards]shard
	hand       atomic.Uint64
	nextFileID atomic.Uint64
	metrics    *metrics

	// evictHook, if set (tests only), is called with the slot taken by the
	// clock and the mapping it held (kind 0 if none), under the slot's lock.
	evictHook func(idx uint32, old cacheKey, oldLSN lsn.LSN)
}

// New creates a cache of cfg.SizeBytes and registers its metrics on reg
// (nil: not registered).
func New(cfg Config, reg prometheus.Registerer) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := int(cfg.SizeBytes / PageSize)
	c := &Cache{
		slots: make([]slot, n),
		arena: make([]byte, n*PageSize),
	}
	for i := range c.shards {
		c.shards[i].exact = make(map[cacheKey]uint32)
		c.shards[i].versions = make(map[cacheKey]versionList)
	}
	m, err := newMetrics(c, reg)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	return c, nil
}

// Slots returns the number of slots.
func (c *Cache) Slots() int { return len(c.slots) }

// NewFileID returns a file id never returned before by this cache.
func (c *Cache) NewFileID() FileID { return FileID(c.nextFileID.Add(1)) }

// page returns slot idx's bytes, capacity-limited so appends cannot spill
// into the next slot.
func (c *Cache) page(idx uint32) []byte {
	off := int(idx) * PageSize
	return c.arena[off : off+PageSize : off+PageSize]
}

func (c *Cache) shardOf(k *cacheKey) *shard { return &c.shards[k.shard()] }

// bumpUsage adds one use, up to MaxUsageCount. A lost race loses one use,
// which the clock tolerates.
func (s *slot) bumpUsage() {
	if u := s.usage.Load(); u < MaxUsageCount {
		s.usage.CompareAndSwap(u, u+1)
	}
}

// pinnedSlots counts slots with at least one pin (for the gauge).
func (c *Cache) pinnedSlots() int {
	n := 0
	for i := range c.slots {
		if c.slots[i].pins.Load() > 0 {
			n++
		}
	}
	return n
}

// findVictim runs the clock and returns a slot locked exclusively and pinned
// once, whose old mapping (if any) has been removed. It fails with
// *AllPinnedError after a bounded sweep.
func (c *Cache) findVictim() (uint32, error) {
	n := uint64(len(c.slots))
	limit := 2 * n * (MaxUsageCount + 1)
	for range limit {
		idx := uint32((c.hand.Add(1) - 1) % n)
		s := &c.slots[idx]
		if s.pins.Load() > 0 {
			continue
		}
		if u := s.usage.Load(); u > 0 {
			s.usage.CompareAndSwap(u, u-1)
			continue
		}
		if !s.mu.TryLock() {
			continue
		}
		// A goroutine that pinned after our check will find the slot
		// changed when it gets the lock, and retry.
		if s.pins.Load() != 0 {
			s.mu.Unlock()
			continue
		}
		s.pins.Add(1)
		if c.evictHook != nil {
			var old cacheKey
			if s.mapped {
				old = s.key
			}
			c.evictHook(idx, old, s.lsn)
		}
		if s.mapped {
			c.metrics.evictions[s.key.kind].Inc()
			c.unmapLocked(idx)
		}
		return idx, nil
	}
	c.metrics.allPinned.Inc()
	return 0, &AllPinnedError{Slots: len(c.slots)}
}

// unmapLocked removes slot idx's mapping, if the mapping still points to
// it, and marks the slot empty. The caller holds the slot exclusively.
func (c *Cache) unmapLocked(idx uint32) {
	s := &c.slots[idx]
	if !s.mapped {
		return
	}
	sh := c.shardOf(&s.key)
	sh.mu.Lock()
	if s.key.kind == KindMaterialized {
		if vl, ok := sh.versions[s.key]; ok {
			if vl.remove(s.lsn, idx) {
				if vl.n == 0 {
					delete(sh.versions, s.key)
				} else {
					sh.versions[s.key] = vl
				}
			}
		}
	} else if cur, ok := sh.exact[s.key]; ok && cur == idx {
		delete(sh.exact, s.key)
	}
	sh.mu.Unlock()
	s.mapped = false
	s.valid = false
	s.lsn = 0
	s.key = cacheKey{}
}

// freeLocked empties slot idx (already unmapped), makes it the clock's next
// choice, and unlocks and unpins it.
func (c *Cache) freeLocked(idx uint32) {
	s := &c.slots[idx]
	s.mapped = false
	s.valid = false
	s.lsn = 0
	s.key = cacheKey{}
	s.usage.Store(0)
	s.mu.Unlock()
	s.pins.Add(-1)
}

// tryFree empties slot idx if it still holds (k, l) and nobody holds it.
// Used by invalidation after the mapping entry was deleted; a slot that is
// busy stays an orphan (holding k, unreachable) until the clock takes it.
func (c *Cache) tryFree(idx uint32, k cacheKey, l lsn.LSN) {
	s := &c.slots[idx]
	s.usage.Store(0)
	if !s.mu.TryLock() {
		return
	}
	if s.mapped && s.key == k && s.lsn == l {
		s.mapped = false
		s.valid = false
		s.lsn = 0
		s.key = cacheKey{}
	}
	s.mu.Unlock()
}

// lookupExact returns a read guard on the valid page mapped by k.
func (c *Cache) lookupExact(k cacheKey) (ReadGuard, bool) {
	sh := c.shardOf(&k)
	for {
		sh.mu.RLock()
		idx, ok := sh.exact[k]
		sh.mu.RUnlock()
		if !ok {
			c.metrics.misses[k.kind].Inc()
			return ReadGuard{}, false
		}
		s := &c.slots[idx]
		s.pins.Add(1)
		s.mu.RLock()
		if s.mapped && s.key == k {
			if s.valid {
				s.bumpUsage()
				c.metrics.hits[k.kind].Inc()
				return ReadGuard{c: c, idx: idx, lsn: s.lsn}, true
			}
			// Mapped but invalid under a shared lock cannot outlive a
			// writer; treat it as a miss.
			s.mu.RUnlock()
			s.pins.Add(-1)
			c.metrics.misses[k.kind].Inc()
			return ReadGuard{}, false
		}
		// The slot was repurposed between the map lookup and the lock.
		s.mu.RUnlock()
		s.pins.Add(-1)
	}
}

// lockForWriteExact returns a write guard on k's slot, allocating one if k
// is not mapped. The guard's Valid reports whether the page already held
// valid data.
func (c *Cache) lockForWriteExact(k cacheKey) (WriteGuard, error) {
	sh := c.shardOf(&k)
	for {
		sh.mu.RLock()
		idx, ok := sh.exact[k]
		sh.mu.RUnlock()
		if ok {
			s := &c.slots[idx]
			s.pins.Add(1)
			s.mu.Lock()
			if s.mapped && s.key == k {
				s.bumpUsage()
				return WriteGuard{c: c, idx: idx}, nil
			}
			s.mu.Unlock()
			s.pins.Add(-1)
			continue
		}
		idx, err := c.findVictim()
		if err != nil {
			return WriteGuard{}, err
		}
		s := &c.slots[idx]
		sh.mu.Lock()
		if _, exists := sh.exact[k]; exists {
			// Another writer mapped k first: use its slot.
			sh.mu.Unlock()
			c.freeLocked(idx)
			continue
		}
		s.key = k
		s.lsn = 0
		s.mapped = true
		s.valid = false
		s.usage.Store(1)
		sh.exact[k] = idx
		sh.mu.Unlock()
		return WriteGuard{c: c, idx: idx}, nil
	}
}

// remove deletes version (l, idx); it reports whether it was present.
func (vl *versionList) remove(l lsn.LSN, idx uint32) bool {
	for i := 0; i < vl.n; i++ {
		if vl.lsns[i] == l && vl.idx[i] == idx {
			copy(vl.lsns[i:vl.n], vl.lsns[i+1:vl.n])
			copy(vl.idx[i:vl.n], vl.idx[i+1:vl.n])
			vl.n--
			return true
		}
	}
	return false
}

// find returns the position of the newest version in [lo, hi], or -1.
func (vl *versionList) find(lo, hi lsn.LSN) int {
	for i := vl.n - 1; i >= 0; i-- {
		if vl.lsns[i] <= hi {
			if vl.lsns[i] >= lo {
				return i
			}
			return -1
		}
	}
	return -1
}

func (vl *versionList) contains(l lsn.LSN) bool {
	for i := 0; i < vl.n; i++ {
		if vl.lsns[i] == l {
			return true
		}
	}
	return false
}

// insert adds (l, idx) keeping LSN order. If the list is full it drops the
// oldest version and returns its slot (dropped == true). If the list is full
// and l is older than every version, nothing is inserted (inserted == false).
func (vl *versionList) insert(l lsn.LSN, idx uint32) (inserted bool, droppedIdx uint32, droppedLSN lsn.LSN, dropped bool) {
	if vl.n == MaxVersionsPerKey {
		if l < vl.lsns[0] {
			return false, 0, 0, false
		}
		droppedIdx, droppedLSN, dropped = vl.idx[0], vl.lsns[0], true
		copy(vl.lsns[:], vl.lsns[1:])
		copy(vl.idx[:], vl.idx[1:])
		vl.n--
	}
	pos := vl.n
	for pos > 0 && vl.lsns[pos-1] > l {
		pos--
	}
	copy(vl.lsns[pos+1:vl.n+1], vl.lsns[pos:vl.n])
	copy(vl.idx[pos+1:vl.n+1], vl.idx[pos:vl.n])
	vl.lsns[pos], vl.idx[pos] = l, idx
	vl.n++
	return true, droppedIdx, droppedLSN, dropped
}
