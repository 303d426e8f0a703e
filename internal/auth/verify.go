package auth

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// algEdDSA is the only JWS algorithm Strata signs or accepts (as Neon's
// STORAGE_TOKEN_ALGORITHM).
const algEdDSA = "EdDSA"

// MaxTokenBytes bounds the size of a token Verify will look at. Real tokens
// are ~200 bytes; the bound keeps a hostile caller from making the server
// base64- and JSON-decode megabytes per request.
const MaxTokenBytes = 8 << 10

// VerifierOption configures a Verifier.
type VerifierOption func(*verifierConfig)

type verifierConfig struct {
	requireExpiry bool
	leeway        time.Duration
	now           func() time.Time
}

// RequireExpiry makes tokens without an "exp" claim invalid. Off by
// default, matching Neon, whose tokens usually carry no expiry.
func RequireExpiry() VerifierOption {
	return func(c *verifierConfig) { c.requireExpiry = true }
}

// WithLeeway tolerates clock skew of d when checking "exp" and "nbf".
func WithLeeway(d time.Duration) VerifierOption {
	return func(c *verifierConfig) { c.leeway = d }
}

// WithClock makes the Verifier read the time from now (tests).
func WithClock(now func() time.Time) VerifierOption {
	return func(c *verifierConfig) { c.now = now }
}

// Verifier checks tokens against a fixed set of Ed25519 public keys. It is
// immutable and safe for concurrent use; to reload keys, build a new one.
type Verifier struct {
	keys   jwt.VerificationKeySet
	parser *jwt.Parser
	now    func() time.Time
}

// NewVerifier returns a Verifier that accepts tokens signed by any of keys,
// tried in order. It fails if keys is empty or holds a key of the wrong size.
func NewVerifier(keys []ed25519.PublicKey, opts ...VerifierOption) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: verifier needs at least one key", ErrNoKeys)
	}
	cfg := verifierConfig{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: key %d has %d bytes, want %d", ErrInvalidKey, i, len(k), ed25519.PublicKeySize)
		}
		// Copy: the caller keeps its slice and may reuse it.
		set.Keys[i] = append(ed25519.PublicKey(nil), k...)
	}
	parserOpts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{algEdDSA}),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(cfg.now),
		jwt.WithLeeway(cfg.leeway),
	}
	if cfg.requireExpiry {
		parserOpts = append(parserOpts, jwt.WithExpirationRequired())
	}
	return &Verifier{keys: set, parser: jwt.NewParser(parserOpts...), now: cfg.now}, nil
}

// Verify checks token's algorithm (EdDSA only), signature, time claims and
// Strata claim rules, and returns its claims. Every error wraps
// ErrUnauthenticated (claim rule violations also wrap ErrInvalidClaims); no
// error message contains the token.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrUnauthenticated)
	}
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token is %d bytes, limit is %d", ErrUnauthenticated, len(token), MaxTokenBytes)
	}
	claims := &Claims{}
	parsed, err := v.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return v.keys, nil })
	if err != nil {
		return nil, v.explain(parsed, claims, err)
	}
	if err := claims.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	return claims, nil
}

// explain turns a jwt error into one that says what is wrong in our terms.
// jwt's own messages are kept only where they describe structure (they never
// quote the token).
func (v *Verifier) explain(parsed *jwt.Token, claims *Claims, err error) error {
	if alg := headerAlg(parsed); alg != "" && alg != algEdDSA {
		return fmt.Errorf("%w: signing algorithm %q is not allowed (only %s)", ErrUnauthenticated, truncate(alg), algEdDSA)
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: malformed token: %v", ErrUnauthenticated, jwtDetail(err))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: token signature does not verify with any of the %d configured keys", ErrUnauthenticated, len(v.keys.Keys))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: token has no expiry (exp) and this server requires one", ErrUnauthenticated)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: token expired at %s (now %s)", ErrUnauthenticated, formatNumericDate(claims.ExpiresAt), v.now().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: token not valid before %s (now %s)", ErrUnauthenticated, formatNumericDate(claims.NotBefore), v.now().UTC().Format(time.RFC3339))
	default:
		return fmt.Errorf("%w: invalid token: %v", ErrUnauthenticated, jwtDetail(err))
	}
}

func headerAlg(parsed *jwt.Token) string {
	if parsed == nil {
		return ""
	}
	alg, _ := parsed.Header["alg"].(string)
	return alg
}

func formatNumericDate(d *jwt.NumericDate) string {
	if d == nil {
		return "?"
	}
	return d.UTC().Format(time.RFC3339)
}

// jwtDetail returns jwt's description of a structural problem ("token
// contains an invalid number of segments", "could not base64 decode
// header"). jwt never quotes the token in these; the length bound is a
// second guard for what JSON decoding errors may echo.
func jwtDetail(err error) string {
	const maxLen = 200
	msg := err.Error()
	if len(msg) > maxLen {
		msg = msg[:maxLen] + "..."
	}
	return msg
}

// Issue signs claims with priv (EdDSA) after checking them against the same
// rules Verify enforces, so Strata never mints a token it would refuse.
func Issue(priv ed25519.PrivateKey, claims *Claims) (string, error) {
	if claims == nil {
		return "", fmt.Errorf("%w: nil claims", ErrInvalidClaims)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("%w: private key has %d bytes, want %d", ErrInvalidKey, len(priv), ed25519.PrivateKeySize)
	}
	if err := claims.validate(); err != nil {
		return "", err
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return signed, nil
}
