package pagecache

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int64
		wantErr string
	}{
		{"default", DefaultConfig().SizeBytes, ""},
		{"minimum", MinSizeBytes, ""},
		{"zero", 0, "below the minimum"},
		{"negative", -PageSize, "below the minimum"},
		{"one slot short", MinSizeBytes - PageSize, "below the minimum"},
		{"not a multiple", MinSizeBytes + 1, "not a multiple of 8192"},
		{"too many slots", (MaxSlots + 1) * PageSize, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{SizeBytes: tc.size}.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.wantErr)
			_, err = New(Config{SizeBytes: tc.size}, nil)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

func fillByte(b byte) func([]byte) error {
	return func(p []byte) error {
		for i := range p {
			p[i] = b
		}
		return nil
	}
}

// TestPinnedNeverEvicted pins some pages, then churns through many more
// keys than there are slots: the pinned pages keep their slot and bytes.
func TestPinnedNeverEvicted(t *testing.T) {
	c := newTestCache(t, MinSlots)
	f := c.NewFileID()
	var pinned []ReadGuard
	for blk := range uint32(MinSlots - 1) {
		g, err := c.ReadImmutable(f, blk, fillByte(byte(blk)))
		require.NoError(t, err)
		pinned = append(pinned, g)
	}
	evicted := map[uint32]bool{}
	c.evictHook = func(idx uint32, old cacheKey, _ lsn.LSN) { evicted[idx] = true }
	g2 := c.NewFileID()
	for blk := range uint32(1000) {
		g, err := c.ReadImmutable(g2, blk, fillByte(0xEE))
		require.NoError(t, err)
		g.Release()
	}
	for i := range pinned {
		require.False(t, evicted[pinned[i].idx], "pinned slot %d was evicted", pinned[i].idx)
		require.Equal(t, byte(i), pinned[i].Bytes()[0])
		require.Equal(t, byte(i), pinned[i].Bytes()[PageSize-1])
		again, ok := c.LookupImmutable(f, uint32(i))
		require.True(t, ok)
		require.Equal(t, pinned[i].idx, again.idx)
		again.Release()
	}
	// With every slot pinned, allocation fails at once with a clear error.
	last, err := c.ReadImmutable(g2, 5000, fillByte(1))
	require.NoError(t, err)
	_, err = c.ReadImmutable(g2, 5001, fillByte(1))
	require.ErrorIs(t, err, ErrAllPinned)
	require.EqualError(t, err, "pagecache: all 16 slots pinned")
	var ape *AllPinnedError
	require.True(t, errors.As(err, &ape))
	require.Equal(t, MinSlots, ape.Slots)
	require.Equal(t, MinSlots, c.pinnedSlots())
	last.Release()
	for i := range pinned {
		pinned[i].Release()
	}
	require.Equal(t, 0, c.pinnedSlots())
	_, err = c.ReadImmutable(g2, 5001, fillByte(1))
	require.NoError(t, err)
}

func TestWriteGuardValidity(t *testing.T) {
	c := newTestCache(t, MinSlots)
	f := c.NewFileID()

	// A fresh page is invalid: readers miss until it is marked valid.
	w, err := c.LockEphemeralForWrite(f, 0)
	require.NoError(t, err)
	require.False(t, w.Valid())
	copy(w.Bytes(), "hello")
	w.Release() // not marked valid: discarded
	_, ok := c.LookupEphemeral(f, 0)
	require.False(t, ok, "a page released without MarkValid must not be readable")
	require.Equal(t, 0, c.pinnedSlots())

	w, err = c.LockEphemeralForWrite(f, 0)
	require.NoError(t, err)
	require.False(t, w.Valid())
	copy(w.Bytes(), "hello")
	w.MarkValid()
	require.True(t, w.Valid())
	w.Release()
	w.Release() // second release of the same variable: no-op
	require.Nil(t, w.Bytes())

	r, ok := c.LookupEphemeral(f, 0)
	require.True(t, ok)
	require.Equal(t, "hello", string(r.Bytes()[:5]))
	r.Release()
	r.Release()
	require.Nil(t, r.Bytes())

	// Extending a valid page: Valid before Bytes, invalid after, valid after MarkValid.
	w, err = c.LockEphemeralForWrite(f, 0)
	require.NoError(t, err)
	require.True(t, w.Valid())
	p := w.Bytes()
	require.False(t, w.Valid())
	copy(p[5:], " world")
	w.MarkValid()
	w.Release()
	r, ok = c.LookupEphemeral(f, 0)
	require.True(t, ok)
	require.Equal(t, "hello world", string(r.Bytes()[:11]))
	r.Release()

	// Looking at Valid only and releasing keeps the page.
	w, err = c.LockEphemeralForWrite(f, 0)
	require.NoError(t, err)
	require.True(t, w.Valid())
	w.Release()
	r, ok = c.LookupEphemeral(f, 0)
	require.True(t, ok)
	r.Release()

	// Zero guards are inert.
	var zr ReadGuard
	var zw WriteGuard
	zr.Release()
	zw.MarkValid()
	zw.Release()
	require.False(t, zw.Valid())
	require.Nil(t, zr.Bytes())
	require.Equal(t, 0, c.pinnedSlots())
}

// TestWriteLockExcludesReaders checks that a reader of an ephemeral page
// waits while a writer holds it and then sees the complete new content.
func TestWriteLockExcludesReaders(t *testing.T) {
	c := newTestCache(t, MinSlots)
	f := c.NewFileID()
	w, err := c.LockEphemeralForWrite(f, 7)
	require.NoError(t, err)
	copy(w.Bytes(), "v1")
	w.MarkValid()
	w.Release()

	w, err = c.LockEphemeralForWrite(f, 7)
	require.NoError(t, err)
	got := make(chan string)
	go func() {
		r, ok := c.LookupEphemeral(f, 7)
		if !ok {
			got <- "miss"
			return
		}
		s := string(r.Bytes()[:2])
		r.Release()
		got <- s
	}()
	select {
	case s := <-got:
		t.Fatalf("reader got %q while the writer held the page", s)
	case <-time.After(50 * time.Millisecond):
	}
	copy(w.Bytes(), "v2")
	w.MarkValid()
	w.Release()
	require.Equal(t, "v2", <-got)
}

func TestReadThroughFillError(t *testing.T) {
	c := newTestCache(t, MinSlots)
	f := c.NewFileID()
	boom := errors.New("disk on fire")
	_, err := c.ReadImmutable(f, 1, func([]byte) error { return boom })
	require.ErrorIs(t, err, boom)
	require.Equal(t, 0, c.pinnedSlots())
	_, ok := c.LookupImmutable(f, 1)
	require.False(t, ok)
	calls := 0
	g, err := c.ReadImmutable(f, 1, func(p []byte) error { calls++; p[0] = 9; return nil })
	require.NoError(t, err)
	require.Equal(t, byte(9), g.Bytes()[0])
	g.Release()
	g, err = c.ReadImmutable(f, 1, func(p []byte) error { calls++; return nil })
	require.NoError(t, err)
	g.Release()
	require.Equal(t, 1, calls, "a hit must not call fill")
}

func TestKindsAreSeparate(t *testing.T) {
	c := newTestCache(t, MinSlots)
	f := c.NewFileID()
	g, err := c.ReadImmutable(f, 3, fillByte(1))
	require.NoError(t, err)
	g.Release()
	_, ok := c.LookupEphemeral(f, 3)
	require.False(t, ok, "an immutable block must not answer an ephemeral lookup")
	g, err = c.ReadEphemeral(f, 3, fillByte(2))
	require.NoError(t, err)
	require.Equal(t, byte(2), g.Bytes()[0])
	g.Release()
	g, ok = c.LookupImmutable(f, 3)
	require.True(t, ok)
	require.Equal(t, byte(1), g.Bytes()[0])
	g.Release()
	require.NotEqual(t, c.NewFileID(), c.NewFileID())
}

func TestInvalidateFile(t *testing.T) {
	c := newTestCache(t, 40) // exactly full after the setup below
	f, other := c.NewFileID(), c.NewFileID()
	for blk := range uint32(10) {
		for _, id := range []FileID{f, other} {
			g, err := c.ReadImmutable(id, blk, fillByte(byte(id)))
			require.NoError(t, err)
			g.Release()
			g, err = c.ReadEphemeral(id, blk+100, fillByte(byte(id)))
			require.NoError(t, err)
			g.Release()
		}
	}
	held, ok := c.LookupImmutable(f, 0)
	require.True(t, ok)

	c.InvalidateFile(f)
	for blk := range uint32(10) {
		_, ok := c.LookupImmutable(f, blk)
		require.False(t, ok)
		_, ok = c.LookupEphemeral(f, blk+100)
		require.False(t, ok)
		g, ok := c.LookupImmutable(other, blk)
		require.True(t, ok, "another file's block was dropped")
		g.Release()
		g, ok = c.LookupEphemeral(other, blk+100)
		require.True(t, ok)
		g.Release()
	}
	// A guard held across invalidation still reads its page.
	require.Equal(t, byte(f), held.Bytes()[0])
	held.Release()
	require.Equal(t, 0, c.pinnedSlots())
	// The cache is full; the 20 dropped pages' slots are reused before any
	// live page of the other file is evicted.
	var evictedLive int
	c.evictHook = func(_ uint32, old cacheKey, _ lsn.LSN) {
		if old.kind != 0 && old.fileID() != f {
			evictedLive++
		}
	}
	nf := c.NewFileID()
	for blk := range uint32(20) {
		g, err := c.ReadImmutable(nf, blk, fillByte(3))
		require.NoError(t, err)
		g.Release()
	}
	require.Zero(t, evictedLive, "a live page was evicted while invalidated slots were free")
	for blk := range uint32(10) {
		g, ok := c.LookupImmutable(other, blk)
		require.True(t, ok)
		g.Release()
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := New(Config{SizeBytes: MinSizeBytes}, reg)
	require.NoError(t, err)
	_, err = New(Config{SizeBytes: MinSizeBytes}, reg)
	require.Error(t, err, "registering twice on one registry must fail")

	f := c.NewFileID()
	for blk := range uint32(MinSlots + 4) {
		g, err := c.ReadImmutable(f, blk, fillByte(0))
		require.NoError(t, err)
		g.Release()
	}
	g, ok := c.LookupImmutable(f, MinSlots+3)
	require.True(t, ok)
	_, ok = c.LookupEphemeral(f, 0)
	require.False(t, ok)

	var tenant, timeline [16]byte
	var key [18]byte
	require.NoError(t, c.PutMaterialized(tenant, timeline, key, 10, make([]byte, PageSize)))
	m, ok := c.LookupMaterialized(tenant, timeline, key, 20)
	require.True(t, ok)
	m.Release()

	mfs, err := reg.Gather()
	require.NoError(t, err)
	byName := map[string]float64{}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			v := metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
			name := mf.GetName()
			for _, l := range metric.GetLabel() {
				name += "/" + l.GetValue()
			}
			byName[name] = v
		}
	}
	require.Equal(t, 1.0, byName["strata_pagecache_slots_pinned"])
	require.Equal(t, float64(MinSlots), byName["strata_pagecache_slots"])
	require.Equal(t, 1.0, byName["strata_pagecache_hits_total/immutable"])
	require.Equal(t, float64(MinSlots+4), byName["strata_pagecache_misses_total/immutable"])
	require.Equal(t, 1.0, byName["strata_pagecache_misses_total/ephemeral"])
	require.Equal(t, 1.0, byName["strata_pagecache_hits_total/materialized"])
	require.Equal(t, 0.0, byName["strata_pagecache_hits_total/ephemeral"])
	// 20 blocks in 16 slots evict 4; the materialized page evicts a 5th.
	require.Equal(t, 5.0, byName["strata_pagecache_evictions_total/immutable"])
	g.Release()
}

