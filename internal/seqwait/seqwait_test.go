package seqwait

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/lsn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitParked blocks until n waiters are parked on s.
func waitParked(t testing.TB, s *SeqWait, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d parked waiters, have %d", n, s.Waiting())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAdvance(t *testing.T) {
	tests := []struct {
		name     string
		initial  lsn.LSN
		advances []lsn.LSN
		wantPrev []lsn.LSN
		wantErr  []bool
		final    lsn.LSN
	}{
		{name: "forward", initial: 0, advances: []lsn.LSN{1, 5, 100}, wantPrev: []lsn.LSN{0, 1, 5}, wantErr: []bool{false, false, false}, final: 100},
		{name: "equal is a no-op", initial: 10, advances: []lsn.LSN{10, 10}, wantPrev: []lsn.LSN{10, 10}, wantErr: []bool{false, false}, final: 10},
		{name: "backwards is refused", initial: 10, advances: []lsn.LSN{5, 20, 19, 21}, wantPrev: []lsn.LSN{10, 10, 20, 20}, wantErr: []bool{true, false, true, false}, final: 21},
		{name: "up to max", initial: 0, advances: []lsn.LSN{lsn.Max, 0}, wantPrev: []lsn.LSN{0, lsn.Max}, wantErr: []bool{false, true}, final: lsn.Max},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.initial)
			require.Equal(t, tt.initial, s.Load())
			for i, v := range tt.advances {
				prev, err := s.Advance(v)
				require.Equal(t, tt.wantPrev[i], prev, "advance #%d to %s", i, v)
				if tt.wantErr[i] {
					require.ErrorIs(t, err, ErrBackwards)
				} else {
					require.NoError(t, err)
				}
			}
			require.Equal(t, tt.final, s.Load())
		})
	}
}

func TestAdvanceBackwardsNamesBothValues(t *testing.T) {
	s := New(lsn.MustParse("1/2000"))
	prev, err := s.Advance(lsn.MustParse("1/1000"))
	require.ErrorIs(t, err, ErrBackwards)
	require.Equal(t, lsn.MustParse("1/2000"), prev)
	require.Contains(t, err.Error(), "1/2000")
	require.Contains(t, err.Error(), "1/1000")
	require.Equal(t, lsn.MustParse("1/2000"), s.Load())
}

func TestWaitForAlreadyReached(t *testing.T) {
	s := New(100)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		target lsn.LSN
	}{
		{"equal", context.Background(), 100},
		{"below", context.Background(), 1},
		{"invalid", context.Background(), lsn.Invalid},
		{"equal with cancelled ctx", cancelled, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, s.WaitFor(tt.ctx, tt.target, time.Nanosecond))
			require.Zero(t, s.Waiting())
		})
	}
}

func TestWaitForWokenByAdvance(t *testing.T) {
	s := New(0)
	errc := make(chan error, 1)
	go func() { errc <- s.WaitFor(context.Background(), 50, 0) }()
	waitParked(t, s, 1)

	_, err := s.Advance(49)
	require.NoError(t, err)
	select {
	case err := <-errc:
		t.Fatalf("woken before target reached: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	require.Equal(t, 1, s.Waiting())

	_, err = s.Advance(60)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.Zero(t, s.Waiting())
}

func TestWaitForTimeout(t *testing.T) {
	s := New(lsn.MustParse("0/10"))
	start := time.Now()
	err := s.WaitFor(context.Background(), lsn.MustParse("0/20"), 30*time.Millisecond)
	require.ErrorIs(t, err, ErrTimeout)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	require.Contains(t, err.Error(), "0/20")
	require.Contains(t, err.Error(), "0/10")
	require.Zero(t, s.Waiting(), "timed-out waiter must leave the heap")
}

func TestWaitForContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		timeout time.Duration
		want    error
	}{
		{
			name: "cancel",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(20*time.Millisecond, cancel)
				return ctx, cancel
			},
			want: context.Canceled,
		},
		{
			name: "deadline before own timeout",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			},
			timeout: time.Hour,
			want:    context.DeadlineExceeded,
		},
		{
			name: "already cancelled",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			want: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(5)
			ctx, cancel := tt.ctx()
			defer cancel()
			err := s.WaitFor(ctx, 6, tt.timeout)
			require.ErrorIs(t, err, tt.want)
			require.NotErrorIs(t, err, ErrTimeout)
			require.Contains(t, err.Error(), "0/6")
			require.Contains(t, err.Error(), "0/5")
			require.Zero(t, s.Waiting())
		})
	}
}

func TestShutdown(t *testing.T) {
	cause := errors.New("timeline deleted")
	s := New(10)
	const parked = 5
	errc := make(chan error, parked)
	for i := range parked {
		go func() { errc <- s.WaitFor(context.Background(), lsn.LSN(100+i), 0) }()
	}
	waitParked(t, s, parked)

	s.Shutdown(cause)
	for range parked {
		err := <-errc
		require.ErrorIs(t, err, ErrShutdown)
		require.ErrorIs(t, err, cause)
	}
	require.Zero(t, s.Waiting())

	// Later waits fail fast, even for a reached target.
	require.ErrorIs(t, s.WaitFor(context.Background(), 10, 0), ErrShutdown)
	require.ErrorIs(t, s.WaitFor(context.Background(), 1000, 0), ErrShutdown)

	// Only the first Shutdown counts.
	s.Shutdown(errors.New("second"))
	require.ErrorIs(t, s.WaitFor(context.Background(), 1000, 0), cause)

	// Advance still records progress.
	prev, err := s.Advance(20)
	require.NoError(t, err)
	require.Equal(t, lsn.LSN(10), prev)
	require.Equal(t, lsn.LSN(20), s.Load())
}

