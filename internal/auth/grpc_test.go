package auth

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A hand-rolled service standing in for the pageserver's: one tenant-scoped
// unary method and one ingest-like server-streaming method.
const (
	testService      = "strata.authtest.v1.Test"
	methodTenant     = "/" + testService + "/Tenant"
	methodIngest     = "/" + testService + "/Ingest"
	bufconnSizeBytes = 1 << 20
)

type testServer interface {
	// tenant authorizes access to the tenant named in the request ("" for a
	// management call) and answers with the caller's scope.
	tenant(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
}

type testServerImpl struct{}

func (testServerImpl) tenant(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	if err := Authorize(ctx, req.GetValue()); err != nil {
		return nil, err
	}
	claims, _ := ClaimsFromContext(ctx)
	return wrapperspb.String(string(claims.Scope)), nil
}

var testServiceDesc = grpc.ServiceDesc{
	ServiceName: testService,
	HandlerType: (*testServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Tenant",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			req := new(wrapperspb.StringValue)
			if err := dec(req); err != nil {
				return nil, err
			}
			handler := func(ctx context.Context, req any) (any, error) {
				return srv.(testServer).tenant(ctx, req.(*wrapperspb.StringValue))
			}
			if interceptor == nil {
				return handler(ctx, req)
			}
			return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: methodTenant}, handler)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Ingest",
		ServerStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			if err := AuthorizeScope(stream.Context(), ScopeSafekeeperData, ScopePageserverAPI); err != nil {
				return err
			}
			req := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(req); err != nil {
				return err
			}
			claims, _ := ClaimsFromContext(stream.Context())
			return stream.SendMsg(wrapperspb.String(string(claims.Scope) + ":" + req.GetValue()))
		},
	}},
}

type testEnv struct {
	dial func(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn
}

func startServer(t *testing.T, a *Authenticator) testEnv {
	t.Helper()
	lis := bufconn.Listen(bufconnSizeBytes)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(a.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamServerInterceptor()),
	)
	srv.RegisterService(&testServiceDesc, testServerImpl{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		require.NoError(t, <-served)
	})
	return testEnv{dial: func(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
		t.Helper()
		opts = append([]grpc.DialOption{
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
		}, opts...)
		conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}}
}

func callTenant(ctx context.Context, conn *grpc.ClientConn, tenantID string) (string, error) {
	resp := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, methodTenant, wrapperspb.String(tenantID), resp); err != nil {
		return "", err
	}
	return resp.GetValue(), nil
}

func callIngest(ctx context.Context, conn *grpc.ClientConn, payload string) (string, error) {
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, methodIngest)
	if err != nil {
		return "", err
	}
	if err := stream.SendMsg(wrapperspb.String(payload)); err != nil {
		return "", err
	}
	if err := stream.CloseSend(); err != nil {
		return "", err
	}
	resp := new(wrapperspb.StringValue)
	if err := stream.RecvMsg(resp); err != nil {
		return "", err
	}
	return resp.GetValue(), nil
}

func callHealth(ctx context.Context, conn *grpc.ClientConn) error {
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health status %v", resp.GetStatus())
	}
	return nil
}

func callReflection(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
	if err := stream.Send(req); err != nil {
		return err
	}
	if _, err := stream.Recv(); err != nil {
		return err
	}
	return stream.CloseSend()
}

func requireCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status error: %v", err)
	require.Equal(t, code, st.Code(), st.Message())
	require.Contains(t, st.Message(), msg)
}

func TestGRPCJWTMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := newKeyPair(t)
	stranger := newKeyPair(t)
	a, err := NewAuthenticator(ModeJWT, newVerifier(t, []ed25519.PublicKey{k.pub}))
	require.NoError(t, err)
	require.Equal(t, ModeJWT, a.Mode())
	env := startServer(t, a)

	tenantTok := issue(t, k.priv, &Claims{Scope: ScopeTenant, TenantID: tenantA})
	apiTok := issue(t, k.priv, &Claims{Scope: ScopePageserverAPI})
	skTok := issue(t, k.priv, &Claims{Scope: ScopeSafekeeperData})
	strangerTok := issue(t, stranger.priv, &Claims{Scope: ScopePageserverAPI})

	anon := env.dial(t)
	withToken := func(tok string) *grpc.ClientConn {
		return env.dial(t, grpc.WithPerRPCCredentials(BearerToken(tok, false)))
	}
	tenantConn, apiConn, skConn, strangerConn := withToken(tenantTok), withToken(apiTok), withToken(skTok), withToken(strangerTok)

	t.Run("health and reflection need no token", func(t *testing.T) {
		require.NoError(t, callHealth(ctx, anon))
		require.NoError(t, callReflection(ctx, anon))
		// A bad token is not even looked at there.
		require.NoError(t, callHealth(ctx, strangerConn))
	})
	t.Run("unary", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			conn    *grpc.ClientConn
			tenant  string
			want    string
			code    codes.Code
			wantMsg string
		}{
			{"no token", anon, tenantA, "", codes.Unauthenticated, "missing or malformed authorization metadata"},
			{"unknown key", strangerConn, tenantA, "", codes.Unauthenticated, "signature does not verify"},
			{"tenant own", tenantConn, tenantA, "tenant", codes.OK, ""},
			{"tenant other", tenantConn, tenantB, "", codes.PermissionDenied, "token for tenant " + tenantA + " cannot access tenant " + tenantB},
			{"tenant management", tenantConn, "", "", codes.PermissionDenied, "not allowed to use management operations"},
			{"api tenant", apiConn, tenantB, "pageserverapi", codes.OK, ""},
			{"api management", apiConn, "", "pageserverapi", codes.OK, ""},
			{"safekeeper tenant", skConn, tenantA, "", codes.PermissionDenied, `scope "safekeeperdata" is not allowed to access tenant`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := callTenant(ctx, tc.conn, tc.tenant)
				if tc.code == codes.OK {
					require.NoError(t, err)
					require.Equal(t, tc.want, got)
					return
				}
				requireCode(t, err, tc.code, tc.wantMsg)
			})
		}
	})
	t.Run("wrong scheme", func(t *testing.T) {
		conn := env.dial(t, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			ctx = appendAuthorization(ctx, "Basic "+apiTok)
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
		_, err := callTenant(ctx, conn, tenantA)
		requireCode(t, err, codes.Unauthenticated, "want \"authorization: Bearer <token>\"")
	})
	t.Run("stream", func(t *testing.T) {
		got, err := callIngest(ctx, skConn, "wal")
		require.NoError(t, err)
		require.Equal(t, "safekeeperdata:wal", got)
		got, err = callIngest(ctx, apiConn, "wal")
		require.NoError(t, err)
		require.Equal(t, "pageserverapi:wal", got)
		_, err = callIngest(ctx, tenantConn, "wal")
		requireCode(t, err, codes.PermissionDenied, `scope "tenant" is not allowed here`)
		_, err = callIngest(ctx, anon, "wal")
		requireCode(t, err, codes.Unauthenticated, "missing or malformed authorization metadata")
		_, err = callIngest(ctx, strangerConn, "wal")
		requireCode(t, err, codes.Unauthenticated, "signature does not verify")
	})
	t.Run("TLS-only credentials refuse an insecure channel", func(t *testing.T) {
		_, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(BearerToken(apiTok, true)))
		require.ErrorContains(t, err, "transport level security")
	})
}

func TestGRPCTrustMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := NewAuthenticator(ModeTrust, nil)
	require.NoError(t, err)
	env := startServer(t, a)
	anon := env.dial(t)
	garbage := env.dial(t, grpc.WithPerRPCCredentials(BearerToken("garbage", false)))
	for _, conn := range []*grpc.ClientConn{anon, garbage} {
		got, err := callTenant(ctx, conn, tenantA)
		require.NoError(t, err)
		require.Equal(t, "pageserverapi", got)
		got, err = callTenant(ctx, conn, "")
		require.NoError(t, err)
		require.Equal(t, "pageserverapi", got)
		got, err = callIngest(ctx, conn, "x")
		require.NoError(t, err)
		require.Equal(t, "pageserverapi:x", got)
		require.NoError(t, callHealth(ctx, conn))
	}
}

func TestNewAuthenticatorErrors(t *testing.T) {
	_, err := NewAuthenticator(ModeJWT, nil)
	require.ErrorContains(t, err, "mode jwt needs a verifier")
	_, err = NewAuthenticator("ldap", nil)
	require.ErrorContains(t, err, `unknown auth mode "ldap"`)
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"trust", ModeTrust, false},
		{"jwt", ModeJWT, false},
		{"JWT", "", true},
		{"", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestAuthorizeWithoutClaims(t *testing.T) {
	ctx := context.Background()
	requireCode(t, Authorize(ctx, tenantA), codes.Unauthenticated, "no credentials")
	requireCode(t, AuthorizeScope(ctx, ScopePageserverAPI), codes.Unauthenticated, "no credentials")
	_, ok := ClaimsFromContext(ctx)
	require.False(t, ok)
	_, ok = ClaimsFromContext(ContextWithClaims(ctx, nil))
	require.False(t, ok)

	ctx = ContextWithClaims(ctx, &Claims{Scope: ScopeTenant, TenantID: tenantA})
	require.NoError(t, Authorize(ctx, tenantA))
	requireCode(t, Authorize(ctx, tenantB), codes.PermissionDenied, "cannot access tenant")
}

func TestStatusError(t *testing.T) {
	require.NoError(t, StatusError(nil))
	requireCode(t, StatusError(fmt.Errorf("wrapped: %w", ErrPermissionDenied)), codes.PermissionDenied, "wrapped")
	requireCode(t, StatusError(fmt.Errorf("wrapped: %w", ErrUnauthenticated)), codes.Unauthenticated, "wrapped")
	requireCode(t, StatusError(ErrNoKeys), codes.Internal, "no public keys")
}

func TestBearerTokenRedacted(t *testing.T) {
	const secret = "eyJhbGciOiJFZERTQSJ9.secret.sig"
	cred := BearerToken(secret, true)
	require.True(t, cred.RequireTransportSecurity())
	require.False(t, BearerToken(secret, false).RequireTransportSecurity())
	md, err := cred.GetRequestMetadata(context.Background())
	require.NoError(t, err)
	require.Equal(t, map[string]string{"authorization": "Bearer " + secret}, md)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		require.NotContains(t, fmt.Sprintf(format, cred), "secret", format)
	}
}

func appendAuthorization(ctx context.Context, value string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", value)
}
