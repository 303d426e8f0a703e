package seqwait

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/lsn"
)

// Baselines: an uncontended mutex around an atomic store is the floor for
// Advance; a bare atomic load is the floor for Load and for WaitFor on a
// reached target.
//
// Measured on the shared 2-core dev box (AMD EPYC, go1.26, -count=2):
//
//	BenchmarkBaselineMutexAtomicStore   6.6-6.7 ns/op
//	BenchmarkBaselineAtomicLoad         0.6-0.7 ns/op
//	BenchmarkAdvance/waiters=0          7.0-8.2 ns/op   0 allocs/op
//	BenchmarkAdvance/waiters=1000       7.1-8.5 ns/op   0 allocs/op
//	BenchmarkWaitForReached             3.0-3.3 ns/op   0 allocs/op
//	BenchmarkWaitForWake                1.25-1.4 µs/op  6 allocs/op (includes a goroutine start)
func BenchmarkBaselineMutexAtomicStore(b *testing.B) {
	var mu sync.Mutex
	var v atomic.Uint64
	for i := 0; b.Loop(); i++ {
		mu.Lock()
		v.Store(uint64(i))
		mu.Unlock()
	}
}

func BenchmarkBaselineAtomicLoad(b *testing.B) {
	var v atomic.Uint64
	v.Store(1)
	var sink uint64
	for b.Loop() {
		sink += v.Load()
	}
	_ = sink
}

// BenchmarkAdvance measures Advance with no waiters and with 1000 waiters
// parked far ahead (none is woken, so this is the steady-state ingest cost).
func BenchmarkAdvance(b *testing.B) {
	for _, parked := range []int{0, 1000} {
		b.Run(benchName("waiters", parked), func(b *testing.B) {
			s := New(0)
			var wg sync.WaitGroup
			for range parked {
				wg.Go(func() { _ = s.WaitFor(context.Background(), lsn.Max, 0) })
			}
			waitParked(b, s, parked)
			b.ReportAllocs()
			v := lsn.LSN(0)
			for b.Loop() {
				v++
				if _, err := s.Advance(v); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			s.Shutdown(nil)
			wg.Wait()
		})
	}
}

// BenchmarkWaitForReached is the GetPage@LSN fast path: the WAL is already there.
func BenchmarkWaitForReached(b *testing.B) {
	s := New(1000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.WaitFor(ctx, 500, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitForWake is a full park/wake round trip through the heap.
func BenchmarkWaitForWake(b *testing.B) {
	s := New(0)
	ctx := context.Background()
	b.ReportAllocs()
	v := lsn.LSN(0)
	for b.Loop() {
		v++
		done := make(chan error, 1)
		go func() { done <- s.WaitFor(ctx, v, 0) }()
		for s.Waiting() == 0 { // until parked: measure the slow path
			runtime.Gosched()
		}
		if _, err := s.Advance(v); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

func benchName(k string, v int) string { return k + "=" + strconv.Itoa(v) }
