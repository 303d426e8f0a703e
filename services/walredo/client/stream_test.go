package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo/client"
	"github.com/stratadb/strata/services/walredo/internal/walredotest"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/redo"
	"github.com/stratadb/strata/services/walredo/server"
)

// liveServer is a grpcserver with the walredo adapter that a test can stop
// at a moment of its choosing.
type liveServer struct {
	conn  *grpc.ClientConn
	redo  *server.Server
	stop  func() // drains the adapter and stops the gRPC server; idempotent
	addrs string
}

func startServer(t *testing.T, backend server.Backend, shutdownTimeout time.Duration) *liveServer {
	t.Helper()
	a, err := auth.NewAuthenticator(auth.ModeTrust, nil)
	require.NoError(t, err)
	srv, err := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Auth: a, ShutdownTimeout: shutdownTimeout})
	require.NoError(t, err)
	rs := server.New(backend, server.Options{})
	rs.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	var once sync.Once
	var serveErr error
	stop := func() {
		once.Do(func() {
			rs.Drain()
			cancel()
			serveErr = <-done
		})
	}
	t.Cleanup(func() {
		require.NoError(t, conn.Close())
		stop()
		require.NoError(t, serveErr)
	})
	return &liveServer{conn: conn, redo: rs, stop: stop, addrs: lis.Addr().String()}
}

func newStreamClient(t *testing.T, conn *grpc.ClientConn, opts ...client.Option) *client.Client {
	t.Helper()
	c := client.New(conn, opts...)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// gated is a Backend that runs Apply on the pool, except for requests of
// the blocked tenant, which wait until release is closed or their context
// ends (reporting the context error on seen).
type gated struct {
	server.Backend
	blocked ids.TenantID
	entered chan struct{}
	release chan struct{}
	seen    chan error
}

func newGated(b server.Backend, blocked ids.TenantID) *gated {
	return &gated{Backend: b, blocked: blocked, entered: make(chan struct{}, 16), release: make(chan struct{}), seen: make(chan error, 16)}
}

func (g *gated) Apply(ctx context.Context, req *redo.Request, page []byte) error {
	if req.Tenant != g.blocked {
		return g.Backend.Apply(ctx, req, page)
	}
	g.entered <- struct{}{}
	select {
	case <-g.release:
		return g.Backend.Apply(ctx, req, page)
	case <-ctx.Done():
		g.seen <- ctx.Err()
		return ctx.Err()
	}
}

func TestStreamAndUnaryMatchInProcess(t *testing.T) {
	p := newPool(t, pool.Config{})
	ls := startServer(t, p, 0)
	ctx := context.Background()
	recs := heapChain(lsn.MustParse("0/1000000"), 10)
	want := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tenant(20), Tag: heapTag, Records: recs}, want))
	for _, mode := range []struct {
		name string
		opts []client.Option
	}{{"stream", nil}, {"unary", []client.Option{client.WithUnary()}}} {
		t.Run(mode.name, func(t *testing.T) {
			c := newStreamClient(t, ls.conn, mode.opts...)
			got := make([]byte, pgtypes.BLCKSZ)
			require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(20), Tag: heapTag, Records: recs}, got))
			require.Equal(t, want, got)
			// Split history: the midpoint page as the base of the rest.
			for split := 1; split < len(recs); split += 4 {
				mid := make([]byte, pgtypes.BLCKSZ)
				require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(20), Tag: heapTag, Records: recs[:split]}, mid))
				got := make([]byte, pgtypes.BLCKSZ)
				require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(20), Tag: heapTag, Base: mid, Records: recs[split:]}, got))
				require.Equal(t, want, got, "split at %d", split)
			}
		})
	}
}

