package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/ingesttest"
	"github.com/stratadb/strata/services/safekeeper-bridge/replication"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testTenant   = "0123456789abcdef0123456789abcdef"
	testTimeline = "fedcba9876543210fedcba9876543210"
)

// serveFake runs fake on a loopback port until the test ends.
func serveFake(t *testing.T, fake *ingesttest.Fake) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	pb.RegisterIngestServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func testConfig(t *testing.T, spoolDir, pageserverAddr, slot string) Config {
	cfg := DefaultConfig()
	cfg.SpoolDir = spoolDir
	cfg.PageserverAddr = pageserverAddr
	cfg.MetricsAddr = ""
	cfg.Timelines = []TimelineConfig{{TenantID: testTenant, TimelineID: testTimeline, PrimaryConnEnv: "STRATA_TEST_PRIMARY", SlotName: slot}}
	return cfg
}

// running is a bridge started in-process; stop cancels it like a kill of
// the process would (the spool is reopened by the next one).
type running struct {
	b      *Bridge
	cancel context.CancelFunc
	done   chan struct{}
}

func startBridge(t *testing.T, cfg Config, log *slog.Logger) *running {
	t.Helper()
	b, err := New(cfg, log, prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{b: b, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = b.Run(ctx) }()
	return r
}

func (r *running) stop() { r.cancel(); <-r.done }

func queryLSN(ctx context.Context, conn *pgconn.PgConn, sql string) (lsn.LSN, error) {
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return 0, err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || res[0].Rows[0][0] == nil {
		return 0, nil
	}
	return lsn.Parse(string(res[0].Rows[0][0]))
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&tWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w *tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestStreamWithPgbench streams a pgbench workload from a real PostgreSQL 15
// into the fake pageserver, restarting the bridge in the middle, and checks
// that every record up to the primary's flush LSN arrives contiguously and
// decodes, and that the slot's restart_lsn never passes the pageserver's
// acknowledged disk_consistent_lsn.
func TestStreamWithPgbench(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const slot = "strata_bridge"
	start := lsn.MustParse(srv.Query(t, "postgres", fmt.Sprintf("SELECT lsn FROM pg_create_physical_replication_slot('%s', true)", slot)))

	fake := ingesttest.New(start, ingesttest.Options{FlushBytes: 1 << 20, FlushInterval: 300 * time.Millisecond})
	addr := serveFake(t, fake)
	t.Setenv("STRATA_TEST_PRIMARY", srv.ReplicationConnString())
	cfg := testConfig(t, t.TempDir(), addr, slot)
	log := testLogger(t)

	// Sample restart_lsn throughout. A sample is compared with the largest
	// disk_consistent_lsn acknowledged by the time the sample was taken.
	var samples, violations atomic.Int64
	var violation atomic.Value
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		conn, err := pgconn.Connect(sampleCtx, srv.ConnString("postgres"))
		if err != nil {
			violation.Store("connect: " + err.Error())
			violations.Add(1)
			return
		}
		defer conn.Close(context.Background())
		for sampleCtx.Err() == nil {
			restart, err := queryLSN(sampleCtx, conn, "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '"+slot+"'")
			acked := fake.MaxAckedDCL()
			if err == nil {
				samples.Add(1)
				if restart > acked {
					violations.Add(1)
					violation.Store(fmt.Sprintf("restart_lsn %s > acknowledged disk_consistent_lsn %s", restart, acked))
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	defer func() { stopSampling(); sampler.Wait() }()

	b := startBridge(t, cfg, log)
	out, err := srv.Run(ctx, "pgbench", "-i", "-s", "2", "-q", "postgres")
	require.NoError(t, err, string(out))

	bench := make(chan error, 1)
	go func() {
		out, err := srv.Run(ctx, "pgbench", "-c", "4", "-T", "8", "-n", "postgres")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		bench <- err
	}()
	// Restart the bridge twice under load.
	for range 2 {
		time.Sleep(2500 * time.Millisecond)
		b.stop()
		b = startBridge(t, cfg, log)
	}
	require.NoError(t, <-bench)
	srv.Exec(t, "postgres", "CREATE TABLE after_bench AS SELECT 1 AS x")
	flush := srv.CurrentWALLSN(t)

	require.Eventually(t, func() bool { return fake.LastRecordLSN() >= flush || fake.Err() != nil }, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, fake.Err())
	require.GreaterOrEqual(t, fake.LastRecordLSN(), flush)
	// The slot follows the pageserver's flushes.
	require.Eventually(t, func() bool {
		got := srv.Query(t, "postgres", "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '"+slot+"'")
		restart, err := lsn.Parse(got)
		return err == nil && restart > start && restart <= fake.MaxAckedDCL()
	}, 30*time.Second, 100*time.Millisecond)

	st := b.b.Status()
	require.Len(t, st, 1)
	require.NoError(t, st[0].Err)
	require.GreaterOrEqual(t, st[0].SpooledLSN, flush)
	require.LessOrEqual(t, st[0].ReportedFlushLSN, st[0].DiskConsistentLSN)
	require.Greater(t, st[0].SpoolStartLSN, start, "spool must have been trimmed")
	b.stop()

	stopSampling()
	sampler.Wait()
	require.Zero(t, violations.Load(), "%v", violation.Load())
	require.Greater(t, samples.Load(), int64(10))
	t.Logf("WAL %s..%s (%d bytes), %d records, %d ingest streams, %d restart_lsn samples",
		start, flush, flush.Sub(start), fake.Records(), fake.Streams(), samples.Load())
}

// TestGapsAreReported checks that a dropped slot, and a slot that no longer
// holds the WAL the spool needs, stop the timeline with a clear error.
func TestGapsAreReported(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	const slot = "strata_gap"
	start := lsn.MustParse(srv.Query(t, "postgres", fmt.Sprintf("SELECT lsn FROM pg_create_physical_replication_slot('%s', true)", slot)))
	fake := ingesttest.New(start, ingesttest.Options{})
	addr := serveFake(t, fake)
	t.Setenv("STRATA_TEST_PRIMARY", srv.ReplicationConnString())
	cfg := testConfig(t, t.TempDir(), addr, slot)
	log := testLogger(t)

	b := startBridge(t, cfg, log)
	srv.Exec(t, "postgres", "CREATE TABLE t AS SELECT generate_series(1, 1000) AS x")
	target := srv.CurrentWALLSN(t)
	require.Eventually(t, func() bool { return b.b.Status()[0].SpooledLSN >= target }, 30*time.Second, 20*time.Millisecond)
	b.stop()
	// The walsender notices the closed connection a moment later; until
	// then the slot is active and cannot be dropped.
	require.Eventually(t, func() bool {
		return srv.Query(t, "postgres", "SELECT active FROM pg_replication_slots WHERE slot_name = '"+slot+"'") == "f"
	}, 20*time.Second, 20*time.Millisecond)

	t.Run("slot dropped", func(t *testing.T) {
		srv.Exec(t, "postgres", fmt.Sprintf("SELECT pg_drop_replication_slot('%s')", slot))
		b := startBridge(t, cfg, log)
		defer b.stop()
		require.Eventually(t, func() bool { return b.b.Status()[0].Err != nil }, 30*time.Second, 20*time.Millisecond)
		err := b.b.Status()[0].Err
		require.ErrorIs(t, err, replication.ErrSlotMissing)
		require.Contains(t, err.Error(), slot)
	})

	t.Run("slot past the spool", func(t *testing.T) {
		srv.Exec(t, "postgres", "CREATE TABLE u AS SELECT generate_series(1, 1000) AS x")
		srv.SwitchWAL(t)
		// A physical slot reserves WAL from the last checkpoint's redo
		// pointer: checkpoint so that it starts past the spool's end.
		srv.Checkpoint(t)
		srv.Exec(t, "postgres", fmt.Sprintf("SELECT pg_create_physical_replication_slot('%s', true)", slot))
		b := startBridge(t, cfg, log)
		defer b.stop()
		require.Eventually(t, func() bool { return b.b.Status()[0].Err != nil }, 30*time.Second, 20*time.Millisecond)
		err := b.b.Status()[0].Err
		require.ErrorIs(t, err, replication.ErrWALGap)
		require.Contains(t, err.Error(), "restart_lsn")
	})
}
