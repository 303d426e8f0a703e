// Package auth owns Strata's token authentication and authorisation (design
// D5): Ed25519-signed JWTs carrying Neon's claims
//
//	{"scope": "tenant" | "pageserverapi" | "safekeeperdata", "tenant_id": "<32 lowercase hex>"}
//
// It provides
//   - key handling: LoadPublicKeys (a PEM file or a directory of them, keys
//     tried in turn, as Neon's auth_validation_public_key_path),
//     LoadPrivateKey, GenerateKeyPair;
//   - token handling: Issue and Verifier.Verify, which accept EdDSA only, so
//     "none", HMAC keyed with the public key bytes and RSA/ECDSA tokens are
//     refused before any key is used;
//   - the access rules: Check (tenant-or-global operations) and CheckScope
//     (endpoints that need a specific scope, such as WAL ingest);
//   - gRPC glue: server interceptors that authenticate every call except
//     health checks and reflection and put the Claims in the context
//     (ClaimsFromContext), Authorize for per-tenant checks in handlers, and
//     BearerToken, the client-side per-RPC credential;
//   - TokenFromEnv: services read their own tokens from the environment or a
//     file named in it, never from command lines (D5).
//
// Expiry: like Neon, a token without "exp" is accepted unless the Verifier is
// built with RequireExpiry; "exp" and "nbf" are always enforced when present.
//
// Errors: every authentication failure wraps ErrUnauthenticated (gRPC
// Unauthenticated, SQLSTATE 28P01) and every authorisation failure wraps
// ErrPermissionDenied (gRPC PermissionDenied, SQLSTATE 28000). Messages say
// what is wrong but never contain the token.
//
// It does not own transport security (TLS), the libpq password exchange
// (pgproxy calls Verify with the password it received), or key rotation
// policy; keys are loaded once and a new Verifier is built to reload them.
//
// Concurrency: Verifier and Authenticator are immutable after construction
// and safe for concurrent use. Claims returned by Verify are owned by the
// caller; ClaimsFromContext returns claims that must be treated as read-only.
//
// On-disk format: keys are PEM files, "PUBLIC KEY" (PKIX) and "PRIVATE KEY"
// (PKCS#8), byte-compatible with `openssl genpkey -algorithm ed25519` and
// `openssl pkey -pubout`.
package auth