func TestShutdownWithoutCause(t *testing.T) {
	s := New(0)
	s.Shutdown(nil)
	err := s.WaitFor(context.Background(), 1, 0)
	require.ErrorIs(t, err, ErrShutdown)
	require.Equal(t, ErrShutdown.Error(), err.Error())
}

// TestConcurrentWaiters runs many waiters with random targets, timeouts and
// cancellations against several concurrent advancers; run it under -race.
func TestConcurrentWaiters(t *testing.T) {
	const (
		waiters  = 400
		maxValue = 2000
	)
	s := New(0)
	rng := rand.New(rand.NewPCG(1, 2))

	type outcome struct {
		target lsn.LSN
		err    error
		after  lsn.LSN // Load() right after WaitFor returned
	}
	results := make(chan outcome, waiters)
	var wg sync.WaitGroup
	var returned atomic.Int64
	for i := range waiters {
		target := lsn.LSN(rng.IntN(maxValue + 200)) // some never reached
		var timeout time.Duration
		if i%7 == 0 {
			timeout = time.Duration(rng.IntN(5)+1) * time.Millisecond
		}
		ctx, cancel := context.WithCancel(context.Background())
		if i%11 == 0 {
			time.AfterFunc(time.Duration(rng.IntN(5))*time.Millisecond, cancel)
		}
		wg.Go(func() {
			defer cancel()
			err := s.WaitFor(ctx, target, timeout)
			results <- outcome{target: target, err: err, after: s.Load()}
			returned.Add(1)
		})
	}

	var adv sync.WaitGroup
	for a := range 3 {
		adv.Go(func() {
			r := rand.New(rand.NewPCG(uint64(a), 99))
			for {
				cur := s.Load()
				if cur >= maxValue {
					return
				}
				next := min(cur+lsn.LSN(r.IntN(5)+1), maxValue)
				// Racing advancers may see ErrBackwards; the value never drops.
				if _, err := s.Advance(next); err != nil && !errors.Is(err, ErrBackwards) {
					t.Errorf("advance to %s: %v", next, err)
				}
				if got := s.Load(); got < next {
					t.Errorf("value %s dropped below %s", got, next)
				}
				if r.IntN(50) == 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		})
	}
	adv.Wait()
	require.Equal(t, lsn.LSN(maxValue), s.Load())

	// Every waiter still parked has a target above maxValue: Advance popped
	// all the others. Wait until each goroutine has returned or parked (a
	// goroutine that had not called WaitFor yet would see ErrShutdown even
	// for a reached target), then let Shutdown release the parked ones.
	// returned is read first so that no goroutine is counted twice.
	deadline := time.Now().Add(10 * time.Second)
	for int(returned.Load())+s.Waiting() != waiters {
		require.True(t, time.Now().Before(deadline), "waiters neither returned nor parked")
		time.Sleep(time.Millisecond)
	}
	s.Shutdown(nil)
	wg.Wait()
	close(results)

	var reached, timedOut, cancelled, shut int
	for r := range results {
		switch {
		case r.err == nil:
			reached++
			require.GreaterOrEqual(t, r.after, r.target)
		case errors.Is(r.err, ErrTimeout):
			timedOut++
		case errors.Is(r.err, context.Canceled):
			cancelled++
		case errors.Is(r.err, ErrShutdown):
			shut++
			require.Greater(t, r.target, lsn.LSN(maxValue))
		default:
			t.Fatalf("unexpected error %v", r.err)
		}
	}
	require.Equal(t, waiters, reached+timedOut+cancelled+shut)
	require.NotZero(t, reached)
	require.NotZero(t, shut)
	require.Zero(t, s.Waiting())
	t.Logf("reached=%d timedOut=%d cancelled=%d shutdown=%d", reached, timedOut, cancelled, shut)
}

// TestGiveUpAfterWake covers the race where a waiter's timer fires just as
// Advance wakes it: the wake-up must win.
func TestGiveUpAfterWake(t *testing.T) {
	s := New(0)
	w := &waiter{target: 5, done: make(chan struct{})}
	s.mu.Lock()
	s.waiters.push(w)
	s.mu.Unlock()
	_, err := s.Advance(5)
	require.NoError(t, err)
	require.True(t, s.giveUp(w))
	require.NoError(t, w.err)

	w2 := &waiter{target: 10, done: make(chan struct{})}
	s.mu.Lock()
	s.waiters.push(w2)
	s.mu.Unlock()
	require.False(t, s.giveUp(w2))
	require.Zero(t, s.Waiting())
}

// TestHeap checks the heap invariant and index bookkeeping against random
// pushes, removals and pops.
func TestHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var h waiterHeap
	live := map[*waiter]bool{}
	check := func() {
		for i, w := range h {
			require.Equal(t, i, w.index)
			if i > 0 {
				require.LessOrEqual(t, h[(i-1)/2].target, w.target)
			}
		}
		require.Len(t, h, len(live))
	}
	for range 5000 {
		switch op := rng.IntN(3); {
		case op == 0 || len(h) == 0:
			w := &waiter{target: lsn.LSN(rng.IntN(100))}
			h.push(w)
			live[w] = true
		case op == 1:
			w := h[rng.IntN(len(h))]
			got := h.remove(w.index)
			require.Same(t, w, got)
			require.Equal(t, -1, w.index)
			delete(live, w)
		default:
			minTarget := h[0].target
			for _, w := range h {
				require.LessOrEqual(t, minTarget, w.target)
			}
			w := h.popMin()
			require.Equal(t, minTarget, w.target)
			delete(live, w)
		}
		check()
	}
}
