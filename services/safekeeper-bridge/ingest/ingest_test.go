package ingest

import (
	"context"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/stratadb/strata/internal/lsn"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/ingesttest"
	"github.com/stratadb/strata/services/safekeeper-bridge/spool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const start = lsn.LSN(0x2_0000_0000)

// fakeNet serves a fake on a bufconn listener that can be replaced, so a
// test can "restart the pageserver" under one client connection.
type fakeNet struct {
	lis atomic.Pointer[bufconn.Listener]
	srv *grpc.Server
}

func (n *fakeNet) serve(t *testing.T, fake *ingesttest.Fake) {
	lis := bufconn.Listen(1 << 20)
	n.lis.Store(lis)
	n.srv = grpc.NewServer()
	pb.RegisterIngestServiceServer(n.srv, fake)
	srv := n.srv
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
}

func (n *fakeNet) client(t *testing.T) pb.IngestServiceClient {
	cc, err := grpc.NewClient("passthrough:///fake",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond}}),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return n.lis.Load().DialContext(ctx) }))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return pb.NewIngestServiceClient(cc)
}

func fill(t *testing.T, sp *spool.Spool, r *rand.Rand, from lsn.LSN, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for off := 0; off < n; {
		k := min(n-off, 1+r.IntN(20000))
		require.NoError(t, sp.Append(from+lsn.LSN(off), data[off:off+k]))
		off += k
	}
	_, err := sp.Sync()
	require.NoError(t, err)
	return data
}

func runSender(t *testing.T, s *Sender) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

func TestStreamsTrimsAndResumes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	sp, err := spool.Open(t.TempDir(), spool.Options{SegmentBytes: 64 << 10})
	require.NoError(t, err)
	defer sp.Close()
	data := fill(t, sp, r, start, 500_000)

	fake := ingesttest.New(start, ingesttest.Options{RawBytes: true, FlushBytes: 100_000, FlushInterval: 20 * time.Millisecond})
	var n fakeNet
	n.serve(t, fake)
	s := New(Config{TenantID: "t", TimelineID: "tl", MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, KeepaliveInterval: 20 * time.Millisecond}, n.client(t), sp, nil)
	stop := runSender(t, s)

	end := start + lsn.LSN(len(data))
	require.Eventually(t, func() bool { return fake.LastRecordLSN() == end && s.DiskConsistentLSN() == end }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, fake.Err())
	require.Equal(t, data, fake.Data())
	// Whole segments below disk_consistent_lsn are gone; the newest stays.
	require.Greater(t, sp.StartLSN(), start)
	require.LessOrEqual(t, sp.StartLSN(), end)

	// Live WAL follows.
	more := fill(t, sp, r, end, 100_000)
	data = append(data, more...)
	end += lsn.LSN(len(more))
	require.Eventually(t, func() bool { return fake.LastRecordLSN() == end }, 20*time.Second, 10*time.Millisecond)

	// The pageserver restarts: the sender reconnects and resends from the
	// fake's disk_consistent_lsn.
	fake.SetChunkDelay(0)
	n.srv.Stop()
	more = fill(t, sp, r, end, 50_000)
	data = append(data, more...)
	end += lsn.LSN(len(more))
	n.serve(t, fake)
	require.Eventually(t, func() bool { return fake.LastRecordLSN() == end }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, fake.Err())
	require.Equal(t, data, fake.Data())
	require.GreaterOrEqual(t, fake.Streams(), 2)
	require.GreaterOrEqual(t, s.Stats().Reconnects.Load(), int64(1))
	require.NoError(t, stop())
}

func TestGapIsPermanent(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	require.NoError(t, err)
	defer sp.Close()
	fill(t, sp, r, start, 1000)
	fake := ingesttest.New(start-100, ingesttest.Options{RawBytes: true})
	var n fakeNet
	n.serve(t, fake)
	s := New(Config{TenantID: "t", TimelineID: "tl"}, n.client(t), sp, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.Run(ctx)
	require.ErrorIs(t, err, ErrWALGap)
	require.Contains(t, err.Error(), (start - 100).String())
	require.Contains(t, err.Error(), start.String())
	require.ErrorIs(t, s.Stats().LastError(), ErrWALGap)
}

// TestSlowPageserverBoundedInFlight checks that a slow pageserver makes the
// sender wait instead of buffering: what is sent but not processed stays
// within gRPC's flow-control windows.
func TestSlowPageserverBoundedInFlight(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	require.NoError(t, err)
	defer sp.Close()
	fill(t, sp, r, start, 8<<20)
	fake := ingesttest.New(start, ingesttest.Options{RawBytes: true, ChunkDelay: 20 * time.Millisecond})
	var n fakeNet
	n.serve(t, fake)
	s := New(Config{TenantID: "t", TimelineID: "tl"}, n.client(t), sp, nil)
	stop := runSender(t, s)
	time.Sleep(time.Second)
	inFlight := s.Stats().SentLSN.Load().Sub(fake.LastRecordLSN())
	require.Less(t, inFlight, uint64(6<<20), "sent %s, processed %s", s.Stats().SentLSN.Load(), fake.LastRecordLSN())
	fake.SetChunkDelay(0)
	require.Eventually(t, func() bool { return fake.LastRecordLSN() == start+8<<20 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, stop())
}
