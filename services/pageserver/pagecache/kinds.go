package pagecache

import (
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
)

// LookupImmutable returns a read guard on block blk of immutable file f if
// it is cached and valid. Counts a hit or a miss.
func (c *Cache) LookupImmutable(f FileID, blk uint32) (ReadGuard, bool) {
	return c.lookupExact(blockKey(KindImmutable, f, blk))
}

// LockImmutableForWrite returns a write guard on block blk of immutable
// file f, allocating a slot if needed. If Valid() is true another goroutine
// already filled the page; otherwise fill Bytes() and MarkValid.
func (c *Cache) LockImmutableForWrite(f FileID, blk uint32) (WriteGuard, error) {
	return c.lockForWriteExact(blockKey(KindImmutable, f, blk))
}

// ReadImmutable returns block blk of immutable file f, calling fill to read
// it into the slot on a miss. Concurrent misses of the same block call fill
// once; the others wait and share the page. If fill fails, the page is
// discarded and its error returned. fill must not use the cache.
func (c *Cache) ReadImmutable(f FileID, blk uint32, fill func(page []byte) error) (ReadGuard, error) {
	return c.readThrough(blockKey(KindImmutable, f, blk), fill)
}

// LookupEphemeral returns a read guard on block blk of ephemeral file f if
// it is cached and valid. Counts a hit or a miss.
func (c *Cache) LookupEphemeral(f FileID, blk uint32) (ReadGuard, bool) {
	return c.lookupExact(blockKey(KindEphemeral, f, blk))
}

// LockEphemeralForWrite returns a write guard on block blk of ephemeral
// file f, waiting for current readers and writers of that page. Writers
// write through the cache: modify Bytes() (Valid() tells whether the old
// content is there to be extended), write the page to the file, then
// MarkValid and Release. Release without MarkValid after Bytes discards the
// page, so the next reader re-reads the file.
func (c *Cache) LockEphemeralForWrite(f FileID, blk uint32) (WriteGuard, error) {
	return c.lockForWriteExact(blockKey(KindEphemeral, f, blk))
}

// ReadEphemeral is ReadImmutable for ephemeral file blocks.
func (c *Cache) ReadEphemeral(f FileID, blk uint32, fill func(page []byte) error) (ReadGuard, error) {
	return c.readThrough(blockKey(KindEphemeral, f, blk), fill)
}

func (c *Cache) readThrough(k cacheKey, fill func(page []byte) error) (ReadGuard, error) {
	for {
		if g, ok := c.lookupExact(k); ok {
			return g, nil
		}
		w, err := c.lockForWriteExact(k)
		if err != nil {
			return ReadGuard{}, err
		}
		if !w.Valid() {
			if err := fill(w.Bytes()); err != nil {
				w.Release()
				return ReadGuard{}, err
			}
			w.MarkValid()
		}
		if g, ok := w.downgrade(); ok {
			return g, nil
		}
	}
}

// LookupMaterialized returns the newest cached version of (tenant,
// timeline, key) whose LSN C is ≤ requestLSN; the guard's LSN() is C.
// The caller must make sure no WAL record for the key exists in
// (C, requestLSN] before serving the page (see the package doc), or use
// LookupMaterializedSince. Counts a hit or a miss.
func (c *Cache) LookupMaterialized(tenant, timeline [16]byte, key [18]byte, requestLSN lsn.LSN) (ReadGuard, bool) {
	return c.lookupVersion(materializedKey(&tenant, &timeline, &key), 0, requestLSN)
}

// LookupMaterializedSince returns the newest cached version of (tenant,
// timeline, key) with lastRecordLSN ≤ C ≤ requestLSN, where lastRecordLSN is
// the LSN of the last record for the key at or below requestLSN: such a
// version is the page at requestLSN.
func (c *Cache) LookupMaterializedSince(tenant, timeline [16]byte, key [18]byte, lastRecordLSN, requestLSN lsn.LSN) (ReadGuard, bool) {
	return c.lookupVersion(materializedKey(&tenant, &timeline, &key), lastRecordLSN, requestLSN)
}

