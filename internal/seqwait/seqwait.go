package seqwait

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratadb/strata/internal/lsn"
)

// SeqWait holds a monotonically increasing LSN and the goroutines waiting
// for it to reach their targets. Create it with New.
type SeqWait struct {
	// current is written only with mu held, read without it.
	current atomic.Uint64
	// isShutdown mirrors shutdownErr != nil for the lock-free fast path.
	isShutdown atomic.Bool

	mu          sync.Mutex
	waiters     waiterHeap // guarded by mu
	shutdownErr error      // guarded by mu; set once by Shutdown
}

// waiter is one parked WaitFor call. done is closed exactly once, by Advance
// (err == nil) or by Shutdown (err != nil); err is written before the close,
// so the waiter may read it after receiving from done.
type waiter struct {
	target lsn.LSN
	index  int // position in the heap; -1 once removed
	done   chan struct{}
	err    error
}

// New returns a SeqWait whose current value is initial.
func New(initial lsn.LSN) *SeqWait {
	s := &SeqWait{}
	s.current.Store(uint64(initial))
	return s
}

// Load returns the current value. It is a single atomic read.
func (s *SeqWait) Load() lsn.LSN { return lsn.LSN(s.current.Load()) }

// Advance raises the current value to v and wakes every waiter whose target
// is now reached. It returns the value before the call. Advancing to the
// current value is a no-op. Advancing to a smaller value changes nothing and
// returns an error wrapping ErrBackwards that names both values.
//
// Advance keeps working after Shutdown (there are then no waiters to wake).
func (s *SeqWait) Advance(v lsn.LSN) (prev lsn.LSN, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev = lsn.LSN(s.current.Load())
	if v < prev {
		return prev, fmt.Errorf("%w: from %s to %s", ErrBackwards, prev, v)
	}
	if v == prev {
		return prev, nil
	}
	s.current.Store(uint64(v))
	for len(s.waiters) > 0 && s.waiters[0].target <= v {
		w := s.waiters.popMin()
		close(w.done)
	}
	return prev, nil
}

// WaitFor blocks until the current value is at least target, and then
// returns nil. It returns immediately with nil when the target is already
// reached (even if ctx is done), and with an error wrapping ErrShutdown after
// Shutdown. Otherwise it gives up with an error wrapping ErrTimeout after
// timeout (timeout <= 0 means no timeout of its own), or with an error
// wrapping ctx.Err() when ctx is done; both errors name the target and the
// current value.
func (s *SeqWait) WaitFor(ctx context.Context, target lsn.LSN, timeout time.Duration) error {
	// Fast path: no lock, no allocation.
	if !s.isShutdown.Load() && lsn.LSN(s.current.Load()) >= target {
		return nil
	}

	s.mu.Lock()
	if s.shutdownErr != nil {
		err := s.shutdownErr
		s.mu.Unlock()
		return err
	}
	if lsn.LSN(s.current.Load()) >= target {
		s.mu.Unlock()
		return nil
	}
	w := &waiter{target: target, done: make(chan struct{})}
	s.waiters.push(w)
	s.mu.Unlock()

	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}

	select {
	case <-w.done:
		return w.err
	case <-expired:
		if s.giveUp(w) {
			return w.err // woken while the timer fired: the wake-up wins
		}
		return fmt.Errorf("%w after %s waiting for %s, current value %s", ErrTimeout, timeout, target, s.Load())
	case <-ctx.Done():
		if s.giveUp(w) {
			return w.err
		}
		return fmt.Errorf("seqwait: waiting for %s, current value %s: %w", target, s.Load(), ctx.Err())
	}
}

// giveUp removes w from the heap. It reports true when w had already been
// woken (by Advance or Shutdown), in which case w.err holds the outcome.
func (s *SeqWait) giveUp(w *waiter) (woken bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.index < 0 {
		return true
	}
	s.waiters.remove(w.index)
	return false
}

// Shutdown wakes every parked waiter with an error wrapping ErrShutdown (and
// cause, when it is not nil), and makes every later WaitFor fail the same way
// at once, even for targets already reached. Only the first call has an
// effect.
func (s *SeqWait) Shutdown(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdownErr != nil {
		return
	}
	if cause != nil {
		s.shutdownErr = fmt.Errorf("%w: %w", ErrShutdown, cause)
	} else {
		s.shutdownErr = ErrShutdown
	}
	s.isShutdown.Store(true)
	for len(s.waiters) > 0 {
		w := s.waiters.popMin()
		w.err = s.shutdownErr
		close(w.done)
	}
}

// Waiting returns the number of parked waiters, for metrics and tests.
func (s *SeqWait) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}

// waiterHeap is a binary min-heap of waiters ordered by target. Each waiter
// knows its index so that it can be removed when it gives up. It is typed
// rather than built on container/heap to keep the interface conversions off
// Advance's path.
type waiterHeap []*waiter

func (h *waiterHeap) push(w *waiter) {
	w.index = len(*h)
	*h = append(*h, w)
	h.up(w.index)
}

func (h *waiterHeap) popMin() *waiter {
	return h.remove(0)
}

// remove takes out the waiter at index i and returns it with index -1.
func (h *waiterHeap) remove(i int) *waiter {
	old := *h
	last := len(old) - 1
	w := old[i]
	if i != last {
		old.swap(i, last)
	}
	old[last] = nil // let the waiter be collected
	*h = old[:last]
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	w.index = -1
	return w
}

func (h waiterHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h waiterHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].target <= h[i].target {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

// down sifts the element at i towards the leaves and reports whether it moved.
func (h waiterHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		left := 2*i + 1
		if left >= n {
			break
		}
		smallest := left
		if right := left + 1; right < n && h[right].target < h[left].target {
			smallest = right
		}
		if h[i].target <= h[smallest].target {
			break
		}
		h.swap(i, smallest)
		i = smallest
	}
	return i > start
}
