package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// signRaw signs arbitrary claims with any jwt method, bypassing Issue's
// checks, to build hostile tokens.
func signRaw(t testing.TB, method jwt.SigningMethod, claims jwt.Claims, key any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return tok
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerify(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	good := newKeyPair(t)
	other := newKeyPair(t)
	v := newVerifier(t, []ed25519.PublicKey{good.pub}, WithClock(clock))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)

	tenantClaims := func() *Claims { return &Claims{Scope: ScopeTenant, TenantID: tenantA} }
	// Local: that is how jwt decodes NumericDate, so require.Equal compares equal.
	at := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d).Local()) }

	validTenant := issue(t, good.priv, tenantClaims())
	parts := strings.Split(validTenant, ".")
	require.Len(t, parts, 3)

	for _, tc := range []struct {
		name    string
		token   string
		want    *Claims // nil: must fail
		wantMsg string
		wantIs  error // additionally to ErrUnauthenticated
	}{
		{name: "tenant", token: validTenant, want: tenantClaims()},
		{name: "pageserverapi", token: issue(t, good.priv, &Claims{Scope: ScopePageserverAPI}), want: &Claims{Scope: ScopePageserverAPI}},
		{name: "safekeeperdata", token: issue(t, good.priv, &Claims{Scope: ScopeSafekeeperData}), want: &Claims{Scope: ScopeSafekeeperData}},
		{
			name:  "unexpired with iat",
			token: issue(t, good.priv, &Claims{Scope: ScopePageserverAPI, RegisteredClaims: jwt.RegisteredClaims{IssuedAt: at(-time.Hour), ExpiresAt: at(time.Hour)}}),
			want:  &Claims{Scope: ScopePageserverAPI, RegisteredClaims: jwt.RegisteredClaims{IssuedAt: at(-time.Hour), ExpiresAt: at(time.Hour)}},
		},
		{
			name:  "neon endpoint_id is ignored",
			token: signRaw(t, jwt.SigningMethodEdDSA, jwt.MapClaims{"scope": "tenant", "tenant_id": tenantA, "endpoint_id": "ep-1"}, good.priv),
			want:  tenantClaims(),
		},
		{name: "empty", token: "", wantMsg: "empty token"},
		{name: "too long", token: strings.Repeat("a", MaxTokenBytes+1), wantMsg: "limit is 8192"},
		{name: "garbage", token: "not a token", wantMsg: "malformed token"},
		{name: "two segments", token: parts[0] + "." + parts[1], wantMsg: "malformed token"},
		{name: "dots only", token: "..", wantMsg: "malformed token"},
		{name: "header not base64", token: "!!!." + parts[1] + "." + parts[2], wantMsg: "malformed token"},
		{name: "header not json", token: b64("nope") + "." + parts[1] + "." + parts[2], wantMsg: "malformed token"},
		{name: "claims not json", token: parts[0] + "." + b64("{") + "." + parts[2], wantMsg: "malformed token"},
		{name: "scope not a string", token: parts[0] + "." + b64(`{"scope":7}`) + "." + parts[2], wantMsg: "malformed token"},
		{name: "wrong key", token: issue(t, other.priv, tenantClaims()), wantMsg: "signature does not verify with any of the 1 configured keys"},
		{name: "tampered claims", token: parts[0] + "." + b64(`{"scope":"pageserverapi"}`) + "." + parts[2], wantMsg: "signature does not verify"},
		{name: "signature stripped", token: parts[0] + "." + parts[1] + ".", wantMsg: "signature does not verify"},
		{
			name:    "expired",
			token:   issue(t, good.priv, &Claims{Scope: ScopePageserverAPI, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: at(-time.Minute)}}),
			wantMsg: "token expired at 2026-03-01T11:59:00Z (now 2026-03-01T12:00:00Z)",
		},
		{
			name:    "not yet valid",
			token:   issue(t, good.priv, &Claims{Scope: ScopePageserverAPI, RegisteredClaims: jwt.RegisteredClaims{NotBefore: at(time.Hour)}}),
			wantMsg: "token not valid before 2026-03-01T13:00:00Z",
		},
		{
			name:    "alg none",
			token:   signRaw(t, jwt.SigningMethodNone, jwt.MapClaims{"scope": "pageserverapi"}, jwt.UnsafeAllowNoneSignatureType),
			wantMsg: `signing algorithm "none" is not allowed (only EdDSA)`,
		},
		{
			name:    "HS256 keyed with the public key bytes",
			token:   signRaw(t, jwt.SigningMethodHS256, jwt.MapClaims{"scope": "pageserverapi"}, []byte(good.pub)),
			wantMsg: `signing algorithm "HS256" is not allowed`,
		},
		{
			name:    "RS256",
			token:   signRaw(t, jwt.SigningMethodRS256, jwt.MapClaims{"scope": "pageserverapi"}, rsaKey),
			wantMsg: `signing algorithm "RS256" is not allowed`,
		},
		{
			name:    "ES256",
			token:   signRaw(t, jwt.SigningMethodES256, jwt.MapClaims{"scope": "pageserverapi"}, ecKey),
			wantMsg: `signing algorithm "ES256" is not allowed`,
		},
		{
			name:    "unknown alg",
			token:   b64(`{"alg":"XX512","typ":"JWT"}`) + "." + parts[1] + "." + parts[2],
			wantMsg: `signing algorithm "XX512" is not allowed`,
		},
		{
			name:    "no alg",
			token:   b64(`{"typ":"JWT"}`) + "." + parts[1] + "." + parts[2],
			wantMsg: "invalid token",
		},
		{
			name:    "unknown scope",
			token:   signRaw(t, jwt.SigningMethodEdDSA, jwt.MapClaims{"scope": "admin"}, good.priv),
			wantMsg: `unknown scope "admin"`, wantIs: ErrInvalidClaims,
		},
		{
			name:    "missing scope",
			token:   signRaw(t, jwt.SigningMethodEdDSA, jwt.MapClaims{"tenant_id": tenantA}, good.priv),
			wantMsg: `unknown scope ""`, wantIs: ErrInvalidClaims,
		},
		{
			name:    "tenant scope without tenant_id",
			token:   signRaw(t, jwt.SigningMethodEdDSA, jwt.MapClaims{"scope": "tenant"}, good.priv),
			wantMsg: `scope "tenant" requires tenant_id`, wantIs: ErrInvalidClaims,
		},
		{
			name:    "malformed tenant_id",
			token:   signRaw(t, jwt.SigningMethodEdDSA, jwt.MapClaims{"scope": "tenant", "tenant_id": strings.ToUpper(tenantA)}, good.priv),
			wantMsg: "not 32 lowercase hex characters", wantIs: ErrInvalidClaims,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(tc.token)
			if tc.want != nil {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			require.Nil(t, got)
			require.ErrorIs(t, err, ErrUnauthenticated)
			require.NotErrorIs(t, err, ErrPermissionDenied)
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			require.Contains(t, err.Error(), tc.wantMsg)
			// Never echo the credential: no segment of the token (beyond
			// trivially short ones) may appear in the message.
			for _, seg := range strings.Split(tc.token, ".") {
				if len(seg) >= 16 {
					require.NotContains(t, err.Error(), seg)
				}
			}
		})
	}
}