func (c *Cache) lookupVersion(k cacheKey, lo, hi lsn.LSN) (ReadGuard, bool) {
	sh := c.shardOf(&k)
	for {
		sh.mu.RLock()
		vl := sh.versions[k]
		sh.mu.RUnlock()
		i := vl.find(lo, hi)
		if i < 0 {
			c.metrics.misses[KindMaterialized].Inc()
			return ReadGuard{}, false
		}
		idx, l := vl.idx[i], vl.lsns[i]
		s := &c.slots[idx]
		s.pins.Add(1)
		s.mu.RLock()
		if s.mapped && s.valid && s.key == k && s.lsn == l {
			s.bumpUsage()
			c.metrics.hits[KindMaterialized].Inc()
			return ReadGuard{c: c, idx: idx, lsn: l}, true
		}
		s.mu.RUnlock()
		s.pins.Add(-1)
	}
}

// PutMaterialized caches page (PageSize bytes, copied) as the version of
// (tenant, timeline, key) at pageLSN. It is a no-op if that version is
// already cached, or if MaxVersionsPerKey newer versions are. Otherwise, if
// the key already has MaxVersionsPerKey versions, the oldest is dropped.
func (c *Cache) PutMaterialized(tenant, timeline [16]byte, key [18]byte, pageLSN lsn.LSN, page []byte) error {
	if len(page) != PageSize {
		return fmt.Errorf("%w: got %d bytes", ErrPageSize, len(page))
	}
	k := materializedKey(&tenant, &timeline, &key)
	sh := c.shardOf(&k)
	sh.mu.RLock()
	vl := sh.versions[k]
	sh.mu.RUnlock()
	if vl.contains(pageLSN) || (vl.n == MaxVersionsPerKey && pageLSN < vl.lsns[0]) {
		return nil
	}
	idx, err := c.findVictim()
	if err != nil {
		return err
	}
	s := &c.slots[idx]
	copy(c.page(idx), page)
	s.key = k
	s.lsn = pageLSN
	s.mapped = true
	s.valid = true
	s.usage.Store(1)

	sh.mu.Lock()
	vl = sh.versions[k]
	inserted := false
	var droppedIdx uint32
	var droppedLSN lsn.LSN
	var dropped bool
	if !vl.contains(pageLSN) {
		inserted, droppedIdx, droppedLSN, dropped = vl.insert(pageLSN, idx)
		if inserted {
			sh.versions[k] = vl
		}
	}
	sh.mu.Unlock()
	if !inserted {
		c.freeLocked(idx)
		return nil
	}
	s.mu.Unlock()
	s.pins.Add(-1)
	if dropped {
		c.tryFree(droppedIdx, k, droppedLSN)
	}
	return nil
}

// InvalidateFile drops every cached block of file f (immutable or
// ephemeral), e.g. when the file is deleted. Pages held by guards stay
// readable by their holders and are reclaimed after release.
func (c *Cache) InvalidateFile(f FileID) {
	type victim struct {
		idx uint32
		key cacheKey
	}
	var victims []victim
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k, idx := range sh.exact {
			if k.isFileBlock() && k.fileID() == f {
				delete(sh.exact, k)
				victims = append(victims, victim{idx, k})
			}
		}
		sh.mu.Unlock()
	}
	for _, v := range victims {
		c.tryFree(v.idx, v.key, 0)
	}
}

// InvalidateTimeline drops every materialized page of (tenant, timeline),
// e.g. when the timeline is deleted. Pages held by guards stay readable by
// their holders and are reclaimed after release.
func (c *Cache) InvalidateTimeline(tenant, timeline [16]byte) {
	type victim struct {
		idx uint32
		key cacheKey
		lsn lsn.LSN
	}
	var victims []victim
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k, vl := range sh.versions {
			if k.sameTimeline(&tenant, &timeline) {
				delete(sh.versions, k)
				for j := 0; j < vl.n; j++ {
					victims = append(victims, victim{vl.idx[j], k, vl.lsns[j]})
				}
			}
		}
		sh.mu.Unlock()
	}
	for _, v := range victims {
		c.tryFree(v.idx, v.key, v.lsn)
	}
}
