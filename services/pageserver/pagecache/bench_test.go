package pagecache

// Benchmarks of the cache's hot paths, each beside its baseline in the same
// benchmark function so one run measures both (see BENCH.md):
//
//   - materialized hit copied into a caller buffer vs a Go map lookup + copy
//     (target: ≤ 3× the baseline);
//   - immutable block hit vs pread of an 8 KiB block of a file in the OS
//     page cache;
//   - parallel hits vs an RWMutex-protected Go map.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stratadb/strata/internal/lsn"
)

var benchSizes = []int{1024, 16384} // 8 MiB (cache-resident) and 128 MiB working sets

// randomOrder returns a fixed pseudo-random sequence of indexes below n, so
// the cache and its baseline see the same access pattern.
func randomOrder(n int) []int {
	rng := rand.New(rand.NewPCG(1, 2))
	order := make([]int, 1<<16)
	for i := range order {
		order[i] = rng.IntN(n)
	}
	return order
}

// benchPage returns a page with non-zero content. Every page of every
// benchmark is written: a never-written page of a fresh allocation is the
// kernel's shared zero page, always in cache, which would flatter whichever
// side left its pages untouched.
func benchPage(i int) []byte {
	p := make([]byte, PageSize)
	for j := range p {
		p[j] = byte(i + j)
	}
	return p
}

type benchMatKey struct {
	tenant, timeline [16]byte
	key              [18]byte
}

func benchKey(i int) [18]byte {
	var k [18]byte
	k[13], k[14], k[15], k[16] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
	return k
}

func BenchmarkMaterializedHit(b *testing.B) {
	for _, n := range benchSizes {
		order := randomOrder(n)
		tenant, timeline := [16]byte{1, 2, 3}, [16]byte{4, 5, 6}
		const pageLSN, requestLSN = lsn.LSN(0x1000), lsn.LSN(0x2000)

		b.Run(fmt.Sprintf("pages=%d/baseline-map-copy", n), func(b *testing.B) {
			m := make(map[benchMatKey][]byte, n)
			for i := range n {
				m[benchMatKey{tenant, timeline, benchKey(i)}] = benchPage(i)
			}
			keys := make([]benchMatKey, n)
			for i := range keys {
				keys[i] = benchMatKey{tenant, timeline, benchKey(i)}
			}
			buf := make([]byte, PageSize)
			b.SetBytes(PageSize)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p, ok := m[keys[order[i&(len(order)-1)]]]
				if !ok {
					b.Fatal("miss")
				}
				copy(buf, p)
				i++
			}
		})
		b.Run(fmt.Sprintf("pages=%d/cache-copy", n), func(b *testing.B) {
			c := newTestCache(b, n+MinSlots)
			keys := make([][18]byte, n)
			for i := range n {
				keys[i] = benchKey(i)
				if err := c.PutMaterialized(tenant, timeline, keys[i], pageLSN, benchPage(i)); err != nil {
					b.Fatal(err)
				}
			}
			buf := make([]byte, PageSize)
			b.SetBytes(PageSize)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				g, ok := c.LookupMaterialized(tenant, timeline, keys[order[i&(len(order)-1)]], requestLSN)
				if !ok {
					b.Fatal("miss")
				}
				copy(buf, g.Bytes())
				g.Release()
				i++
			}
		})
	}
}

func BenchmarkImmutableHit(b *testing.B) {
	for _, n := range benchSizes {
		order := randomOrder(n)
		b.Run(fmt.Sprintf("pages=%d/baseline-pread", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "layer")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			for i := range n {
				if _, err := f.Write(benchPage(i)); err != nil {
					b.Fatal(err)
				}
			}
			buf := make([]byte, PageSize)
			for i := range n { // warm the OS page cache
				if _, err := f.ReadAt(buf, int64(i)*PageSize); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(PageSize)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := f.ReadAt(buf, int64(order[i&(len(order)-1)])*PageSize); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		for _, copyOut := range []bool{false, true} {
			name := "cache-zero-copy"
			if copyOut {
				name = "cache-copy"
			}
			b.Run(fmt.Sprintf("pages=%d/%s", n, name), func(b *testing.B) {
				c := newTestCache(b, n+MinSlots)
				file := c.NewFileID()
				for i := range n {
					g, err := c.ReadImmutable(file, uint32(i), func(p []byte) error { copy(p, benchPage(i)); return nil })
					if err != nil {
						b.Fatal(err)
					}
					g.Release()
				}
				buf := make([]byte, PageSize)
				b.SetBytes(PageSize)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					g, ok := c.LookupImmutable(file, uint32(order[i&(len(order)-1)]))
					if !ok {
						b.Fatal("miss")
					}
					if copyOut {
						copy(buf, g.Bytes())
					}
					g.Release()
					i++
				}
			})
		}
	}
}

func BenchmarkParallelHit(b *testing.B) {
	const n = 1024
	order := randomOrder(n)
	tenant, timeline := [16]byte{1}, [16]byte{2}

	b.Run("baseline-rwmutex-map-copy", func(b *testing.B) {
		var mu sync.RWMutex
		m := make(map[benchMatKey][]byte, n)
		for i := range n {
			m[benchMatKey{tenant, timeline, benchKey(i)}] = benchPage(i)
		}
		b.SetBytes(PageSize)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, PageSize)
			i := rand.IntN(len(order))
			for pb.Next() {
				k := benchMatKey{tenant, timeline, benchKey(order[i&(len(order)-1)])}
				mu.RLock()
				p := m[k]
				copy(buf, p)
				mu.RUnlock()
				i++
			}
		})
	})
	b.Run("materialized-copy", func(b *testing.B) {
		c := newTestCache(b, n+MinSlots)
		for i := range n {
			if err := c.PutMaterialized(tenant, timeline, benchKey(i), 10, benchPage(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(PageSize)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, PageSize)
			i := rand.IntN(len(order))
			for pb.Next() {
				g, ok := c.LookupMaterialized(tenant, timeline, benchKey(order[i&(len(order)-1)]), 20)
				if !ok {
					panic("miss")
				}
				copy(buf, g.Bytes())
				g.Release()
				i++
			}
		})
	})
	b.Run("immutable-zero-copy", func(b *testing.B) {
		c := newTestCache(b, n+MinSlots)
		file := c.NewFileID()
		for i := range n {
			g, err := c.ReadImmutable(file, uint32(i), func(p []byte) error { copy(p, benchPage(i)); return nil })
			if err != nil {
				b.Fatal(err)
			}
			g.Release()
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(order))
			for pb.Next() {
				g, ok := c.LookupImmutable(file, uint32(order[i&(len(order)-1)]))
				if !ok {
					panic("miss")
				}
				g.Release()
				i++
			}
		})
	})
}