// TestStreamPerRequestErrors: failing requests are answered on the stream
// with their own errors while good requests on the same stream succeed.
func TestStreamPerRequestErrors(t *testing.T) {
	p := newPool(t, pool.Config{RespawnBackoffMin: 10 * time.Millisecond})
	ls := startServer(t, p, 0)
	c := newStreamClient(t, ls.conn)
	ctx := context.Background()

	good := heapChain(lsn.MustParse("0/1000000"), 10)
	want := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tenant(21), Tag: heapTag, Records: good}, want))

	raws := [][]byte{walredotest.HeapInsert(heapTag, 1, 1, true, 1000), walredotest.HeapInsert(heapTag, 2, 2, false, 1000)}
	raws[1][30] ^= 1 // CRC mismatch
	badCRC := walredotest.Chain(lsn.MustParse("0/4000000"), raws...)
	panics := walredotest.Chain(lsn.MustParse("0/2000000"),
		walredotest.HeapInsert(heapTag, 1, 1, true, 1000),
		walredotest.HeapInsert(heapTag, 9, 2, false, 1000), // PANIC: invalid max offset number
	)

	var wg sync.WaitGroup
	errs := make([]error, 12)
	pages := make([][]byte, len(errs))
	for i := range errs {
		pages[i] = make([]byte, pgtypes.BLCKSZ)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var recs []redo.Record
			switch i {
			case 3:
				recs = badCRC
			case 7:
				recs = panics // crashes the child mid-stream, twice (retry)
			default:
				recs = good
			}
			errs[i] = c.Apply(ctx, &redo.Request{Tenant: tenant(21), Tag: heapTag, Records: recs}, pages[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var re *redo.RecordError
		switch i {
		case 3:
			require.ErrorIs(t, err, redo.ErrRecordFailed)
			require.ErrorAs(t, err, &re)
			require.Equal(t, badCRC[1].Start, re.LSN)
			require.Contains(t, re.Msg, "CRC")
			inProc := p.Apply(ctx, &redo.Request{Tenant: tenant(21), Tag: heapTag, Records: badCRC}, make([]byte, pgtypes.BLCKSZ))
			require.Equal(t, inProc.Error(), err.Error(), "same text as in-process")
		case 7:
			require.ErrorIs(t, err, redo.ErrChildCrashed)
			require.ErrorAs(t, err, &re)
			require.Equal(t, panics[1].Start, re.LSN)
		default:
			require.NoError(t, err, "request %d", i)
			require.Equal(t, want, pages[i], "request %d", i)
		}
	}
	// The stream and the respawned child keep serving.
	got := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(21), Tag: heapTag, Records: good}, got))
	require.Equal(t, want, got)
	require.ErrorIs(t, c.Apply(ctx, &redo.Request{Tenant: tenant(21), Tag: heapTag, Base: make([]byte, 10)}, got), redo.ErrInvalidRequest)
}

// TestStreamConcurrentCallers: many callers of two tenants share one
// stream; every caller gets its own page (run with -race).
func TestStreamConcurrentCallers(t *testing.T) {
	p := newPool(t, pool.Config{MaxChildren: 2, MaxChildrenPerTenant: 1})
	ls := startServer(t, p, 0)
	c := newStreamClient(t, ls.conn)
	ctx := context.Background()
	chains := make([][]redo.Record, 5)
	wants := make([][]byte, len(chains))
	for n := range chains {
		chains[n] = heapChain(lsn.MustParse("0/1000000"), n+1)
		wants[n] = make([]byte, pgtypes.BLCKSZ)
		require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tenant(22), Tag: heapTag, Records: chains[n]}, wants[n]))
	}
	const callers, each = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			page := make([]byte, pgtypes.BLCKSZ)
			for i := range each {
				n := (g + i) % len(chains)
				if err := c.Apply(ctx, &redo.Request{Tenant: tenant(22 + byte(g%2)), Tag: heapTag, Records: chains[n]}, page); err != nil {
					errc <- err
					return
				}
				if string(page) != string(wants[n]) {
					errc <- errors.New("caller got another request's page")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
}

// TestStreamCancelOneRequest: a caller that gives up gets its context
// error at once, the server is told (the backend sees the cancellation),
// and the other requests on the stream are unaffected.
func TestStreamCancelOneRequest(t *testing.T) {
	p := newPool(t, pool.Config{})
	g := newGated(p, tenant(24))
	ls := startServer(t, g, 0)
	c := newStreamClient(t, ls.conn)
	ctx := context.Background()
	recs := heapChain(lsn.MustParse("0/1000000"), 3)
	want := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tenant(25), Tag: heapTag, Records: recs}, want))

	t.Run("cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			errc <- c.Apply(cctx, &redo.Request{Tenant: tenant(24), Tag: heapTag, Records: recs}, make([]byte, pgtypes.BLCKSZ))
		}()
		<-g.entered
		got := make([]byte, pgtypes.BLCKSZ)
		require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(25), Tag: heapTag, Records: recs}, got), "others pass the blocked one")
		require.Equal(t, want, got)
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		require.ErrorIs(t, <-g.seen, context.Canceled, "the server stopped working on it")
	})
	t.Run("deadline travels", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		err := c.Apply(dctx, &redo.Request{Tenant: tenant(24), Tag: heapTag, Records: recs}, make([]byte, pgtypes.BLCKSZ))
		<-g.entered
		require.ErrorIs(t, err, context.DeadlineExceeded)
		select {
		case serr := <-g.seen:
			require.ErrorIs(t, serr, context.DeadlineExceeded)
		case <-time.After(5 * time.Second):
			t.Fatal("the server did not see the deadline")
		}
	})
	got := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(25), Tag: heapTag, Records: recs}, got))
	require.Equal(t, want, got)
}

