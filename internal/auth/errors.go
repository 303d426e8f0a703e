package auth

import "errors"

// ErrUnauthenticated is wrapped by every error that means "who you are could
// not be established": no token, a garbled token, a signature that no
// configured key verifies, a disallowed algorithm, an expired or not yet
// valid token, or claims that are not well formed. It maps to gRPC
// Unauthenticated and SQLSTATE 28P01.
var ErrUnauthenticated = errors.New("auth: unauthenticated")

// ErrPermissionDenied is wrapped by every error that means "the token is
// valid but does not allow this": the wrong tenant or the wrong scope. It
// maps to gRPC PermissionDenied and SQLSTATE 28000.
var ErrPermissionDenied = errors.New("auth: permission denied")

// ErrInvalidKey is wrapped when a key file cannot be used: not PEM, not the
// expected PEM type, or not an Ed25519 key.
var ErrInvalidKey = errors.New("auth: invalid key")

// ErrNoKeys is wrapped when a public key path holds no key at all.
var ErrNoKeys = errors.New("auth: no public keys")

// ErrInvalidClaims is wrapped (together with ErrUnauthenticated on
// verification) when claims break the rules: unknown scope, scope "tenant"
// without tenant_id, or a tenant_id that is not 32 lowercase hex characters.
var ErrInvalidClaims = errors.New("auth: invalid claims")

// ErrNoToken is wrapped by TokenFromEnv when no token is configured.
var ErrNoToken = errors.New("auth: no token configured")
