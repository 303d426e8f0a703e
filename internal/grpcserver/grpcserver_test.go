package grpcserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/logging"
	walredov1 "github.com/stratadb/strata/proto/gen/strata/walredo/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoRedo is a test adapter: Mask echoes the page and reports the caller's
// scope in the first bytes; Apply panics.
type echoRedo struct {
	walredov1.UnimplementedWalRedoServiceServer
}

func (echoRedo) Mask(ctx context.Context, req *walredov1.MaskRequest) (*walredov1.MaskResponse, error) {
	if err := auth.AuthorizeScope(ctx, auth.ScopePageserverAPI); err != nil {
		return nil, err
	}
	return &walredov1.MaskResponse{Page: req.Page}, nil
}

func (echoRedo) Apply(context.Context, *walredov1.ApplyRequest) (*walredov1.ApplyResponse, error) {
	panic("boom")
}

func start(t *testing.T, mode auth.Mode, pub ed25519.PublicKey) (string, *prometheus.Registry) {
	t.Helper()
	var v *auth.Verifier
	if pub != nil {
		var err error
		v, err = auth.NewVerifier([]ed25519.PublicKey{pub})
		require.NoError(t, err)
	}
	a, err := auth.NewAuthenticator(mode, v)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	srv, err := New(Options{Logger: logging.Discard(), Registry: reg, Auth: a, ShutdownTimeout: time.Second})
	require.NoError(t, err)
	walredov1.RegisterWalRedoServiceServer(srv.Server, echoRedo{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return lis.Addr().String(), reg
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestJWTModeHealthOpenServicesProtected(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	addr, reg := start(t, auth.ModeJWT, pub)
	ctx := context.Background()

	// Health needs no token.
	cc := dial(t, addr)
	hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "strata.walredo.v1.WalRedoService"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.Status)

	// A protected method without a token is Unauthenticated.
	_, err = walredov1.NewWalRedoServiceClient(cc).Mask(ctx, &walredov1.MaskRequest{Page: []byte("x")})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	// With a tenant token it is PermissionDenied (the handler wants pageserverapi).
	tenantTok, err := auth.Issue(priv, &auth.Claims{Scope: auth.ScopeTenant, TenantID: "0123456789abcdef0123456789abcdef"})
	require.NoError(t, err)
	cc2 := dial(t, addr, grpc.WithPerRPCCredentials(auth.BearerToken(tenantTok, false)))
	_, err = walredov1.NewWalRedoServiceClient(cc2).Mask(ctx, &walredov1.MaskRequest{Page: []byte("x")})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	// With a pageserverapi token it works.
	apiTok, err := auth.Issue(priv, &auth.Claims{Scope: auth.ScopePageserverAPI})
	require.NoError(t, err)
	cc3 := dial(t, addr, grpc.WithPerRPCCredentials(auth.BearerToken(apiTok, false)))
	client := walredov1.NewWalRedoServiceClient(cc3)
	resp, err := client.Mask(ctx, &walredov1.MaskRequest{Page: []byte("page")})
	require.NoError(t, err)
	require.Equal(t, []byte("page"), resp.Page)

	// A panicking handler becomes Internal and the server keeps serving.
	_, err = client.Apply(ctx, &walredov1.ApplyRequest{})
	require.Equal(t, codes.Internal, status.Code(err), "%v", err)
	_, err = client.Mask(ctx, &walredov1.MaskRequest{Page: []byte("again")})
	require.NoError(t, err)

	// Metrics were recorded per method.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "grpc_server_handled_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "grpc_method" && l.GetValue() == "Mask" && m.GetCounter().GetValue() > 0 {
						found = true
					}
				}
			}
		}
	}
	require.True(t, found, "grpc_server_handled_total for Mask not recorded")
}

func TestTrustMode(t *testing.T) {
	addr, _ := start(t, auth.ModeTrust, nil)
	resp, err := walredov1.NewWalRedoServiceClient(dial(t, addr)).Mask(context.Background(), &walredov1.MaskRequest{Page: []byte("p")})
	require.NoError(t, err)
	require.Equal(t, []byte("p"), resp.Page)
}

func TestNewValidates(t *testing.T) {
	_, err := New(Options{})
	require.ErrorContains(t, err, "required")
}
