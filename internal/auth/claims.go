package auth

import (
	"fmt"
	"strings"

	"github.com/stratadb/strata/internal/ids"

	"github.com/golang-jwt/jwt/v5"
)

// Scope is what a token grants, as in Neon's `enum Scope`.
type Scope string

const (
	// ScopeTenant grants all data of the tenant named in Claims.TenantID and
	// nothing else: no management (global) operations.
	ScopeTenant Scope = "tenant"
	// ScopePageserverAPI grants every tenant and every management operation
	// (the console and stratactl).
	ScopePageserverAPI Scope = "pageserverapi"
	// ScopeSafekeeperData is the safekeeper-bridge's scope: WAL ingest only
	// (checked with CheckScope); it opens no tenant through Check.
	ScopeSafekeeperData Scope = "safekeeperdata"
)

// knownScopes lists the scopes Strata accepts in tokens. Neon has more
// (admin, infra, generations_api, ...), none of which any Strata service
// honours, so a token carrying them is refused as malformed rather than
// silently accepted and then denied everywhere.
var knownScopes = [...]Scope{ScopeTenant, ScopePageserverAPI, ScopeSafekeeperData}

// Valid reports whether s is one of the scopes Strata knows.
func (s Scope) Valid() bool {
	for _, k := range knownScopes {
		if s == k {
			return true
		}
	}
	return false
}

// ParseScope returns the Scope named by text, or an error wrapping
// ErrInvalidClaims that lists the valid scopes.
func ParseScope(text string) (Scope, error) {
	s := Scope(text)
	if !s.Valid() {
		return "", fmt.Errorf("%w: unknown scope %q (valid: %s)", ErrInvalidClaims, text, scopeList(knownScopes[:]))
	}
	return s, nil
}

func scopeList(scopes []Scope) string {
	quoted := make([]string, len(scopes))
	for i, s := range scopes {
		quoted[i] = fmt.Sprintf("%q", string(s))
	}
	return strings.Join(quoted, ", ")
}

// Claims is the payload of a Strata token. The JSON shape is Neon's, so
// tokens minted by Neon tooling for these scopes verify here and vice versa.
// Registered claims (exp, nbf, iat, ...) are optional; see Verifier.
type Claims struct {
	Scope    Scope  `json:"scope"`
	TenantID string `json:"tenant_id,omitempty"`
	jwt.RegisteredClaims
}

// validate enforces the rules every token must satisfy regardless of what it
// is used for. It is deliberately not named Validate: jwt would call that
// itself and fold our message into its own generic one.
func (c *Claims) validate() error {
	if !c.Scope.Valid() {
		return fmt.Errorf("%w: unknown scope %q (valid: %s)", ErrInvalidClaims, truncate(string(c.Scope)), scopeList(knownScopes[:]))
	}
	if c.Scope == ScopeTenant && c.TenantID == "" {
		return fmt.Errorf("%w: scope %q requires tenant_id", ErrInvalidClaims, ScopeTenant)
	}
	if c.TenantID != "" && !IsTenantID(c.TenantID) {
		return fmt.Errorf("%w: tenant_id %q is not 32 lowercase hex characters", ErrInvalidClaims, truncate(c.TenantID))
	}
	return nil
}

// truncate bounds attacker-controlled text that ends up in error messages
// and logs.
func truncate(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return s
	}
	return s[:maxLen] + "..."
}

// IsTenantID reports whether s is a tenant id in text form: 32 lowercase hex
// characters (design D6).
func IsTenantID(s string) bool {
	_, err := ids.ParseTenantID(s)
	return err == nil
}

// Check decides whether claims allow an operation on tenantID.
//
// tenantID == "" means a global (management) operation: only
// ScopePageserverAPI passes. With a tenant id, ScopePageserverAPI passes,
// ScopeTenant passes only for its own tenant, and every other scope is
// refused. nil claims yield ErrUnauthenticated; refusals wrap
// ErrPermissionDenied.
func Check(claims *Claims, tenantID string) error {
	if claims == nil {
		return fmt.Errorf("%w: no credentials", ErrUnauthenticated)
	}
	switch {
	case claims.Scope == ScopePageserverAPI:
		return nil
	case tenantID == "":
		return fmt.Errorf("%w: scope %q is not allowed to use management operations (need scope %q)",
			ErrPermissionDenied, claims.Scope, ScopePageserverAPI)
	case claims.Scope == ScopeTenant && claims.TenantID == tenantID:
		return nil
	case claims.Scope == ScopeTenant:
		return fmt.Errorf("%w: token for tenant %s cannot access tenant %s",
			ErrPermissionDenied, claims.TenantID, truncate(tenantID))
	default:
		return fmt.Errorf("%w: scope %q is not allowed to access tenant %s",
			ErrPermissionDenied, claims.Scope, truncate(tenantID))
	}
}

// CheckScope passes when claims carry one of scopes; it is for endpoints
// that are reserved to a kind of caller rather than to a tenant (WAL ingest
// accepts ScopeSafekeeperData or ScopePageserverAPI). nil claims yield
// ErrUnauthenticated; refusals wrap ErrPermissionDenied.
func CheckScope(claims *Claims, scopes ...Scope) error {
	if claims == nil {
		return fmt.Errorf("%w: no credentials", ErrUnauthenticated)
	}
	for _, s := range scopes {
		if claims.Scope == s {
			return nil
		}
	}
	return fmt.Errorf("%w: scope %q is not allowed here (need %s)", ErrPermissionDenied, claims.Scope, scopeNeed(scopes))
}

func scopeNeed(scopes []Scope) string {
	switch len(scopes) {
	case 0:
		return "a scope, but this endpoint accepts none"
	case 1:
		return "scope " + scopeList(scopes)
	default:
		return "one of scopes " + scopeList(scopes)
	}
}