// TestNoAllocationPerHit: hits of every kind, including copy-out, allocate nothing.
func TestNoAllocationPerHit(t *testing.T) {
	c, err := New(Config{SizeBytes: 64 * PageSize}, prometheus.NewRegistry())
	require.NoError(t, err)
	f := c.NewFileID()
	g, err := c.ReadImmutable(f, 1, fillByte(1))
	require.NoError(t, err)
	g.Release()
	g, err = c.ReadEphemeral(f, 2, fillByte(2))
	require.NoError(t, err)
	g.Release()
	tenant, timeline, key := [16]byte{1}, [16]byte{2}, [18]byte{3}
	require.NoError(t, c.PutMaterialized(tenant, timeline, key, 100, make([]byte, PageSize)))
	buf := make([]byte, PageSize)
	fill := fillByte(9)

	for name, hit := range map[string]func(){
		"immutable": func() {
			g, ok := c.LookupImmutable(f, 1)
			if !ok {
				t.Fatal("miss")
			}
			copy(buf, g.Bytes())
			g.Release()
		},
		"immutable read-through": func() {
			g, err := c.ReadImmutable(f, 1, fill)
			if err != nil {
				t.Fatal(err)
			}
			g.Release()
		},
		"ephemeral": func() {
			g, ok := c.LookupEphemeral(f, 2)
			if !ok {
				t.Fatal("miss")
			}
			g.Release()
		},
		"materialized": func() {
			g, ok := c.LookupMaterialized(tenant, timeline, key, 200)
			if !ok {
				t.Fatal("miss")
			}
			copy(buf, g.Bytes())
			g.Release()
		},
	} {
		t.Run(name, func(t *testing.T) {
			require.Zero(t, testing.AllocsPerRun(1000, hit))
		})
	}
}
