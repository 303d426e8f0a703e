package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	walredov1 "github.com/stratadb/strata/proto/gen/strata/walredo/v1"
	"github.com/stratadb/strata/services/walredo/client"
	"github.com/stratadb/strata/services/walredo/internal/walredotest"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/redo"
	"github.com/stratadb/strata/services/walredo/server"
)

var tmpl *process.Template

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, cleanup, err := walredotest.Setup(ctx, log)
	if err == nil {
		cfg.RequestTimeout = 20 * time.Second
		tmpl, err = process.PrepareTemplate(ctx, cfg)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "walredo test setup:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var heapTag = pgtypes.BufferTag{
	Rel:      pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: 5, RelNode: 16384, ForkNum: pgtypes.MainForkNum},
	BlockNum: 0,
}

// heapChain returns n Heap/INSERTs filling heapTag's page from an init
// record (the pool benchmark's records).
func heapChain(start lsn.LSN, n int) []redo.Record {
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = walredotest.HeapInsert(heapTag, uint16(i+1), int32(i), i == 0, 1000)
	}
	return walredotest.Chain(start, raws...)
}

func tenant(i byte) ids.TenantID { return ids.TenantID{15: i} }

func newPool(t testing.TB, cfg pool.Config) *pool.Pool {
	t.Helper()
	p, err := pool.New(tmpl, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// serve runs a real grpcserver with the walredo adapter over backend on a
// loopback port and returns a connection to it.
func serve(t testing.TB, backend server.Backend, a *auth.Authenticator, opts server.Options, dial ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if a == nil {
		var err error
		a, err = auth.NewAuthenticator(auth.ModeTrust, nil)
		require.NoError(t, err)
	}
	srv, err := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Auth: a})
	require.NoError(t, err)
	server.New(backend, opts).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dial...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, conn.Close())
		cancel()
		require.NoError(t, <-done)
	})
	return conn
}

func TestApplyMatchesInProcess(t *testing.T) {
	p := newPool(t, pool.Config{})
	c := client.New(serve(t, p, nil, server.Options{}))
	ctx := context.Background()
	recs := heapChain(lsn.MustParse("0/1000000"), 10)

	// A chain from an init record, then the rest of it on top of the
	// midpoint page sent as a base image.
	want := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tenant(1), Tag: heapTag, Records: recs}, want))
	got := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(1), Tag: heapTag, Records: recs}, got))
	require.Equal(t, want, got)
	require.Equal(t, recs[9].End, pgtypes.PageGetLSN(got))

	mid := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(1), Tag: heapTag, Records: recs[:5]}, mid))
	base := append([]byte(nil), mid...)
	got2 := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(1), Tag: heapTag, Base: mid, Records: recs[5:]}, got2))
	require.Equal(t, want, got2)
	require.Equal(t, base, mid, "the caller's base image is not modified")

	// Base image only: the page comes back unchanged.
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(1), Tag: heapTag, Base: want}, got))
	require.Equal(t, want, got)
}

func TestRecordFailedCarriesLSN(t *testing.T) {
	p := newPool(t, pool.Config{})
	c := client.New(serve(t, p, nil, server.Options{}))
	ctx := context.Background()
	raws := [][]byte{
		walredotest.HeapInsert(heapTag, 1, 1, true, 1000),
		walredotest.HeapInsert(heapTag, 2, 2, false, 1000),
		walredotest.HeapInsert(heapTag, 3, 3, false, 1000),
	}
	raws[2][30] ^= 1 // CRC mismatch in the third record
	recs := walredotest.Chain(lsn.MustParse("0/4000000"), raws...)
	page := make([]byte, pgtypes.BLCKSZ)

	err := c.Apply(ctx, &redo.Request{Tenant: tenant(2), Tag: heapTag, Records: recs}, page)
	require.ErrorIs(t, err, redo.ErrRecordFailed)
	require.NotErrorIs(t, err, redo.ErrChildCrashed)
	var re *redo.RecordError
	require.ErrorAs(t, err, &re)
	require.Equal(t, recs[2].Start, re.LSN, "the record LSN crosses the wire: %v", err)
	require.Contains(t, re.Msg, "CRC")

	// The same through the in-process pool gives the same error text.
	inProc := p.Apply(ctx, &redo.Request{Tenant: tenant(2), Tag: heapTag, Records: recs}, page)
	require.Equal(t, inProc.Error(), err.Error())

	// The child survived and serves the next request.
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(2), Tag: heapTag, Records: recs[:2]}, page))
}

