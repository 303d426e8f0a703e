package pagecache

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

// clockModel is the reference model of the replacement policy: the clock of
// PostgreSQL's StrategyGetBuffer, written as plainly as possible with no
// concurrency. The real cache is replayed against it step by step.
type clockModel struct {
	hand  int
	key   []int // -1: empty
	usage []int
	pins  []int
	where map[int]int
}

func newClockModel(n int) *clockModel {
	m := &clockModel{key: make([]int, n), usage: make([]int, n), pins: make([]int, n), where: map[int]int{}}
	for i := range m.key {
		m.key[i] = -1
	}
	return m
}

// access returns hit, the slot now holding key, and the evicted key (-1 if
// the slot was empty); ok is false when every slot is pinned.
func (m *clockModel) access(key int, pin bool) (hit bool, slot, evicted int, ok bool) {
	if s, found := m.where[key]; found {
		m.usage[s] = min(m.usage[s]+1, MaxUsageCount)
		if pin {
			m.pins[s]++
		}
		return true, s, -1, true
	}
	n := len(m.key)
	for range 2 * n * (MaxUsageCount + 1) {
		i := m.hand % n
		m.hand++
		if m.pins[i] > 0 {
			continue
		}
		if m.usage[i] > 0 {
			m.usage[i]--
			continue
		}
		evicted = m.key[i]
		if evicted >= 0 {
			delete(m.where, evicted)
		}
		m.key[i], m.usage[i] = key, 1
		m.where[key] = i
		if pin {
			m.pins[i]++
		}
		return false, i, evicted, true
	}
	return false, -1, -1, false
}

func (m *clockModel) unpin(key int) { m.pins[m.where[key]]-- }

// clockHarness drives the real cache with file-block reads of file 1,
// block = key, recording what the clock evicted.
type clockHarness struct {
	t       *testing.T
	c       *Cache
	evicted int
	held    map[int][]ReadGuard
}

func newClockHarness(t *testing.T, slots int) *clockHarness {
	h := &clockHarness{t: t, c: newTinyCache(t, slots), held: map[int][]ReadGuard{}}
	h.c.evictHook = func(_ uint32, old cacheKey, _ lsn.LSN) {
		if old.kind == 0 {
			h.evicted = -1
			return
		}
		h.evicted = int(old.id[8]) | int(old.id[9])<<8
	}
	return h
}

// access reads key through the cache; hit is decided before the read.
func (h *clockHarness) access(key int, pin bool) (hit bool, slot, evicted int, err error) {
	h.evicted = -1
	filled := false
	g, err := h.c.ReadImmutable(1, uint32(key), func(p []byte) error {
		filled = true
		p[0], p[1] = byte(key), byte(key>>8)
		return nil
	})
	if err != nil {
		return false, -1, -1, err
	}
	require.Equal(h.t, []byte{byte(key), byte(key >> 8)}, g.Bytes()[:2], "page content of key %d", key)
	slot = int(g.idx)
	if pin {
		h.held[key] = append(h.held[key], g)
	} else {
		g.Release()
	}
	return !filled, slot, h.evicted, nil
}

func (h *clockHarness) unpin(key int) {
	gs := h.held[key]
	gs[len(gs)-1].Release()
	h.held[key] = gs[:len(gs)-1]
}

func (h *clockHarness) releaseAll() {
	for k, gs := range h.held {
		for i := range gs {
			gs[i].Release()
		}
		delete(h.held, k)
	}
}

func describe(hit bool, slot, evicted int) string {
	switch {
	case hit:
		return fmt.Sprintf("hit %d", slot)
	case evicted < 0:
		return fmt.Sprintf("miss %d", slot)
	default:
		return fmt.Sprintf("miss %d evict %d", slot, evicted)
	}
}

