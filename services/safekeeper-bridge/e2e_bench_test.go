package bridge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
)

// BenchmarkEndToEnd measures, with the real services as processes (issue
// 7's benchmark; figures in bench/RESULTS.md, "Bridge (issue 7)"):
//
//   - lag: under `pgbench -c 4` for 20 s, every 100 ms a marker row is
//     inserted (autocommit); when the INSERT returns, pg_current_wal_lsn()
//     is read (at or past the commit record, so the lag is if anything
//     overstated) and GetTimeline is polled every 2 ms until the
//     pageserver's last_record_lsn reaches it. p50/p99 of that time.
//   - throughput: the bridge is stopped (SIGSTOP) while ~100 MB of WAL are
//     written; pg_receivewal then streams the same WAL from its own slot to
//     a directory (until --endpos), and after it the bridge is continued
//     (SIGCONT) and timed until the pageserver's last_record_lsn reaches
//     the same end LSN. Both rates are WAL bytes / wall time.
//
// Run with -benchtime=1x: one iteration is the whole scenario.
func BenchmarkEndToEnd(b *testing.B) {
	binDir, ext := buildServices(b)
	s := startStack(b, binDir, ext, "")
	// The stopped bridge must not be disconnected by the primary.
	primary := pgtest.Start(b, pgtest.Options{Conf: map[string]string{"wal_sender_timeout": "0", "max_wal_size": "2GB"}})
	// Cleanups run last-in first-out: the bridge goes before the primary.
	// A fast shutdown of the primary waits for its walsender until the
	// bridge confirms flush of everything sent, and the bridge confirms
	// only what the pageserver persisted (docs/bridge.md), which with the
	// default checkpoint_timeout can take minutes.
	b.Cleanup(func() {
		if data, err := os.ReadFile(s.stack.PIDPath("safekeeper-bridge")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := primary.Run(ctx, "pgbench", "-i", "-s", "5", "-q", "postgres")
	require.NoError(b, err, string(out))
	primary.Exec(b, "postgres", "CREATE TABLE lag_marker (at timestamptz); CREATE TABLE bulk (id int, v text)")
	ref := s.attach(ctx, primary)
	s.waitIngested(ctx, ref, primary.CurrentWALLSN(b), time.Minute)

	for range b.N {
		// Lag under pgbench -c 4.
		conn, err := pgconn.Connect(ctx, primary.ConnString("postgres"))
		require.NoError(b, err)
		var bench sync.WaitGroup
		var benchOut []byte
		var benchErr error
		benchStart := primary.CurrentWALLSN(b)
		t0 := time.Now()
		bench.Go(func() {
			benchOut, benchErr = primary.Run(ctx, "pgbench", "-c", "4", "-T", "20", "-n", "postgres")
		})
		var lags []time.Duration
		for time.Since(t0) < 19*time.Second {
			_, err := conn.Exec(ctx, "INSERT INTO lag_marker VALUES (now())").ReadAll()
			require.NoError(b, err)
			committed := time.Now()
			target, err := queryLSN(ctx, conn, "SELECT pg_current_wal_lsn()")
			require.NoError(b, err)
			for {
				info, err := s.timeline(ctx, ref)
				require.NoError(b, err)
				if lsn.LSN(info.GetLastRecordLsn()) >= target {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			lags = append(lags, time.Since(committed))
			time.Sleep(100 * time.Millisecond)
		}
		bench.Wait()
		require.NoError(b, benchErr, string(benchOut))
		benchEnd := primary.CurrentWALLSN(b)
		benchDur := time.Since(t0)
		require.NoError(b, conn.Close(ctx))
		slices.Sort(lags)
		p50, p99 := lags[len(lags)/2], lags[min(len(lags)-1, len(lags)*99/100)]
		walRate := float64(benchEnd.Sub(benchStart)) / 1e6 / benchDur.Seconds()
		b.Logf("lag over %d samples: p50 %s p99 %s max %s; pgbench WAL %s..%s = %.1f MB in %s = %.2f MB/s",
			len(lags), p50, p99, lags[len(lags)-1], benchStart, benchEnd, float64(benchEnd.Sub(benchStart))/1e6, benchDur.Round(time.Millisecond), walRate)
		b.ReportMetric(float64(p50.Microseconds())/1000, "lag-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "lag-p99-ms")
		b.ReportMetric(walRate, "pgbench-WAL-MB/s")

		// Throughput: catch up on a backlog, bridge vs pg_receivewal.
		s.waitIngested(ctx, ref, benchEnd, time.Minute)
		primary.Checkpoint(b)
		recvSlot := fmt.Sprintf("recv_%d", time.Now().UnixNano())
		primary.Exec(b, "postgres", fmt.Sprintf("SELECT pg_create_physical_replication_slot('%s', true)", recvSlot))
		s.signal("safekeeper-bridge", syscall.SIGSTOP)
		stopped := true
		defer func() {
			if stopped {
				_ = syscall.Kill(s.pid("safekeeper-bridge"), syscall.SIGCONT)
			}
		}()
		from := lsn.MustParse(primary.Query(b, "postgres", "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '"+recvSlot+"'"))
		bridgeFrom := primary.CurrentWALLSN(b)
		primary.Exec(b, "postgres", "INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(1, 1000000) g")
		end := lsn.MustParse(primary.Query(b, "postgres", "SELECT pg_current_wal_flush_lsn()"))

		// In the cluster's directory, owned by the cluster's OS user, who
		// runs pg_receivewal.
		recvDir := filepath.Join(filepath.Dir(primary.DataDir), recvSlot)
		require.NoError(b, os.Mkdir(recvDir, 0o700))
		owner, err := os.Stat(primary.DataDir)
		require.NoError(b, err)
		sys := owner.Sys().(*syscall.Stat_t)
		require.NoError(b, os.Chown(recvDir, int(sys.Uid), int(sys.Gid)))
		recvStart := time.Now()
		out, err = primary.Run(ctx, "pg_receivewal", "-h", primary.Host, "-p", strconv.Itoa(primary.Port), "-U", primary.User,
			"-D", recvDir, "-S", recvSlot, "-E", end.String(), "-n")
		recvDur := time.Since(recvStart)
		require.NoError(b, err, string(out))
		segStart := from - from%lsn.LSN(16<<20)
		recvRate := float64(end.Sub(segStart)) / 1e6 / recvDur.Seconds()
		primary.Exec(b, "postgres", fmt.Sprintf("SELECT pg_drop_replication_slot('%s')", recvSlot))
		_ = os.RemoveAll(recvDir)

		bridgeStart := time.Now()
		s.signal("safekeeper-bridge", syscall.SIGCONT)
		stopped = false
		var spooledAt time.Duration
		for {
			if spooledAt == 0 {
				if st := s.status(ctx, ref); st != nil && lsn.LSN(st.GetSpooledLsn()) >= end {
					spooledAt = time.Since(bridgeStart)
				}
			}
			info, err := s.timeline(ctx, ref)
			require.NoError(b, err)
			if lsn.LSN(info.GetLastRecordLsn()) >= end {
				break
			}
			require.Less(b, time.Since(bridgeStart), 5*time.Minute, "the pageserver never caught up")
			time.Sleep(5 * time.Millisecond)
		}
		bridgeDur := time.Since(bridgeStart)
		bridgeRate := float64(end.Sub(bridgeFrom)) / 1e6 / bridgeDur.Seconds()
		spoolRate := 0.0
		if spooledAt > 0 {
			spoolRate = float64(end.Sub(bridgeFrom)) / 1e6 / spooledAt.Seconds()
		}
		b.Logf("backlog %s..%s: pg_receivewal %.1f MB in %s = %.1f MB/s; bridge→pageserver %.1f MB in %s = %.1f MB/s (%.0f%%); bridge spooled it in %s = %.1f MB/s",
			bridgeFrom, end, float64(end.Sub(segStart))/1e6, recvDur.Round(time.Millisecond), recvRate,
			float64(end.Sub(bridgeFrom))/1e6, bridgeDur.Round(time.Millisecond), bridgeRate, 100*bridgeRate/recvRate,
			spooledAt.Round(time.Millisecond), spoolRate)
		b.ReportMetric(recvRate, "receivewal-MB/s")
		b.ReportMetric(bridgeRate, "bridge-MB/s")
		b.ReportMetric(spoolRate, "spool-MB/s")
		b.ReportMetric(100*bridgeRate/recvRate, "bridge-%-of-receivewal")
	}
}
