package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Mode is how a server authenticates callers, as Neon's *_auth_type.
type Mode string

const (
	// ModeTrust checks no token: every caller acts with synthetic
	// ScopePageserverAPI claims, so handlers run the same Authorize calls in
	// both modes. For local development and tests only.
	ModeTrust Mode = "trust"
	// ModeJWT requires a valid "authorization: Bearer <jwt>" on every call
	// except health checks and reflection.
	ModeJWT Mode = "jwt"
)

// ParseMode returns the Mode named by text ("trust" or "jwt").
func ParseMode(text string) (Mode, error) {
	switch m := Mode(text); m {
	case ModeTrust, ModeJWT:
		return m, nil
	default:
		return "", fmt.Errorf("auth: unknown auth mode %q (valid: %q, %q)", text, ModeTrust, ModeJWT)
	}
}

// isUnauthenticatedService reports the services reachable without a
// token: load balancers and grpcurl must be able to probe a server that has
// auth on.
func isUnauthenticatedService(service string) bool {
	switch service {
	case "grpc.health.v1.Health",
		"grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection":
		return true
	}
	return false
}

type claimsKey struct{}

// trustClaims are what every caller gets in ModeTrust.
var trustClaims = Claims{Scope: ScopePageserverAPI}

// ContextWithClaims returns ctx carrying claims (for servers that
// authenticate by other means, such as pgproxy's libpq password, and tests).
func ContextWithClaims(ctx context.Context, claims *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, claims)
}

// ClaimsFromContext returns the claims the server interceptors stored for
// this call. ok is false for unauthenticated services (health, reflection)
// and outside an intercepted call. The claims must not be modified.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Authenticator authenticates gRPC calls. It is immutable and safe for
// concurrent use.
type Authenticator struct {
	mode     Mode
	verifier *Verifier
}

// NewAuthenticator returns an Authenticator for mode. ModeJWT needs a
// verifier; ModeTrust ignores it and any token callers send.
func NewAuthenticator(mode Mode, verifier *Verifier) (*Authenticator, error) {
	switch mode {
	case ModeTrust:
		return &Authenticator{mode: mode}, nil
	case ModeJWT:
		if verifier == nil {
			return nil, errors.New("auth: mode jwt needs a verifier (no public keys configured)")
		}
		return &Authenticator{mode: mode, verifier: verifier}, nil
	default:
		return nil, fmt.Errorf("auth: unknown auth mode %q (valid: %q, %q)", mode, ModeTrust, ModeJWT)
	}
}

// Mode returns the authentication mode.
func (a *Authenticator) Mode() Mode { return a.mode }

// AuthFunc authenticates the incoming call in ctx and returns ctx carrying
// its claims, or a gRPC Unauthenticated status error.
func (a *Authenticator) AuthFunc(ctx context.Context) (context.Context, error) {
	if a.mode == ModeTrust {
		c := trustClaims
		return ContextWithClaims(ctx, &c), nil
	}
	token, err := grpcauth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "%v: missing or malformed authorization metadata (want \"authorization: Bearer <token>\")", ErrUnauthenticated)
	}
	claims, err := a.verifier.Verify(token)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return ContextWithClaims(ctx, claims), nil
}

// needsAuth selects every method outside unauthenticatedServices.
var needsAuth = selector.MatchFunc(func(_ context.Context, call interceptors.CallMeta) bool {
	return !isUnauthenticatedService(call.Service)
})

// UnaryServerInterceptor authenticates unary calls (see AuthFunc).
func (a *Authenticator) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return selector.UnaryServerInterceptor(grpcauth.UnaryServerInterceptor(a.AuthFunc), needsAuth)
}

// StreamServerInterceptor authenticates streaming calls (see AuthFunc).
func (a *Authenticator) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return selector.StreamServerInterceptor(grpcauth.StreamServerInterceptor(a.AuthFunc), needsAuth)
}

// Authorize checks the call's claims against tenantID with Check ("" for a
// management operation) and returns nil or a gRPC status error:
// Unauthenticated without claims, PermissionDenied when refused.
func Authorize(ctx context.Context, tenantID string) error {
	claims, _ := ClaimsFromContext(ctx)
	return StatusError(Check(claims, tenantID))
}

// AuthorizeScope is Authorize for endpoints that need one of scopes (see
// CheckScope).
func AuthorizeScope(ctx context.Context, scopes ...Scope) error {
	claims, _ := ClaimsFromContext(ctx)
	return StatusError(CheckScope(claims, scopes...))
}

// StatusError maps an error from this package to a gRPC status error:
// ErrPermissionDenied → PermissionDenied, ErrUnauthenticated →
// Unauthenticated, anything else → Internal. nil stays nil.
func StatusError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

// BearerToken returns per-RPC credentials that send
// "authorization: Bearer <token>". With requireTLS, gRPC refuses to send
// them over an insecure connection; pass false only for loopback or tests.
func BearerToken(token string, requireTLS bool) credentials.PerRPCCredentials {
	return bearerToken{token: token, requireTLS: requireTLS}
}

type bearerToken struct {
	token      string
	requireTLS bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return b.requireTLS }

// String keeps the token out of logs and %v output.
func (b bearerToken) String() string { return "Bearer <redacted>" }

// GoString keeps the token out of %#v output.
func (b bearerToken) GoString() string { return b.String() }