// TestClockTraceHandWritten replays a trace whose expected results were
// worked out by hand from the policy (see comments), against both the
// model and the cache, so neither can drift.
func TestClockTraceHandWritten(t *testing.T) {
	const trace = `
get 1    -> miss 0
get 2    -> miss 1
get 3    -> miss 2
get 1    -> hit 0
# usages 2,1,1: the hand goes round twice, decrementing, and takes slot 1.
get 4    -> miss 1 evict 2
get 3    -> hit 2
pin 1    -> hit 0
# slot 0 is pinned: skipped without losing usage.
get 5    -> miss 2 evict 3
get 6    -> miss 1 evict 4
get 3    -> miss 2 evict 5
unpin 1
get 1    -> hit 0
# slot 0 has usage 2 and loses one; slot 1 (usage 0 after the last sweep) goes.
get 7    -> miss 1 evict 6
pin 7    -> hit 1
pin 3    -> hit 2
pin 1    -> hit 0
get 8    -> all pinned
unpin 3
get 8    -> miss 2 evict 3
`
	h := newClockHarness(t, 3)
	defer h.releaseAll()
	m := newClockModel(3)
	for lineNo, line := range strings.Split(trace, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, want, _ := strings.Cut(line, "->")
		var op string
		var key int
		_, err := fmt.Sscanf(strings.TrimSpace(cmd), "%s %d", &op, &key)
		require.NoError(t, err, "line %d", lineNo)
		want = strings.TrimSpace(want)
		if op == "unpin" {
			h.unpin(key)
			m.unpin(key)
			continue
		}
		pin := op == "pin"
		mHit, mSlot, mEvicted, mOK := m.access(key, pin)
		hit, slot, evicted, err := h.access(key, pin)
		if want == "all pinned" {
			require.False(t, mOK, "model, line %d: %s", lineNo, line)
			require.ErrorIs(t, err, ErrAllPinned, "cache, line %d", lineNo)
			require.EqualError(t, err, "pagecache: all 3 slots pinned")
			continue
		}
		require.True(t, mOK, "model, line %d", lineNo)
		require.NoError(t, err, "line %d", lineNo)
		require.Equal(t, want, describe(mHit, mSlot, mEvicted), "model, line %d: %s", lineNo, line)
		require.Equal(t, want, describe(hit, slot, evicted), "cache, line %d: %s", lineNo, line)
	}
}

// TestClockOracleTrace replays long random traces (skewed keys, random pins)
// and compares hit/miss, slot and evicted key with the model at every step.
func TestClockOracleTrace(t *testing.T) {
	for _, tc := range []struct {
		slots, keys, maxPinned int
		seed                   uint64
	}{
		{slots: 3, keys: 6, maxPinned: 2, seed: 1},
		{slots: 8, keys: 20, maxPinned: 3, seed: 2},
		{slots: 16, keys: 64, maxPinned: 8, seed: 3},
		{slots: 16, keys: 24, maxPinned: 0, seed: 4},
		{slots: 32, keys: 200, maxPinned: 31, seed: 5},
	} {
		t.Run(fmt.Sprintf("slots=%d,keys=%d,seed=%d", tc.slots, tc.keys, tc.seed), func(t *testing.T) {
			h := newClockHarness(t, tc.slots)
			defer h.releaseAll()
			m := newClockModel(tc.slots)
			rng := rand.New(rand.NewPCG(tc.seed, 0))
			var pinned []int
			hits, evictions := 0, 0
			for step := range 20000 {
				// Skew: half the accesses go to the first quarter of the keys.
				key := rng.IntN(tc.keys)
				if rng.IntN(2) == 0 {
					key = rng.IntN(max(1, tc.keys/4))
				}
				switch r := rng.IntN(10); {
				case r == 0 && len(pinned) > 0:
					i := rng.IntN(len(pinned))
					k := pinned[i]
					pinned = append(pinned[:i], pinned[i+1:]...)
					h.unpin(k)
					m.unpin(k)
				default:
					pin := r == 1 && len(pinned) < tc.maxPinned
					mHit, mSlot, mEvicted, mOK := m.access(key, pin)
					hit, slot, evicted, err := h.access(key, pin)
					require.Equal(t, mOK, err == nil, "step %d: model ok=%v, cache err=%v", step, mOK, err)
					if !mOK {
						require.ErrorIs(t, err, ErrAllPinned)
						continue
					}
					require.Equal(t, describe(mHit, mSlot, mEvicted), describe(hit, slot, evicted), "step %d, key %d", step, key)
					if pin {
						pinned = append(pinned, key)
					}
					if hit {
						hits++
					} else if evicted >= 0 {
						evictions++
					}
				}
			}
			// The trace must exercise both paths, or it proves nothing.
			require.Greater(t, hits, 1000)
			require.Greater(t, evictions, 1000)
		})
	}
}
