package bridge

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	bridgev1 "github.com/stratadb/strata/proto/gen/strata/bridge/v1"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/ingesttest"
	"github.com/stratadb/strata/services/safekeeper-bridge/server"
)

// fakePageserver serves a fake ImportBaseBackup that writes the received
// tar to disk, and an IngestService that exists only once an import
// finished (an ingesttest.Fake starting at the backup's start LSN).
type fakePageserver struct {
	pb.UnimplementedManagementServiceServer
	pb.UnimplementedIngestServiceServer
	dir string

	mu      sync.Mutex
	imports int
	header  *pb.ImportBaseBackupRequest_ImportHeader
	tarPath string
	ingest  *ingesttest.Fake
	// ingestOpts configures the fake created by the import.
	ingestOpts ingesttest.Options
}

func (f *fakePageserver) ImportBaseBackup(stream pb.ManagementService_ImportBaseBackupServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "first message is not a header")
	}
	path := filepath.Join(f.dir, fmt.Sprintf("import-%s.tar", h.GetTimelineId()))
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if msg.GetBaseTarChunk() == nil {
			return status.Error(codes.InvalidArgument, "expected base_tar_chunk")
		}
		if _, err := out.Write(msg.GetBaseTarChunk()); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.imports++
	f.header, f.tarPath = h, path
	opts := f.ingestOpts
	opts.StartsAtRecord = true
	f.ingest = ingesttest.New(lsn.LSN(h.GetStartLsn()), opts)
	f.mu.Unlock()
	return stream.SendAndClose(&pb.ImportBaseBackupResponse{Timeline: &pb.TimelineInfo{TenantId: h.GetTenantId(), TimelineId: h.GetTimelineId(), LastRecordLsn: h.GetStartLsn()}})
}

func (f *fakePageserver) Ingest(stream pb.IngestService_IngestServer) error {
	f.mu.Lock()
	fake := f.ingest
	f.mu.Unlock()
	if fake == nil {
		return status.Error(codes.FailedPrecondition, "timeline not imported")
	}
	return fake.Ingest(stream)
}

func (f *fakePageserver) state() (int, *pb.ImportBaseBackupRequest_ImportHeader, string, *ingesttest.Fake) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.imports, f.header, f.tarPath, f.ingest
}

func serveFakePageserver(t *testing.T, f *fakePageserver) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	pb.RegisterIngestServiceServer(srv, f)
	pb.RegisterManagementServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// apiBridge is a bridge with its BridgeService on a loopback gRPC server.
type apiBridge struct {
	*running
	client  bridgev1.BridgeServiceClient
	stopAPI func()
}

func startAPIBridge(t *testing.T, cfg Config, log *slog.Logger) *apiBridge {
	r := startBridge(t, cfg, log)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	trust, err := auth.NewAuthenticator(auth.ModeTrust, nil)
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.UnaryInterceptor(trust.UnaryServerInterceptor()))
	server.Register(srv, r.b.Manager)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	return &apiBridge{running: r, client: bridgev1.NewBridgeServiceClient(conn), stopAPI: func() { _ = conn.Close(); srv.Stop(); <-done }}
}

func (a *apiBridge) stop() { a.stopAPI(); a.running.stop() }

// checkBaseTar checks that path is a valid tar with PG_VERSION,
// global/pg_control and a backup_label whose START WAL LOCATION is start.
func checkBaseTar(t *testing.T, path string, start lsn.LSN) {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string][]byte{}
	files := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		files++
		if h.Name == "PG_VERSION" || h.Name == "backup_label" || h.Name == "global/pg_control" {
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			seen[h.Name] = data
		}
	}
	require.Greater(t, files, 100)
	require.Equal(t, "15\n", string(seen["PG_VERSION"]))
	require.Len(t, seen["global/pg_control"], 8192)
	m := regexp.MustCompile(`START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) `).FindSubmatch(seen["backup_label"])
	require.NotNil(t, m, "backup_label: %q", seen["backup_label"])
	require.Equal(t, start.String(), string(m[1]))
}

