package bridge

import (
	"context"
	"fmt"
	"os"
	"os/exec"
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
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// BenchmarkEndToEnd measures, with the real services as processes (issue
// 7's benchmark; figures in bench/RESULTS.md, "Bridge (issue 7)"):
//
//   - lag: under `pgbench -c 4` for 20 s, every 100 ms a marker row is
//     inserted (autocommit); when the INSERT returns, pg_current_wal_lsn()
//     is read (at or past the commit record, so the lag is if anything
//     overstated) and GetTimeline is polled every 2 ms until the
//     pageserver's last_record_lsn reaches it. p50/p99 of that time.
//   - throughput: throughputRoundsN alternating rounds over the same
//     ~64 MB backlog of WAL, pg_receivewal (default sync and
//     --synchronous) and the bridge into the pageserver; see
//     throughputRounds.
//
// Run with -benchtime=1x: one iteration is the whole scenario.
func BenchmarkEndToEnd(b *testing.B) {
	binDir, ext := buildServices(b)
	// STRATA_BENCH_BRIDGE_CONF: TOML lines for the bridge's config, e.g.
	// spool_max_sync_delay = "5ms".
	s := startStackWith(b, binDir, ext, map[string]string{"safekeeper-bridge": os.Getenv("STRATA_BENCH_BRIDGE_CONF")})
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

		// Throughput: the same backlog, bridge vs pg_receivewal, in
		// alternating rounds.
		s.waitIngested(ctx, ref, benchEnd, time.Minute)
		throughputRounds(ctx, b, s, primary, ref, throughputRoundsN)
	}
}

// throughputRoundsN is the number of A/B rounds of the throughput half;
// throughputRows the rows of the bulk INSERT that writes each round's
// backlog (about 64 MB of WAL).
const (
	throughputRoundsN = 3
	throughputRows    = 650_000
)

