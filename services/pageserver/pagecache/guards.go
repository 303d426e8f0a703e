package pagecache

import "github.com/stratadb/strata/internal/lsn"

// ReadGuard pins a valid page and holds it shared: writers of that page wait
// until it is released. It is a small value; returning it does not allocate.
// See the package doc for the rules of use.
type ReadGuard struct {
	c   *Cache
	idx uint32
	lsn lsn.LSN
}

// Bytes returns the page (PageSize bytes), valid until Release. Callers must
// not write to it. It returns nil for a released or zero guard.
func (g *ReadGuard) Bytes() []byte {
	if g.c == nil {
		return nil
	}
	return g.c.page(g.idx)
}

// LSN returns the version LSN of a materialized page (0 for other kinds).
func (g *ReadGuard) LSN() lsn.LSN { return g.lsn }

// Release unpins the page. Releasing a released or zero guard is a no-op.
func (g *ReadGuard) Release() {
	if g.c == nil {
		return
	}
	s := &g.c.slots[g.idx]
	s.mu.RUnlock()
	s.pins.Add(-1)
	*g = ReadGuard{}
}

// WriteGuard holds a page exclusively: no reader or other writer can use the
// slot until Release. It is a small value; see the package doc for the rules.
//
// Validity protocol: Valid reports whether the page holds complete data.
// Bytes marks the page invalid, because the caller may now change it; the
// caller makes it valid again with MarkValid once the bytes are complete
// (and, for ephemeral pages, written to the file). Release of an invalid
// page discards it, so readers never see a partly written page.
type WriteGuard struct {
	c   *Cache
	idx uint32
}

// Valid reports whether the page holds complete data (filled by an earlier
// writer, or MarkValid called since the last Bytes). False for a zero guard.
func (g *WriteGuard) Valid() bool {
	if g.c == nil {
		return false
	}
	return g.c.slots[g.idx].valid
}

// Bytes returns the page for writing and marks it invalid until MarkValid.
// It returns nil for a released or zero guard.
func (g *WriteGuard) Bytes() []byte {
	if g.c == nil {
		return nil
	}
	g.c.slots[g.idx].valid = false
	return g.c.page(g.idx)
}

// MarkValid declares the page complete; readers will see it after Release.
func (g *WriteGuard) MarkValid() {
	if g.c == nil {
		return
	}
	g.c.slots[g.idx].valid = true
}

// Release unlocks the page. An invalid page is discarded (unmapped) and its
// slot becomes the clock's next choice. Releasing a released or zero guard
// is a no-op.
func (g *WriteGuard) Release() {
	if g.c == nil {
		return
	}
	c, idx := g.c, g.idx
	*g = WriteGuard{}
	s := &c.slots[idx]
	if !s.valid {
		c.unmapLocked(idx)
		c.freeLocked(idx)
		return
	}
	s.mu.Unlock()
	s.pins.Add(-1)
}

// downgrade turns a write guard on a valid page into a read guard without
// letting the clock take the slot in between (the pin is kept). It reports
// false if a writer in between left the page invalid.
func (g *WriteGuard) downgrade() (ReadGuard, bool) {
	c, idx := g.c, g.idx
	*g = WriteGuard{}
	s := &c.slots[idx]
	s.mu.Unlock()
	s.mu.RLock()
	if s.mapped && s.valid {
		return ReadGuard{c: c, idx: idx, lsn: s.lsn}, true
	}
	s.mu.RUnlock()
	s.pins.Add(-1)
	return ReadGuard{}, false
}