// TestStreamServerShutdown: Drain lets running requests answer, then the
// stream ends; callers get clean errors (redo.ErrClosed or an unavailable
// server), not hangs, and the graceful stop does not wait for the client.
func TestStreamServerShutdown(t *testing.T) {
	p := newPool(t, pool.Config{})
	g := newGated(p, tenant(26))
	ls := startServer(t, g, time.Minute) // a hang would show as a slow test
	c := newStreamClient(t, ls.conn)
	ctx := context.Background()
	recs := heapChain(lsn.MustParse("0/1000000"), 3)
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(27), Tag: heapTag, Records: recs}, page))

	errc := make(chan error, 1)
	go func() {
		errc <- c.Apply(ctx, &redo.Request{Tenant: tenant(26), Tag: heapTag, Records: recs}, make([]byte, pgtypes.BLCKSZ))
	}()
	<-g.entered
	stopped := make(chan struct{})
	start := time.Now()
	go func() { ls.stop(); close(stopped) }()
	time.Sleep(50 * time.Millisecond)
	close(g.release) // the running request may finish
	require.NoError(t, <-errc, "a request running at shutdown is answered")
	<-stopped
	require.Less(t, time.Since(start), 10*time.Second, "graceful stop did not wait for the open stream")

	err := c.Apply(ctx, &redo.Request{Tenant: tenant(27), Tag: heapTag, Records: recs}, page)
	require.Error(t, err)
	require.NotErrorIs(t, err, redo.ErrRecordFailed)
	require.Contains(t, err.Error(), "walredo")
}

// TestStreamServerGone: a server that dies hard under pending requests
// fails them promptly; the client reconnects to a new server on the same
// connection target.
func TestStreamServerGone(t *testing.T) {
	p := newPool(t, pool.Config{})
	g := newGated(p, tenant(28))
	ls := startServer(t, g, 10*time.Millisecond) // hard stop after 10 ms
	c := newStreamClient(t, ls.conn)
	recs := heapChain(lsn.MustParse("0/1000000"), 2)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Apply(context.Background(), &redo.Request{Tenant: tenant(28), Tag: heapTag, Records: recs}, make([]byte, pgtypes.BLCKSZ))
	}()
	<-g.entered
	// Drain waits for running requests, so stop the transport under it:
	// the gated request is still blocked when the hard stop comes.
	go ls.stop()
	select {
	case err := <-errc:
		require.Error(t, err)
		require.NotErrorIs(t, err, redo.ErrRecordFailed)
	case <-time.After(20 * time.Second):
		t.Fatal("a pending request hung after the server stopped")
	}
	close(g.release)
}

func TestClientClosed(t *testing.T) {
	p := newPool(t, pool.Config{})
	ls := startServer(t, p, 0)
	c := client.New(ls.conn)
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(context.Background(), &redo.Request{Tenant: tenant(29), Tag: heapTag, Records: heapChain(lsn.MustParse("0/1000000"), 1)}, page))
	require.NoError(t, c.Close())
	require.ErrorIs(t, c.Apply(context.Background(), &redo.Request{Tenant: tenant(29), Tag: heapTag, Records: heapChain(lsn.MustParse("0/1000000"), 1)}, page), redo.ErrClosed)
}

var btreeTag = pgtypes.BufferTag{
	Rel:      pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: 5, RelNode: 16390, ForkNum: pgtypes.MainForkNum},
	BlockNum: 1,
}

// btreeRequest is n Btree/INSERT_LEAF records appending sorted keys to an
// empty leaf page (the benchmark's btree case).
func btreeRequest(t tenantID, n int) *redo.Request {
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = walredotest.BtreeInsertLeaf(btreeTag, uint16(i+1), int32(i*10), 0, uint16(i+1))
	}
	return &redo.Request{Tenant: t, Tag: btreeTag, Base: walredotest.BtreeLeafPage(lsn.MustParse("0/800000")), Records: walredotest.Chain(lsn.MustParse("0/1000000"), raws...)}
}

type tenantID = ids.TenantID

func TestBtreeRecords(t *testing.T) {
	p := newPool(t, pool.Config{})
	ls := startServer(t, p, 0)
	c := newStreamClient(t, ls.conn)
	ctx := context.Background()
	req := btreeRequest(tenant(30), 10)
	want := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(ctx, req, want))
	h, err := pgtypes.ParsePageHeader(want)
	require.NoError(t, err)
	require.Equal(t, 24+4*10, int(h.Lower), "ten line pointers")
	require.Equal(t, req.Records[9].End, pgtypes.PageGetLSN(want))
	got := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, req, got))
	require.Equal(t, want, got)
	// Split history over the stream.
	mid := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: req.Tenant, Tag: req.Tag, Base: req.Base, Records: req.Records[:4]}, mid))
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: req.Tenant, Tag: req.Tag, Base: mid, Records: req.Records[4:]}, got))
	require.Equal(t, want, got)
	// The btree rm_mask accepts it as a leaf page.
	masked := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Mask(ctx, req.Tenant, 11, btreeTag.BlockNum, got, masked))
}