// TestAttachImportPersistDetach drives the BridgeService over loopback gRPC
// against a real PostgreSQL 15 primary and a fake pageserver: Attach with
// import (BASE_BACKUP into ImportBaseBackup, then streaming from the
// backup's start), status, restart of the bridge (the attachment is
// restored, not imported again), Detach with drop_slot.
func TestAttachImportPersistDetach(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv.Exec(t, "postgres", "CREATE TABLE before_import AS SELECT generate_series(1, 10000) AS x")

	ps := &fakePageserver{dir: t.TempDir(), ingestOpts: ingesttest.Options{FlushBytes: 256 << 10, FlushInterval: 100 * time.Millisecond}}
	addr := serveFakePageserver(t, ps)
	cfg := testConfig(t, t.TempDir(), addr, "unused")
	cfg.Timelines = nil
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, &tWriter{t: t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	conninfo := srv.ReplicationConnString() + " application_name=secret_marker"

	b := startAPIBridge(t, cfg, log)
	resp, err := b.client.Attach(ctx, &bridgev1.AttachRequest{TenantId: testTenant, PrimaryConninfo: conninfo, Import: true})
	require.NoError(t, err)
	timelineID := resp.GetStatus().GetTimelineId()
	require.Len(t, timelineID, 32)
	require.Equal(t, "strata_"+timelineID[:16], resp.GetStatus().GetSlotName())

	// The import happens; then WAL flows from the backup's start.
	require.Eventually(t, func() bool { n, _, _, _ := ps.state(); return n == 1 }, 60*time.Second, 20*time.Millisecond)
	_, header, tarPath, fake := ps.state()
	start, end := lsn.LSN(header.GetStartLsn()), lsn.LSN(header.GetEndLsn())
	require.True(t, start.IsValid())
	require.GreaterOrEqual(t, end, start)
	require.Equal(t, testTenant, header.GetTenantId())
	require.Equal(t, timelineID, header.GetTimelineId())
	checkBaseTar(t, tarPath, start)

	srv.Exec(t, "postgres", "CREATE TABLE after_import AS SELECT generate_series(1, 10000) AS x")
	flush := srv.CurrentWALLSN(t)
	require.Eventually(t, func() bool { return fake.LastRecordLSN() >= flush || fake.Err() != nil }, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, fake.Err())

	var st *bridgev1.TimelineStatus
	require.Eventually(t, func() bool {
		r, err := b.client.GetStatus(ctx, &bridgev1.GetStatusRequest{TenantId: testTenant, TimelineId: timelineID})
		require.NoError(t, err)
		st = r.GetStatus()
		return st.GetState() == "streaming" && st.GetLastRecordLsn() >= uint64(flush) && st.GetPrimaryFlushLsn() >= uint64(flush)
	}, 30*time.Second, 50*time.Millisecond)
	require.Empty(t, st.GetError())
	require.GreaterOrEqual(t, st.GetSpooledLsn(), uint64(flush))
	require.GreaterOrEqual(t, st.GetReceivedLsn(), uint64(flush))
	require.GreaterOrEqual(t, st.GetSentLsn(), uint64(flush))
	require.NotNil(t, st.GetLastMessageAt())

	list, err := b.client.ListTimelines(ctx, &bridgev1.ListTimelinesRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetTimelines(), 1)
	_, err = b.client.Attach(ctx, &bridgev1.AttachRequest{TenantId: testTenant, TimelineId: timelineID, PrimaryConninfo: conninfo})
	require.Equal(t, codes.AlreadyExists, status.Code(err))

	// Restart: the attachment comes back from attachments.json, and
	// streaming resumes from the spool without a second import.
	b.stop()
	stateFile := filepath.Join(cfg.SpoolDir, "attachments.json")
	info, err := os.Stat(stateFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	b = startAPIBridge(t, cfg, log)
	srv.Exec(t, "postgres", "CREATE TABLE after_restart AS SELECT generate_series(1, 10000) AS x")
	flush = srv.CurrentWALLSN(t)
	require.Eventually(t, func() bool { return fake.LastRecordLSN() >= flush || fake.Err() != nil }, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, fake.Err())
	n, _, _, _ := ps.state()
	require.Equal(t, 1, n, "a restored imported timeline is not imported again")
	r, err := b.client.GetStatus(ctx, &bridgev1.GetStatusRequest{TenantId: testTenant, TimelineId: timelineID})
	require.NoError(t, err)
	require.Equal(t, resp.GetStatus().GetSlotName(), r.GetStatus().GetSlotName())

	// Detach with drop_slot: slot gone, nothing restored next time.
	_, err = b.client.Detach(ctx, &bridgev1.DetachRequest{TenantId: testTenant, TimelineId: timelineID, DropSlot: true})
	require.NoError(t, err)
	require.Equal(t, "0", srv.Query(t, "postgres", "SELECT count(*) FROM pg_replication_slots"))
	_, err = b.client.GetStatus(ctx, &bridgev1.GetStatusRequest{TenantId: testTenant, TimelineId: timelineID})
	require.Equal(t, codes.NotFound, status.Code(err))
	b.stop()
	b = startAPIBridge(t, cfg, log)
	list, err = b.client.ListTimelines(ctx, &bridgev1.ListTimelinesRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetTimelines())
	b.stop()

	require.NotContains(t, logs.String(), "secret_marker", "the connection string must never be logged")
	t.Logf("imported %s..%s, streamed to %s", start, end, flush)
}

// TestBoundedMemory nearly pauses the pageserver (a fake that waits 2 s
// before each chunk; the bridge batches a backlog into messages of up to
// 1 MiB, so it reads a few hundred KiB/s), runs pgbench, and checks that the bridge's Go
// heap (runtime.ReadMemStats in this process: bridge and fake together; a
// separate process was impractical here) stays below a bound while the spool
// grows; then the pageserver resumes and the bridge catches up.
func TestBoundedMemory(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{Conf: map[string]string{"max_wal_size": "1GB"}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const slot = "strata_mem"
	start := lsn.MustParse(srv.Query(t, "postgres", fmt.Sprintf("SELECT lsn FROM pg_create_physical_replication_slot('%s', true)", slot)))
	fake := ingesttest.New(start, ingesttest.Options{ChunkDelay: 2 * time.Second})
	addr := serveFake(t, fake)
	t.Setenv("STRATA_TEST_PRIMARY", srv.ReplicationConnString())
	cfg := testConfig(t, t.TempDir(), addr, slot)
	b := startBridge(t, cfg, testLogger(t))
	defer b.stop()

	const heapBound = 64 << 20
	var peak uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	out, err := srv.Run(ctx, "pgbench", "-i", "-s", "10", "-q", "postgres")
	require.NoError(t, err, string(out))
	done := make(chan error, 1)
	go func() {
		out, err := srv.Run(ctx, "pgbench", "-c", "4", "-T", "8", "-n", "postgres")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		done <- err
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case err := <-done:
			require.NoError(t, err)
			break wait
		case <-tick.C:
			sample()
		}
	}
	flush := srv.CurrentWALLSN(t)
	require.Eventually(t, func() bool { sample(); return b.b.Status()[0].SpooledLSN >= flush }, 60*time.Second, 50*time.Millisecond)
	st := b.b.Status()[0]
	spooled := st.SpooledLSN.Sub(st.DiskConsistentLSN)
	t.Logf("paused pageserver: spool holds %d MiB beyond disk_consistent_lsn, peak Go heap in use %d MiB, lag %s", spooled>>20, peak>>20, st.Lag)
	require.Greater(t, spooled, uint64(100<<20), "the workload must outgrow the bound")
	require.Less(t, peak, uint64(heapBound))
	require.Greater(t, st.Lag, time.Second)

	// Resume: the fake reads the delay before every chunk.
	fake.SetChunkDelay(0)
	require.Eventually(t, func() bool { return fake.LastRecordLSN() >= flush || fake.Err() != nil }, 120*time.Second, 50*time.Millisecond)
	require.NoError(t, fake.Err())
	require.Eventually(t, func() bool { return b.b.Status()[0].Lag == 0 }, 10*time.Second, 50*time.Millisecond)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