// throughputRounds measures, rounds times in the same run, how fast the
// bridge moves a WAL backlog into the pageserver next to pg_receivewal
// reading the same backlog. Each round: with the bridge stopped (SIGSTOP),
// two fresh slots reserve WAL and ~64 MB of WAL are written; then, in an
// order that alternates between rounds (receivewal first in even rounds,
// the bridge first in odd ones):
//
//   - pg_receivewal from its own slot to a directory beside the primary's
//     data directory (same filesystem) until --endpos, once with its
//     default sync (fsync of each segment when it is completed: 4–5 fsyncs
//     for the backlog) and once with --synchronous (fsync after each batch
//     of received data, as the bridge does);
//   - the bridge continued (SIGCONT) and timed until the pageserver's
//     last_record_lsn reaches the same end LSN: receive, spool append,
//     fsync every 4 MiB (replication.Config.SyncBytes) or 2 ms of quiet,
//     streaming to the pageserver and its ingest.
//
// Rates are WAL bytes / wall time (pg_receivewal's bytes count from the
// segment start it begins at). The medians of the per-round ratios are
// reported.
func throughputRounds(ctx context.Context, b *testing.B, s *procStack, primary *pgtest.Server, ref *pb.TimelineRef, rounds int) {
	owner, err := os.Stat(primary.DataDir)
	require.NoError(b, err)
	sys := owner.Sys().(*syscall.Stat_t)
	var ratios, syncRatios, recvRates, syncRates, bridgeRates []float64
	for round := range rounds {
		primary.Checkpoint(b)
		tag := fmt.Sprintf("r%d_%d", round, time.Now().UnixNano())
		slots := []string{"recv_" + tag, "recvsync_" + tag}
		for _, slot := range slots {
			primary.Exec(b, "postgres", fmt.Sprintf("SELECT pg_create_physical_replication_slot('%s', true)", slot))
		}
		s.signal("safekeeper-bridge", syscall.SIGSTOP)
		stopped := true
		from := lsn.MustParse(primary.Query(b, "postgres", "SELECT min(restart_lsn) FROM pg_replication_slots WHERE slot_name LIKE '%"+tag+"'"))
		bridgeFrom := primary.CurrentWALLSN(b)
		primary.Exec(b, "postgres", fmt.Sprintf("INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(1, %d) g", throughputRows))
		end := lsn.MustParse(primary.Query(b, "postgres", "SELECT pg_current_wal_flush_lsn()"))
		// pg_receivewal stops only once it has received WAL *past* --endpos
		// (its stop test is endpos < position): without a record after end
		// it waits for the next WAL the primary happens to write (measured:
		// 5–15 s).
		primary.Exec(b, "postgres", "INSERT INTO lag_marker VALUES (now())")
		segStart := from - from%lsn.LSN(16<<20)

		var recvCPU, bridgeCPU cpuUse
		receive := func(slot string, synchronous bool) float64 {
			dir := filepath.Join(filepath.Dir(primary.DataDir), slot)
			require.NoError(b, os.Mkdir(dir, 0o700))
			defer func() { _ = os.RemoveAll(dir) }()
			require.NoError(b, os.Chown(dir, int(sys.Uid), int(sys.Gid)))
			args := []string{"-h", primary.Host, "-p", strconv.Itoa(primary.Port), "-U", primary.User,
				"-D", dir, "-S", slot, "-E", end.String(), "-n"}
			if synchronous {
				args = append(args, "--synchronous")
			}
			start := time.Now()
			primaryBefore, childrenBefore := primaryCPU(primary.DataDir), waitedChildrenCPU()
			out, err := primary.Run(ctx, "pg_receivewal", args...)
			dur := time.Since(start)
			require.NoError(b, err, string(out))
			if !synchronous {
				recvCPU = cpuUse{wall: dur, primary: primaryCPU(primary.DataDir) - primaryBefore, client: waitedChildrenCPU() - childrenBefore}
			}
			return float64(end.Sub(segStart)) / 1e6 / dur.Seconds()
		}
		var bridgeDur, spooledAt time.Duration
		runBridge := func() {
			stopProfile := profileRound(b, round, s.pid("pageserver"), s.pid("safekeeper-bridge"))
			defer stopProfile()
			start := time.Now()
			primaryBefore := primaryCPU(primary.DataDir)
			bridgeBefore, pageserverBefore := processCPU(s.pid("safekeeper-bridge")), processCPU(s.pid("pageserver"))
			s.signal("safekeeper-bridge", syscall.SIGCONT)
			stopped = false
			for {
				if spooledAt == 0 {
					if st := s.status(ctx, ref); st != nil && lsn.LSN(st.GetSpooledLsn()) >= end {
						spooledAt = time.Since(start)
					}
				}
				info, err := s.timeline(ctx, ref)
				require.NoError(b, err)
				if lsn.LSN(info.GetLastRecordLsn()) >= end {
					break
				}
				require.Less(b, time.Since(start), 5*time.Minute, "the pageserver never caught up")
				time.Sleep(5 * time.Millisecond)
			}
			bridgeDur = time.Since(start)
			bridgeCPU = cpuUse{wall: bridgeDur, primary: primaryCPU(primary.DataDir) - primaryBefore,
				client: processCPU(s.pid("safekeeper-bridge")) - bridgeBefore, pageserver: processCPU(s.pid("pageserver")) - pageserverBefore}
		}
		var recvRate, syncRate float64
		order := "receivewal, receivewal --synchronous, bridge"
		if round%2 == 0 {
			recvRate = receive(slots[0], false)
			syncRate = receive(slots[1], true)
			runBridge()
		} else {
			order = "bridge, receivewal, receivewal --synchronous"
			runBridge()
			recvRate = receive(slots[0], false)
			syncRate = receive(slots[1], true)
		}
		if stopped {
			_ = syscall.Kill(s.pid("safekeeper-bridge"), syscall.SIGCONT)
		}
		for _, slot := range slots {
			primary.Exec(b, "postgres", fmt.Sprintf("SELECT pg_drop_replication_slot('%s')", slot))
		}
		bridgeRate := float64(end.Sub(bridgeFrom)) / 1e6 / bridgeDur.Seconds()
		spoolRate := 0.0
		if spooledAt > 0 {
			spoolRate = float64(end.Sub(bridgeFrom)) / 1e6 / spooledAt.Seconds()
		}
		b.Logf("round %d (%s) backlog %s..%s: pg_receivewal %.1f MB at %.1f MB/s, --synchronous %.1f MB/s; bridge→pageserver %.1f MB in %s = %.1f MB/s (%.0f%% / %.0f%%); bridge spooled it in %s = %.1f MB/s",
			round+1, order, bridgeFrom, end, float64(end.Sub(segStart))/1e6, recvRate, syncRate,
			float64(end.Sub(bridgeFrom))/1e6, bridgeDur.Round(time.Millisecond), bridgeRate, 100*bridgeRate/recvRate, 100*bridgeRate/syncRate,
			spooledAt.Round(time.Millisecond), spoolRate)
		b.Logf("round %d CPU seconds per 100 MB of WAL (wall time × 2 cores is the budget): pg_receivewal: primary %.2f + pg_receivewal %.2f = %.2f in %.2f wall; bridge: primary %.2f + bridge %.2f + pageserver %.2f = %.2f in %.2f wall",
			round+1, recvCPU.per100MB(recvCPU.primary, end.Sub(segStart)), recvCPU.per100MB(recvCPU.client, end.Sub(segStart)),
			recvCPU.per100MB(recvCPU.primary+recvCPU.client, end.Sub(segStart)), recvCPU.per100MB(recvCPU.wall, end.Sub(segStart)),
			bridgeCPU.per100MB(bridgeCPU.primary, end.Sub(bridgeFrom)), bridgeCPU.per100MB(bridgeCPU.client, end.Sub(bridgeFrom)),
			bridgeCPU.per100MB(bridgeCPU.pageserver, end.Sub(bridgeFrom)),
			bridgeCPU.per100MB(bridgeCPU.primary+bridgeCPU.client+bridgeCPU.pageserver, end.Sub(bridgeFrom)), bridgeCPU.per100MB(bridgeCPU.wall, end.Sub(bridgeFrom)))
		ratios = append(ratios, bridgeRate/recvRate)
		syncRatios = append(syncRatios, bridgeRate/syncRate)
		recvRates = append(recvRates, recvRate)
		syncRates = append(syncRates, syncRate)
		bridgeRates = append(bridgeRates, bridgeRate)
	}
	b.Logf("medians over %d rounds: pg_receivewal %.1f MB/s, --synchronous %.1f MB/s, bridge %.1f MB/s; bridge / receivewal %.0f%%, bridge / receivewal --synchronous %.0f%%",
		rounds, median(recvRates), median(syncRates), median(bridgeRates), 100*median(ratios), 100*median(syncRatios))
	b.ReportMetric(median(recvRates), "receivewal-MB/s")
	b.ReportMetric(median(syncRates), "receivewal-sync-MB/s")
	b.ReportMetric(median(bridgeRates), "bridge-MB/s")
	b.ReportMetric(100*median(ratios), "bridge-%-of-receivewal")
	b.ReportMetric(100*median(syncRatios), "bridge-%-of-receivewal-sync")
}