func TestCrashCarriesLSN(t *testing.T) {
	p := newPool(t, pool.Config{RespawnBackoffMin: 10 * time.Millisecond})
	c := client.New(serve(t, p, nil, server.Options{}))
	recs := walredotest.Chain(lsn.MustParse("0/2000000"),
		walredotest.HeapInsert(heapTag, 1, 1, true, 1000),
		walredotest.HeapInsert(heapTag, 9, 2, false, 1000), // PANIC: invalid max offset number
	)
	err := c.Apply(context.Background(), &redo.Request{Tenant: tenant(3), Tag: heapTag, Records: recs}, make([]byte, pgtypes.BLCKSZ))
	require.ErrorIs(t, err, redo.ErrChildCrashed)
	var re *redo.RecordError
	require.ErrorAs(t, err, &re)
	require.Equal(t, recs[1].Start, re.LSN)
	require.Equal(t, codes.Internal, status.Code(rawApply(t, p, &walredov1.ApplyRequest{
		TenantId: tenant(3).String(), Tag: &walredov1.BufferTag{SpcOid: 1663, DbOid: 5, RelNumber: 16384},
		Records: []*walredov1.WalRecord{{StartLsn: uint64(recs[0].Start), EndLsn: uint64(recs[0].End), Data: recs[0].Raw}, {StartLsn: uint64(recs[1].Start), EndLsn: uint64(recs[1].End), Data: recs[1].Raw}},
	})))
}

// rawApply calls Apply with a hand-made request, bypassing the client's
// own validation.
func rawApply(t *testing.T, backend server.Backend, req *walredov1.ApplyRequest) error {
	t.Helper()
	_, err := walredov1.NewWalRedoServiceClient(serve(t, backend, nil, server.Options{})).Apply(context.Background(), req)
	return err
}

func TestServerValidates(t *testing.T) {
	p := newPool(t, pool.Config{})
	rpc := walredov1.NewWalRedoServiceClient(serve(t, p, nil, server.Options{}))
	good := func() *walredov1.ApplyRequest {
		recs := heapChain(lsn.MustParse("0/1000000"), 1)
		return &walredov1.ApplyRequest{
			TenantId: tenant(4).String(),
			Tag:      &walredov1.BufferTag{SpcOid: 1663, DbOid: 5, RelNumber: 16384},
			Records:  []*walredov1.WalRecord{{StartLsn: uint64(recs[0].Start), EndLsn: uint64(recs[0].End), Data: recs[0].Raw}},
		}
	}
	cases := []struct {
		name   string
		mutate func(*walredov1.ApplyRequest)
		want   codes.Code
	}{
		{"valid", func(*walredov1.ApplyRequest) {}, codes.OK},
		{"tenant uppercase", func(r *walredov1.ApplyRequest) { r.TenantId = "0000000000000000000000000000000A" }, codes.InvalidArgument},
		{"tenant too long", func(r *walredov1.ApplyRequest) { r.TenantId = string(make([]byte, 1<<16)) }, codes.InvalidArgument},
		{"no tag", func(r *walredov1.ApplyRequest) { r.Tag = nil }, codes.InvalidArgument},
		{"bad fork", func(r *walredov1.ApplyRequest) { r.Tag.ForkNumber = 256 }, codes.InvalidArgument},
		{"invalid block", func(r *walredov1.ApplyRequest) { r.Tag.BlockNumber = pgtypes.InvalidBlockNumber }, codes.InvalidArgument},
		{"short base", func(r *walredov1.ApplyRequest) { r.BaseImage = make([]byte, 100) }, codes.InvalidArgument},
		{"short record", func(r *walredov1.ApplyRequest) { r.Records[0].Data = r.Records[0].Data[:10] }, codes.InvalidArgument},
		{"wal_log_hints mismatch", func(r *walredov1.ApplyRequest) { r.SourceWalLogHints = true }, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := good()
			tc.mutate(req)
			resp, err := rpc.Apply(context.Background(), req)
			require.Equal(t, tc.want, status.Code(err), "%v", err)
			if err == nil {
				require.Len(t, resp.GetPage(), pgtypes.BLCKSZ)
			} else {
				require.Less(t, len(status.Convert(err).Message()), 1000, "the message does not echo the input")
			}
		})
	}

	// Through the client, a mismatch is ErrInvalidRequest.
	c := client.New(serve(t, p, nil, server.Options{}), client.WithSourceWALLogHints(true))
	err := c.Apply(context.Background(), &redo.Request{Tenant: tenant(4), Tag: heapTag, Records: heapChain(lsn.MustParse("0/1000000"), 1)}, make([]byte, pgtypes.BLCKSZ))
	require.ErrorIs(t, err, redo.ErrInvalidRequest)
	require.Contains(t, err.Error(), "wal_log_hints")
}

