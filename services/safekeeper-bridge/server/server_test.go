package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/lsn"
	bridgev1 "github.com/stratadb/strata/proto/gen/strata/bridge/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/timelines"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	tenant   = "0123456789abcdef0123456789abcdef"
	timeline = "fedcba9876543210fedcba9876543210"
)

// fakeBackend records calls and returns canned errors.
type fakeBackend struct {
	mu       sync.Mutex
	attached map[string]timelines.Attachment
	err      error // returned by every call when set
}

func (f *fakeBackend) Attach(_ context.Context, a timelines.Attachment) (timelines.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return timelines.Status{}, f.err
	}
	if _, ok := f.attached[a.TimelineID]; ok {
		return timelines.Status{}, fmt.Errorf("%w: %s", timelines.ErrAlreadyAttached, a.TimelineID)
	}
	f.attached[a.TimelineID] = a
	return timelines.Status{TenantID: a.TenantID, TimelineID: a.TimelineID, SlotName: "strata_x", State: timelines.StateImporting}, nil
}

func (f *fakeBackend) Detach(_ context.Context, tenantID, timelineID string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if _, ok := f.attached[timelineID]; !ok {
		return fmt.Errorf("%w: %s/%s", timelines.ErrNotAttached, tenantID, timelineID)
	}
	delete(f.attached, timelineID)
	return nil
}

func (f *fakeBackend) List() []timelines.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []timelines.Status
	for _, a := range f.attached {
		out = append(out, timelines.Status{TenantID: a.TenantID, TimelineID: a.TimelineID})
	}
	return out
}

func (f *fakeBackend) Get(tenantID, timelineID string) (timelines.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return timelines.Status{}, f.err
	}
	if _, ok := f.attached[timelineID]; !ok {
		return timelines.Status{}, fmt.Errorf("%w: %s/%s", timelines.ErrNotAttached, tenantID, timelineID)
	}
	return timelines.Status{
		TenantID: tenantID, TimelineID: timelineID, State: timelines.StateStreaming,
		PrimaryFlushLSN: lsn.MustParse("0/3000000"), LastRecordLSN: lsn.MustParse("0/2000000"), LagBytes: 0x1000000,
		Reconnects: 3, LastMessageAt: time.Unix(1700000000, 0), LastError: fmt.Errorf("replication: connecting: refused"),
	}, nil
}

// serve runs the adapter behind the real JWT interceptors on loopback and
// returns a client factory for a token scope.
func serve(t *testing.T, b backend) func(scope auth.Scope) bridgev1.BridgeServiceClient {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	verifier, err := auth.NewVerifier([]ed25519.PublicKey{pub})
	require.NoError(t, err)
	a, err := auth.NewAuthenticator(auth.ModeJWT, verifier)
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.UnaryInterceptor(a.UnaryServerInterceptor()), grpc.StreamInterceptor(a.StreamServerInterceptor()))
	Register(srv, b)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return func(scope auth.Scope) bridgev1.BridgeServiceClient {
		claims := &auth.Claims{Scope: scope}
		if scope == auth.ScopeTenant {
			claims.TenantID = tenant
		}
		token, err := auth.Issue(priv, claims)
		require.NoError(t, err)
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(auth.BearerToken(token, false)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return bridgev1.NewBridgeServiceClient(conn)
	}
}

func TestAPI(t *testing.T) {
	fb := &fakeBackend{attached: map[string]timelines.Attachment{}}
	client := serve(t, fb)
	ctx := context.Background()
	api := client(auth.ScopePageserverAPI)

	resp, err := api.Attach(ctx, &bridgev1.AttachRequest{TenantId: tenant, TimelineId: timeline, PrimaryConninfo: "host=x password=secret", Import: true})
	require.NoError(t, err)
	require.Equal(t, timelines.StateImporting, resp.GetStatus().GetState())
	require.Equal(t, "host=x password=secret", fb.attached[timeline].PrimaryConnInfo)
	require.True(t, fb.attached[timeline].Import)

	_, err = api.Attach(ctx, &bridgev1.AttachRequest{TenantId: tenant, TimelineId: timeline, PrimaryConninfo: "host=x"})
	require.Equal(t, codes.AlreadyExists, status.Code(err))

	st, err := api.GetStatus(ctx, &bridgev1.GetStatusRequest{TenantId: tenant, TimelineId: timeline})
	require.NoError(t, err)
	require.Equal(t, uint64(0x3000000), st.GetStatus().GetPrimaryFlushLsn())
	require.Equal(t, uint64(0x1000000), st.GetStatus().GetLagBytes())
	require.Equal(t, uint64(3), st.GetStatus().GetReconnects())
	require.Equal(t, int64(1700000000), st.GetStatus().GetLastMessageAt().GetSeconds())
	require.Contains(t, st.GetStatus().GetError(), "refused")

	list, err := api.ListTimelines(ctx, &bridgev1.ListTimelinesRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetTimelines(), 1)

	_, err = api.Detach(ctx, &bridgev1.DetachRequest{TenantId: tenant, TimelineId: timeline})
	require.NoError(t, err)
	_, err = api.Detach(ctx, &bridgev1.DetachRequest{TenantId: tenant, TimelineId: timeline})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = api.GetStatus(ctx, &bridgev1.GetStatusRequest{TenantId: tenant, TimelineId: timeline})
	require.Equal(t, codes.NotFound, status.Code(err))
}

func TestScope(t *testing.T) {
	fb := &fakeBackend{attached: map[string]timelines.Attachment{timeline: {TenantID: tenant, TimelineID: timeline}}}
	client := serve(t, fb)
	ctx := context.Background()
	for _, scope := range []auth.Scope{auth.ScopeTenant, auth.ScopeSafekeeperData} {
		t.Run(string(scope), func(t *testing.T) {
			c := client(scope)
			_, err := c.Attach(ctx, &bridgev1.AttachRequest{TenantId: tenant, TimelineId: "11111111111111111111111111111111", PrimaryConninfo: "host=x"})
			require.Equal(t, codes.PermissionDenied, status.Code(err))
			_, err = c.Detach(ctx, &bridgev1.DetachRequest{TenantId: tenant, TimelineId: timeline})
			require.Equal(t, codes.PermissionDenied, status.Code(err))
			_, err = c.ListTimelines(ctx, &bridgev1.ListTimelinesRequest{})
			require.Equal(t, codes.PermissionDenied, status.Code(err))
			_, err = c.GetStatus(ctx, &bridgev1.GetStatusRequest{TenantId: tenant, TimelineId: timeline})
			require.Equal(t, codes.PermissionDenied, status.Code(err))
		})
	}
	require.Len(t, fb.attached, 1, "a refused call must not reach the bridge")
}

func TestStatusError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("x: %w", timelines.ErrInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("x: %w", timelines.ErrAlreadyAttached), codes.AlreadyExists},
		{fmt.Errorf("x: %w", timelines.ErrNotAttached), codes.NotFound},
		{fmt.Errorf("x: %w", timelines.ErrConfigured), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", timelines.ErrClosed), codes.Unavailable},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("disk on fire"), codes.Internal},
		{status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			got := statusError(tc.err)
			require.Equal(t, tc.want, status.Code(got))
			require.Contains(t, status.Convert(got).Message(), status.Convert(tc.err).Message())
		})
	}
	require.NoError(t, statusError(nil))
}