func TestVerifyKeysTriedInTurn(t *testing.T) {
	k1, k2, k3 := newKeyPair(t), newKeyPair(t), newKeyPair(t)
	v := newVerifier(t, []ed25519.PublicKey{k1.pub, k2.pub})
	for _, k := range []keyPair{k1, k2} {
		got, err := v.Verify(issue(t, k.priv, &Claims{Scope: ScopePageserverAPI}))
		require.NoError(t, err)
		require.Equal(t, ScopePageserverAPI, got.Scope)
	}
	_, err := v.Verify(issue(t, k3.priv, &Claims{Scope: ScopePageserverAPI}))
	require.ErrorIs(t, err, ErrUnauthenticated)
	require.Contains(t, err.Error(), "any of the 2 configured keys")
}

func TestVerifyExpiryOptions(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := WithClock(func() time.Time { return now })
	k := newKeyPair(t)
	noExp := issue(t, k.priv, &Claims{Scope: ScopePageserverAPI})
	withExp := issue(t, k.priv, &Claims{Scope: ScopePageserverAPI, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}})
	justExpired := issue(t, k.priv, &Claims{Scope: ScopePageserverAPI, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-10 * time.Second))}})

	t.Run("default accepts no exp", func(t *testing.T) {
		_, err := newVerifier(t, []ed25519.PublicKey{k.pub}, clock).Verify(noExp)
		require.NoError(t, err)
	})
	t.Run("require expiry", func(t *testing.T) {
		v := newVerifier(t, []ed25519.PublicKey{k.pub}, clock, RequireExpiry())
		_, err := v.Verify(noExp)
		require.ErrorIs(t, err, ErrUnauthenticated)
		require.Contains(t, err.Error(), "token has no expiry (exp) and this server requires one")
		_, err = v.Verify(withExp)
		require.NoError(t, err)
	})
	t.Run("leeway", func(t *testing.T) {
		_, err := newVerifier(t, []ed25519.PublicKey{k.pub}, clock).Verify(justExpired)
		require.ErrorIs(t, err, ErrUnauthenticated)
		_, err = newVerifier(t, []ed25519.PublicKey{k.pub}, clock, WithLeeway(time.Minute)).Verify(justExpired)
		require.NoError(t, err)
	})
}

func TestNewVerifierErrors(t *testing.T) {
	_, err := NewVerifier(nil)
	require.ErrorIs(t, err, ErrNoKeys)
	_, err = NewVerifier([]ed25519.PublicKey{make(ed25519.PublicKey, 31)})
	require.ErrorIs(t, err, ErrInvalidKey)
}

func TestVerifierCopiesKeys(t *testing.T) {
	k := newKeyPair(t)
	keys := []ed25519.PublicKey{append(ed25519.PublicKey(nil), k.pub...)}
	v := newVerifier(t, keys)
	keys[0][0] ^= 0xff
	_, err := v.Verify(issue(t, k.priv, &Claims{Scope: ScopePageserverAPI}))
	require.NoError(t, err)
}

