package replication

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/services/safekeeper-bridge/spool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewValidates(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	require.NoError(t, err)
	defer sp.Close()
	none := func() lsn.LSN { return lsn.Invalid }
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no conn string", Config{SlotName: "s"}},
		{"empty slot", Config{ConnString: "host=x"}},
		{"bad slot", Config{ConnString: "host=x", SlotName: "Bad-Slot"}},
		{"injection", Config{ConnString: "host=x", SlotName: "s; DROP"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, sp, none, nil)
			require.ErrorIs(t, err, ErrConfig)
		})
	}
}

// TestSlotFollowsPageserver checks the feedback rule against a real
// primary: the slot's restart_lsn does not move while the pageserver has
// persisted nothing, even though the spool holds WAL, and then follows the
// pageserver's disk_consistent_lsn, not the spool.
func TestSlotFollowsPageserver(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	require.NoError(t, err)
	defer sp.Close()
	dcl := lsn.NewAtomic(lsn.Invalid)
	s, err := New(Config{ConnString: srv.ReplicationConnString(), SlotName: "feedback", StatusInterval: 20 * time.Millisecond}, sp, dcl.Load, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	restart := func() lsn.LSN {
		return lsn.MustParse(srv.Query(t, "postgres", "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'feedback'"))
	}
	require.Eventually(t, func() bool {
		return srv.Query(t, "postgres", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'feedback'") == "1"
	}, 20*time.Second, 20*time.Millisecond)
	initial := restart()
	srv.Exec(t, "postgres", "CREATE TABLE t AS SELECT generate_series(1, 20000) AS x")
	target := srv.CurrentWALLSN(t)
	require.Eventually(t, func() bool { return sp.FlushLSN() >= target }, 20*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // several status updates
	require.Equal(t, initial, restart(), "slot advanced without pageserver feedback")
	require.Equal(t, lsn.Invalid, s.Stats().ReportedFlushLSN.Load())

	mid := initial + lsn.LSN(target.Sub(initial)/2)
	dcl.Store(mid)
	require.Eventually(t, func() bool { return restart() == mid }, 20*time.Second, 20*time.Millisecond)
	// A pageserver ahead of the spool (cannot happen, but) is capped.
	dcl.Store(target + 1<<30)
	require.Eventually(t, func() bool { r := restart(); return r >= target && r <= sp.FlushLSN() }, 20*time.Second, 20*time.Millisecond)
	reported := s.Stats().ReportedFlushLSN.Load()
	require.LessOrEqual(t, reported, sp.FlushLSN(), "reported %s", fmt.Sprint(reported))
	require.NoError(t, s.Stats().LastError())
}

// TestPrimaryRestartAndCrash checks that the client reconnects after the
// primary restarts and after it crashes, and that the spool stays
// contiguous across (Append would fail otherwise).
func TestPrimaryRestartAndCrash(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	require.NoError(t, err)
	defer sp.Close()
	s, err := New(Config{ConnString: srv.ReplicationConnString(), SlotName: "restarts", MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, sp, func() lsn.LSN { return lsn.Invalid }, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	for i, kill := range []func(testing.TB){srv.Restart, func(tb testing.TB) { srv.Crash(tb); srv.Restart(tb) }} {
		srv.Exec(t, "postgres", fmt.Sprintf("CREATE TABLE t%d AS SELECT generate_series(1, 5000) AS x", i))
		target := srv.CurrentWALLSN(t)
		require.Eventually(t, func() bool { return sp.FlushLSN() >= target }, 30*time.Second, 10*time.Millisecond)
		kill(t)
		srv.Exec(t, "postgres", fmt.Sprintf("CREATE TABLE after%d AS SELECT 1", i))
		target = srv.CurrentWALLSN(t)
		require.Eventually(t, func() bool { return sp.FlushLSN() >= target }, 30*time.Second, 10*time.Millisecond)
	}
	require.GreaterOrEqual(t, s.Stats().Reconnects.Load(), int64(2))
}
