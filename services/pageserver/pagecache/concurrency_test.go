package pagecache

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

// stamp fills p with a pattern derived from (id, seq) and checkPage verifies
// it, so a torn or misplaced page is detected anywhere in its 8 KiB.
func stamp(p []byte, id, seq uint64) {
	binary.LittleEndian.PutUint64(p[0:], id)
	binary.LittleEndian.PutUint64(p[8:], seq)
	b := byte(id*31 + seq*7)
	for i := 16; i < len(p); i++ {
		p[i] = b
	}
}

func checkPage(p []byte) (id, seq uint64, ok bool) {
	id = binary.LittleEndian.Uint64(p[0:])
	seq = binary.LittleEndian.Uint64(p[8:])
	b := byte(id*31 + seq*7)
	for i := 16; i < len(p); i++ {
		if p[i] != b {
			return id, seq, false
		}
	}
	return id, seq, true
}

// fakeEphemeralFile is the file behind ephemeral pages: a writer updates it
// while holding the page's write guard, as the open layer does.
type fakeEphemeralFile struct {
	mu     sync.Mutex
	blocks map[uint32][]byte
}

func (f *fakeEphemeralFile) write(blk uint32, p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocks[blk] = append([]byte(nil), p...)
}

func (f *fakeEphemeralFile) read(blk uint32, p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.blocks[blk]; ok {
		copy(p, b)
		return
	}
	stamp(p, uint64(blk), 0)
}

// TestConcurrentReadersWriters runs many goroutines over a small cache:
// immutable read-through, ephemeral write-through with readers, materialized
// puts and inexact lookups, and invalidations. Run it with -race.
func TestConcurrentReadersWriters(t *testing.T) {
	const (
		goroutines = 32
		opsEach    = 1500
		blocks     = 96 // > slots: constant eviction
	)
	c := newTestCache(t, 64)
	immutableFile := c.NewFileID()
	ephemeralFile := c.NewFileID()
	file := &fakeEphemeralFile{blocks: map[uint32][]byte{}}
	var committed [blocks]atomic.Uint64 // last seq of each ephemeral block written through
	var nextSeq [blocks]atomic.Uint64
	tenant, timeline := [16]byte{7}, [16]byte{8}
	var deadTenant [16]byte
	deadTenant[0] = 9

	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for gi := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(msg string) {
				select {
				case errs <- msg:
				default:
				}
			}
			rng := rand.New(rand.NewPCG(uint64(gi), 42))
			for range opsEach {
				blk := uint32(rng.IntN(blocks))
				switch op := rng.IntN(100); {
				case op < 35: // immutable read-through
					g, err := c.ReadImmutable(immutableFile, blk, func(p []byte) error {
						stamp(p, uint64(blk), 1)
						return nil
					})
					if err != nil {
						fail(err.Error())
						return
					}
					if id, seq, ok := checkPage(g.Bytes()); !ok || id != uint64(blk) || seq != 1 {
						fail("immutable page corrupt or misplaced")
					}
					g.Release()
				case op < 50: // ephemeral writer: write through the cache
					w, err := c.LockEphemeralForWrite(ephemeralFile, blk)
					if err != nil {
						fail(err.Error())
						return
					}
					seq := nextSeq[blk].Add(1)
					p := w.Bytes()
					if rng.IntN(10) == 0 {
						// The file write "failed": the page holds bytes the
						// file never got. Releasing without MarkValid must
						// discard them; no reader may ever see this stamp.
						stamp(p, uint64(blk)|1<<40, seq)
						w.Release()
						continue
					}
					stamp(p, uint64(blk), seq)
					file.write(blk, p)
					w.MarkValid()
					w.Release()
					if cur := committed[blk].Load(); seq > cur {
						committed[blk].CompareAndSwap(cur, seq)
					}
				case op < 70: // ephemeral reader: never older than what was committed before
					before := committed[blk].Load()
					g, err := c.ReadEphemeral(ephemeralFile, blk, func(p []byte) error {
						file.read(blk, p)
						return nil
					})
					if err != nil {
						fail(err.Error())
						return
					}
					id, seq, ok := checkPage(g.Bytes())
					g.Release()
					if !ok || id != uint64(blk) {
						fail("ephemeral page torn or misplaced")
					}
					if seq < before {
						fail("ephemeral reader saw a page older than a completed write")
					}
				case op < 85: // materialized put
					key := [18]byte{17: byte(blk % 16)}
					l := lsn.LSN(rng.IntN(1000) + 1)
					p := make([]byte, PageSize)
					stamp(p, uint64(blk%16), uint64(l))
					ten := tenant
					if op < 75 {
						ten = deadTenant
					}
					if err := c.PutMaterialized(ten, timeline, key, l, p); err != nil {
						fail(err.Error())
						return
					}
				case op < 99: // materialized inexact lookup
					key := [18]byte{17: byte(blk % 16)}
					req := lsn.LSN(rng.IntN(1000) + 1)
					g, ok := c.LookupMaterialized(tenant, timeline, key, req)
					if ok {
						id, seq, good := checkPage(g.Bytes())
						if !good || id != uint64(blk%16) || lsn.LSN(seq) != g.LSN() || g.LSN() > req {
							fail("materialized lookup returned a wrong version")
						}
						g.Release()
					}
				default:
					c.InvalidateTimeline(deadTenant, timeline)
					c.InvalidateFile(c.NewFileID()) // an unknown file: must not disturb anything
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	require.Equal(t, 0, c.pinnedSlots(), "every guard was released")
	for i := range c.slots {
		require.True(t, c.slots[i].mu.TryLock(), "slot %d still locked", i)
		c.slots[i].mu.Unlock()
	}
}