func TestIssueRefusesInvalid(t *testing.T) {
	k := newKeyPair(t)
	for _, tc := range []struct {
		name   string
		priv   ed25519.PrivateKey
		claims *Claims
		wantIs error
	}{
		{"nil claims", k.priv, nil, ErrInvalidClaims},
		{"unknown scope", k.priv, &Claims{Scope: "admin"}, ErrInvalidClaims},
		{"tenant without id", k.priv, &Claims{Scope: ScopeTenant}, ErrInvalidClaims},
		{"bad tenant id", k.priv, &Claims{Scope: ScopeTenant, TenantID: "x"}, ErrInvalidClaims},
		{"short key", k.priv[:10], &Claims{Scope: ScopePageserverAPI}, ErrInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Issue(tc.priv, tc.claims)
			require.ErrorIs(t, err, tc.wantIs)
			require.Empty(t, tok)
		})
	}
}

func TestIssuedTokenShape(t *testing.T) {
	k := newKeyPair(t)
	tok := issue(t, k.priv, &Claims{Scope: ScopeTenant, TenantID: tenantA})
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"alg":"EdDSA","typ":"JWT"}`, string(header))
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	// Exactly Neon's claim names; no registered claims unless set.
	require.JSONEq(t, `{"scope":"tenant","tenant_id":"`+tenantA+`"}`, string(payload))
}

func FuzzVerify(f *testing.F) {
	// A fixed key so seeds signed with it stay valid across runs.
	seed := make([]byte, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	v, err := NewVerifier([]ed25519.PublicKey{pub})
	require.NoError(f, err)

	valid, err := Issue(priv, &Claims{Scope: ScopeTenant, TenantID: tenantA})
	require.NoError(f, err)
	f.Add(valid)
	f.Add("")
	f.Add("a.b.c")
	f.Add("..")
	f.Add(b64(`{"alg":"none"}`) + "." + b64(`{"scope":"pageserverapi"}`) + ".")
	f.Add(b64(`{"alg":"EdDSA"}`) + "." + b64(`{"scope":"tenant","tenant_id":7}`) + ".AAAA")
	f.Add(b64(`{"alg":"EdDSA","crit":["x"]}`) + "." + b64(`{"exp":"soon"}`) + ".")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err != nil {
			require.Nil(t, claims)
			require.ErrorIs(t, err, ErrUnauthenticated)
			return
		}
		// Accepted tokens must satisfy every rule.
		require.NoError(t, claims.validate())
	})
}

// Baseline, measured on the shared 2-core dev VM (AMD EPYC, go1.26.8,
// -benchtime 2s, ~7 other builds running, so absolute times are inflated):
//
//	BenchmarkVerify-2              222305 ns/op   1688 B/op   31 allocs/op
//	BenchmarkVerifyLastOfThree-2   841442 ns/op   1976 B/op   35 allocs/op
//	BenchmarkCheck-2                   16 ns/op      0 B/op    0 allocs/op
//
// Verify is dominated by Ed25519 signature checks (one per configured key
// tried); it runs once per gRPC call or libpq connection, never per page.
// Check, which handlers run per request, must stay allocation-free.
func BenchmarkVerify(b *testing.B) {
	k := newKeyPair(b)
	v := newVerifier(b, []ed25519.PublicKey{k.pub})
	tok := issue(b, k.priv, &Claims{Scope: ScopeTenant, TenantID: tenantA})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyLastOfThree measures key rotation's worst case: the
// signing key is the last one tried.
func BenchmarkVerifyLastOfThree(b *testing.B) {
	k1, k2, k3 := newKeyPair(b), newKeyPair(b), newKeyPair(b)
	v := newVerifier(b, []ed25519.PublicKey{k1.pub, k2.pub, k3.pub})
	tok := issue(b, k3.priv, &Claims{Scope: ScopeTenant, TenantID: tenantA})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	c := &Claims{Scope: ScopeTenant, TenantID: tenantA}
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(c, tenantA); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifyConcurrent backs the "safe for concurrent use" contract; it
// matters under -race, which shares one jwt.Parser across goroutines.
func TestVerifyConcurrent(t *testing.T) {
	k := newKeyPair(t)
	v := newVerifier(t, []ed25519.PublicKey{k.pub})
	good := issue(t, k.priv, &Claims{Scope: ScopeTenant, TenantID: tenantA})
	bad := issue(t, newKeyPair(t).priv, &Claims{Scope: ScopeTenant, TenantID: tenantA})
	const workers = 8
	errs := make(chan error, workers)
	for i := range workers {
		go func() {
			var err error
			for range 20 {
				if _, err = v.Verify(good); err != nil {
					break
				}
				if _, e := v.Verify(bad); e == nil {
					err = fmt.Errorf("worker %d: foreign token accepted", i)
					break
				}
			}
			errs <- err
		}()
	}
	for range workers {
		require.NoError(t, <-errs)
	}
}
