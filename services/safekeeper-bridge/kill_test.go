package bridge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// killPageserverConf makes the pageserver flush small layers often, so
// kills hit it with a mix of persisted and in-memory WAL and the slot
// follows disk_consistent_lsn during the run.
const killPageserverConf = `checkpoint_distance = "4MiB"
checkpoint_timeout = "2s"`

// TestKillProcesses is issue 7's kill acceptance with real processes: a
// pgbench workload runs on a real PostgreSQL 15 primary while the
// safekeeper-bridge process streams into the pageserver process (both
// started from their binaries by internal/localstack). In separate runs
// the bridge, the pageserver and the primary are SIGKILLed three times
// each at random moments and restarted. At the end the pageserver has
// ingested up to the primary's final flush LSN, and a fullbackup at that
// LSN boots and has the primary's pgbench tables (row counts and ordered
// md5s). Throughout, the slot's restart_lsn never passes the pageserver's
// persisted disk_consistent_lsn.
func TestKillProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real services")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	binDir, ext := buildServices(t)
	s := startStack(t, binDir, ext, killPageserverConf)
	parent := s.t
	for _, victim := range []string{"safekeeper-bridge", "pageserver", "primary"} {
		t.Run(victim, func(t *testing.T) {
			s.t = t
			defer func() { s.t = parent }()
			ref, primary := killRun(t, s, rng, victim, 3)
			if victim == "safekeeper-bridge" {
				t.Run("dropped slot is reported", func(t *testing.T) {
					s.t = t
					defer func() { s.t = parent }()
					droppedSlotReported(t, s, primary, ref)
				})
			}
		})
	}
}

// killRun attaches a new primary, runs pgbench on it while killing victim
// kills times, and checks the result. It returns the timeline and primary.
func killRun(t *testing.T, s *procStack, rng *rand.Rand, victim string, kills int) (*pb.TimelineRef, *pgtest.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary := pgtest.Start(t, pgtest.Options{})
	out, err := primary.Run(ctx, "pgbench", "-i", "-s", "1", "-q", "postgres")
	require.NoError(t, err, string(out))
	ref := s.attach(ctx, primary)
	slot := s.status(ctx, ref).GetSlotName()
	require.NotEmpty(t, slot)

	sampleCtx, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan *slotSampler, 1)
	go func() { samplerDone <- sampleSlot(sampleCtx, s, primary, ref, slot) }()
	defer func() {
		if sampleCtx.Err() == nil {
			stopSampling()
			<-samplerDone
		}
	}()

	// The workload: pgbench in short runs until stopped. Runs fail only
	// while the primary is down.
	var runs, failed atomic.Int64
	var lastErr atomic.Value
	benchCtx, stopBench := context.WithCancel(ctx)
	var bench sync.WaitGroup
	bench.Go(func() {
		for benchCtx.Err() == nil {
			out, err := primary.Run(benchCtx, "pgbench", "-c", "4", "-T", "2", "-n", "postgres")
			if benchCtx.Err() != nil {
				return
			}
			runs.Add(1)
			if err != nil {
				failed.Add(1)
				lastErr.Store(fmt.Sprintf("%v: %s", err, lastLines(string(out), 3)))
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	defer func() { stopBench(); bench.Wait() }()

	for i := range kills {
		time.Sleep(time.Duration(1000+rng.IntN(2500)) * time.Millisecond)
		before := s.status(ctx, ref)
		switch victim {
		case "primary":
			primary.Crash(t)
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
			primary.Restart(t)
		default:
			s.kill(victim)
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
			s.start()
		}
		if before != nil {
			t.Logf("kill %d of %s at spooled %s sent %s last_record %s disk_consistent %s",
				i+1, victim, lsn.LSN(before.GetSpooledLsn()), lsn.LSN(before.GetSentLsn()),
				lsn.LSN(before.GetLastRecordLsn()), lsn.LSN(before.GetDiskConsistentLsn()))
		}
	}
	time.Sleep(time.Duration(1000+rng.IntN(1000)) * time.Millisecond)
	stopBench()
	bench.Wait()
	if victim != "primary" {
		require.Zero(t, failed.Load(), "pgbench failed with a healthy primary: %v", lastErr.Load())
	}
	require.Greater(t, runs.Load()-failed.Load(), int64(0), "no pgbench run succeeded: %v", lastErr.Load())

	final := lsn.MustParse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
	start := time.Now()
	s.waitIngested(ctx, ref, final, 60*time.Second)
	t.Logf("caught up to %s in %s after the workload (%d pgbench runs, %d failed; last failure: %v)",
		final, time.Since(start).Round(time.Millisecond), runs.Load(), failed.Load(), lastErr.Load())

	// Let the slot advance with at least one more flush before the
	// sampling ends, then check every sample.
	time.Sleep(2500 * time.Millisecond)
	stopSampling()
	smp := <-samplerDone
	require.Empty(t, smp.violations)
	require.Greater(t, smp.samples, 20)
	restart := lsn.MustParse(primary.Query(t, "postgres", "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '"+slot+"'"))
	t.Logf("%d restart_lsn samples, final restart_lsn %s, disk_consistent_lsn %s", smp.samples, restart, smp.maxDCL)

	archive := s.fullbackup(ctx, ref, final)
	want := primary.Query(t, "postgres", fingerprintSQL)
	dst := bootBackup(t, archive)
	require.Equal(t, want, dst.Query(t, "postgres", fingerprintSQL))
	t.Logf("fingerprint %s", strings.ReplaceAll(want, "|", " "))
	dst.Stop(t)
	return ref, primary
}

// droppedSlotReported: with the bridge down, the slot is dropped; the
// restarted bridge reports the gap on the timeline's status (it must not
// create a new slot and skip the WAL in between).
func droppedSlotReported(t *testing.T, s *procStack, primary *pgtest.Server, ref *pb.TimelineRef) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	slot := s.status(ctx, ref).GetSlotName()
	s.kill("safekeeper-bridge")
	// The walsender notices the closed connection and releases the slot.
	require.Eventually(t, func() bool {
		return primary.Query(t, "postgres", "SELECT active FROM pg_replication_slots WHERE slot_name = '"+slot+"'") == "f"
	}, 20*time.Second, 50*time.Millisecond)
	primary.Exec(t, "postgres", fmt.Sprintf("SELECT pg_drop_replication_slot('%s')", slot))
	primary.Exec(t, "postgres", "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 1, now())")
	s.start()
	var st string
	require.Eventually(t, func() bool {
		v := s.status(ctx, ref)
		if v == nil {
			return false
		}
		st = v.GetState() + ": " + v.GetError()
		return v.GetState() == "error"
	}, 30*time.Second, 50*time.Millisecond, "last status %s", st)
	require.Contains(t, st, "replication slot is missing")
	require.Contains(t, st, slot)
	t.Logf("status after the slot was dropped: %s", st)
	require.Equal(t, "0", primary.Query(t, "postgres", "SELECT count(*) FROM pg_replication_slots"), "the bridge must not recreate the slot")
}