// profileRound starts, when STRATA_BENCH_PERF names a directory, `perf
// record -g` of the given processes for one throughput round (one file per
// process and round there); the returned function stops it. perf must be
// installed and allowed to attach (root or perf_event_paranoid ≤ 1).
func profileRound(b *testing.B, round int, pids ...int) func() {
	dir := os.Getenv("STRATA_BENCH_PERF")
	if dir == "" {
		return func() {}
	}
	var cmds []*exec.Cmd
	for _, pid := range pids {
		out := filepath.Join(dir, fmt.Sprintf("round%d-%d.data", round+1, pid))
		cmd := exec.Command("perf", "record", "-q", "-F", "2999", "-g", "-p", strconv.Itoa(pid), "-o", out)
		require.NoError(b, cmd.Start(), "STRATA_BENCH_PERF: starting perf")
		cmds = append(cmds, cmd)
	}
	time.Sleep(300 * time.Millisecond) // perf attaches
	return func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Signal(syscall.SIGINT)
			_ = cmd.Wait()
		}
	}
}

// cpuUse is the wall time of one transfer and the CPU time the processes
// involved used meanwhile (from /proc, 10 ms resolution): the primary (all
// its processes: the walsender does the sending), the client (pg_receivewal
// or the bridge) and the pageserver.
type cpuUse struct {
	wall, primary, client, pageserver time.Duration
}

// per100MB scales d to seconds per 100 MB of WAL out of walBytes.
func (cpuUse) per100MB(d time.Duration, walBytes uint64) float64 {
	if walBytes == 0 {
		return 0
	}
	return d.Seconds() * 100e6 / float64(walBytes)
}

// median of xs (not modified); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
