package bridge

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
)

// bridgeRSSBound is the resident set the bridge process must stay below
// while the pageserver is stopped under load. The bridge has no memory
// setting; its buffers are bounded by design (docs/bridge.md, package
// ingest and spool docs): WAL always goes through the spool, the ingest
// sender holds one chunk (≤ spool.MaxFrameBytes) and gRPC flow control
// blocks it, the spool writer keeps one frame buffer and one entry per
// segment file, the replication client one CopyData message, the lag queue
// 4096 entries. Together that is a few MiB above the Go runtime and gRPC;
// 128 MiB leaves room for GC headroom and is far below what buffering the
// WAL of a 60 s pause (hundreds of MB at pgbench rates) in memory would
// take.
const bridgeRSSBound = 128 << 20

// TestBoundedMemoryPageserverPaused is issue 7's bounded-memory acceptance
// with real processes: pgbench -c 4 runs on a real PostgreSQL 15 primary
// while the bridge process streams into the pageserver process; the
// pageserver is SIGSTOPped for 60 s. The bridge's RSS (VmRSS, sampled every
// 200 ms) stays below bridgeRSSBound while its spool directory grows by at
// least 10 MB; after SIGCONT the pageserver's last_record_lsn reaches the
// primary's flush LSN within 60 s.
func TestBoundedMemoryPageserverPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real services")
	}
	const pause = 60 * time.Second
	binDir, ext := buildServices(t)
	s := startStack(t, binDir, ext, "")
	primary := pgtest.Start(t, pgtest.Options{Conf: map[string]string{"max_wal_size": "2GB"}})
	// Cleanups run last-in first-out: the bridge goes before the primary,
	// whose fast shutdown would otherwise wait for the bridge to confirm
	// what the pageserver persisted (see BenchmarkEndToEnd).
	t.Cleanup(func() {
		if data, err := os.ReadFile(s.stack.PIDPath("safekeeper-bridge")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out, err := primary.Run(ctx, "pgbench", "-i", "-s", "5", "-q", "postgres")
	require.NoError(t, err, string(out))
	ref := s.attach(ctx, primary)
	s.waitIngested(ctx, ref, primary.CurrentWALLSN(t), time.Minute)

	bridgePID := s.pid("safekeeper-bridge")
	spoolDir := s.stack.DataDir("safekeeper-bridge")

	// The workload runs through the whole pause.
	benchCtx, stopBench := context.WithCancel(ctx)
	var bench sync.WaitGroup
	var benchOut []byte
	var benchErr error
	benchDone := make(chan struct{})
	bench.Go(func() {
		defer close(benchDone)
		benchOut, benchErr = primary.Run(benchCtx, "pgbench", "-c", "4", "-T", strconv.Itoa(int(pause.Seconds())+10), "-n", "postgres")
	})
	defer func() { stopBench(); bench.Wait() }()

	// RSS sampler, every 200 ms from before the pause until after the
	// catch-up.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	type rssStats struct {
		samples, failures int
		maxRSS, firstRSS  int64
		firstErr          error
	}
	sampled := make(chan rssStats, 1)
	go func() {
		var st rssStats
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			rss, err := processRSS(bridgePID)
			if err != nil {
				st.failures++
				if st.firstErr == nil {
					st.firstErr = err
				}
			} else {
				if st.samples == 0 {
					st.firstRSS = rss
				}
				st.samples++
				st.maxRSS = max(st.maxRSS, rss)
			}
			select {
			case <-sampleCtx.Done():
				sampled <- st
				return
			case <-tick.C:
			}
		}
	}()

	time.Sleep(3 * time.Second) // the workload is running and streamed
	spoolBefore := dirSize(t, spoolDir)
	stoppedAt := primary.CurrentWALLSN(t)
	s.signal("pageserver", syscall.SIGSTOP)
	continued := false
	defer func() {
		if !continued {
			_ = syscall.Kill(s.pid("pageserver"), syscall.SIGCONT)
		}
	}()
	time.Sleep(pause)
	spoolAfter := dirSize(t, spoolDir)
	pausedEnd := primary.CurrentWALLSN(t)
	st := s.status(ctx, ref)
	require.NotNil(t, st, "the bridge does not answer while the pageserver is stopped")
	s.signal("pageserver", syscall.SIGCONT)
	continued = true
	contAt := time.Now()

	// pgbench must still be running (it is stopped here, killed); one
	// that ended early failed or the load stopped during the pause.
	select {
	case <-benchDone:
		require.NoError(t, benchErr, string(benchOut))
		t.Fatalf("pgbench ended before the pause did: %s", benchOut)
	default:
	}
	stopBench()
	bench.Wait()
	final := lsn.MustParse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
	s.waitIngested(ctx, ref, final, 60*time.Second)
	catchUp := time.Since(contAt)
	stopSampling()
	rs := <-sampled

	t.Logf("pause %s: primary WAL %s..%s = %.1f MB; spool %.1f MB -> %.1f MB (+%.1f MB); bridge spooled %s, sent %s at the end of the pause",
		pause, stoppedAt, pausedEnd, float64(pausedEnd.Sub(stoppedAt))/1e6,
		float64(spoolBefore)/1e6, float64(spoolAfter)/1e6, float64(spoolAfter-spoolBefore)/1e6,
		lsn.LSN(st.GetSpooledLsn()), lsn.LSN(st.GetSentLsn()))
	t.Logf("bridge VmRSS over %d samples (every 200 ms): first %.1f MiB, max %.1f MiB, bound %d MiB; %d failed reads (%v)",
		rs.samples, float64(rs.firstRSS)/(1<<20), float64(rs.maxRSS)/(1<<20), bridgeRSSBound>>20, rs.failures, rs.firstErr)
	t.Logf("after SIGCONT the pageserver reached the primary's flush LSN %s in %s", final, catchUp.Round(time.Millisecond))

	require.Zero(t, rs.failures, "reading the bridge's VmRSS: %v", rs.firstErr)
	require.Greater(t, rs.samples, int(pause/(200*time.Millisecond))/2, "too few RSS samples")
	require.Less(t, rs.maxRSS, int64(bridgeRSSBound), "bridge RSS exceeded the bound")
	require.GreaterOrEqual(t, spoolAfter-spoolBefore, int64(10e6), "the spool did not absorb the lag")
	require.Greater(t, lsn.LSN(st.GetSpooledLsn()), stoppedAt, "the bridge stopped spooling while the pageserver was stopped")
}

// processRSS is pid's resident set size in bytes (VmRSS of
// /proc/<pid>/status).
func processRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, err
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// dirSize is the total size of the regular files under dir.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a segment trimmed while walking
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			total += info.Size()
		}
		return nil
	}))
	return total
}