func TestMask(t *testing.T) {
	p := newPool(t, pool.Config{})
	c := client.New(serve(t, p, nil, server.Options{}))
	ctx := context.Background()
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, &redo.Request{Tenant: tenant(5), Tag: heapTag, Records: heapChain(lsn.MustParse("0/1000000"), 3)}, page))
	want := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Mask(ctx, tenant(5), 10, 0, page, want))
	got := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Mask(ctx, tenant(5), 10, 0, page, got))
	require.Equal(t, want, got)
	require.NotEqual(t, page, got, "heap masking hides the page LSN")
	require.ErrorIs(t, c.Mask(ctx, tenant(5), 10, 0, page[:100], got), redo.ErrInvalidRequest)
}

func TestAuthorization(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	verifier, err := auth.NewVerifier([]ed25519.PublicKey{pub})
	require.NoError(t, err)
	a, err := auth.NewAuthenticator(auth.ModeJWT, verifier)
	require.NoError(t, err)
	p := newPool(t, pool.Config{})
	token := func(c *auth.Claims) string {
		s, err := auth.Issue(priv, c)
		require.NoError(t, err)
		return s
	}
	req := &redo.Request{Tenant: tenant(6), Tag: heapTag, Records: heapChain(lsn.MustParse("0/1000000"), 2)}
	heapPage := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(context.Background(), req, heapPage))
	cases := []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"pageserverapi accepted", token(&auth.Claims{Scope: auth.ScopePageserverAPI}), codes.OK},
		{"tenant scope refused even for its own tenant", token(&auth.Claims{Scope: auth.ScopeTenant, TenantID: tenant(6).String()}), codes.PermissionDenied},
		{"safekeeperdata refused", token(&auth.Claims{Scope: auth.ScopeSafekeeperData}), codes.PermissionDenied},
		{"no token", "", codes.Unauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var dial []grpc.DialOption
			if tc.token != "" {
				dial = append(dial, grpc.WithPerRPCCredentials(auth.BearerToken(tc.token, false)))
			}
			c := client.New(serve(t, p, a, server.Options{}, dial...))
			err := c.Apply(context.Background(), req, make([]byte, pgtypes.BLCKSZ))
			require.Equal(t, tc.want, status.Code(errors.Unwrap(err)), "%v", err)
			if tc.want != codes.OK {
				require.Error(t, err)
				require.NotErrorIs(t, err, redo.ErrRecordFailed)
			}
			merr := c.Mask(context.Background(), tenant(6), 10, 0, heapPage, make([]byte, pgtypes.BLCKSZ))
			if tc.want == codes.OK {
				require.NoError(t, merr)
			} else {
				require.Equal(t, tc.want, status.Code(errors.Unwrap(merr)))
			}
		})
	}
}

func rawClient(conn *grpc.ClientConn) walredov1.WalRedoServiceClient {
	return walredov1.NewWalRedoServiceClient(conn)
}

func rawRequest(r *redo.Request) *walredov1.ApplyRequest {
	out := &walredov1.ApplyRequest{
		TenantId: r.Tenant.String(),
		Tag: &walredov1.BufferTag{SpcOid: uint32(r.Tag.Rel.SpcNode), DbOid: uint32(r.Tag.Rel.DbNode), RelNumber: uint32(r.Tag.Rel.RelNode),
			ForkNumber: uint32(r.Tag.Rel.ForkNum), BlockNumber: r.Tag.BlockNum},
		BaseImage: r.Base,
	}
	for _, rec := range r.Records {
		out.Records = append(out.Records, &walredov1.WalRecord{StartLsn: uint64(rec.Start), EndLsn: uint64(rec.End), Data: rec.Raw})
	}
	return out
}
