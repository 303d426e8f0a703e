package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsTenantID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{tenantA, true},
		{"00000000000000000000000000000000", true},
		{"", false},
		{strings.ToUpper(tenantA), false},
		{tenantA[:31], false},
		{tenantA + "0", false},
		{"3f0c2a6e9b1d4c7a8e5f0b2d4c6a8e0g", false},
		{"3f0c2a6e-9b1d-4c7a-8e5f-0b2d4c6a", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			require.Equal(t, tc.want, IsTenantID(tc.in))
		})
	}
}

func TestParseScope(t *testing.T) {
	for _, s := range []Scope{ScopeTenant, ScopePageserverAPI, ScopeSafekeeperData} {
		got, err := ParseScope(string(s))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	_, err := ParseScope("admin")
	require.ErrorIs(t, err, ErrInvalidClaims)
	require.Contains(t, err.Error(), `unknown scope "admin"`)
}

func TestClaimsValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		claims  Claims
		wantErr string
	}{
		{"tenant", Claims{Scope: ScopeTenant, TenantID: tenantA}, ""},
		{"pageserverapi", Claims{Scope: ScopePageserverAPI}, ""},
		{"pageserverapi with tenant", Claims{Scope: ScopePageserverAPI, TenantID: tenantA}, ""},
		{"safekeeperdata", Claims{Scope: ScopeSafekeeperData}, ""},
		{"empty scope", Claims{}, `unknown scope ""`},
		{"unknown scope", Claims{Scope: "admin"}, `unknown scope "admin"`},
		{"tenant without id", Claims{Scope: ScopeTenant}, `scope "tenant" requires tenant_id`},
		{"uppercase id", Claims{Scope: ScopeTenant, TenantID: strings.ToUpper(tenantA)}, "not 32 lowercase hex"},
		{"short id", Claims{Scope: ScopePageserverAPI, TenantID: "abc"}, "not 32 lowercase hex"},
		{"long garbage id is truncated", Claims{Scope: ScopeTenant, TenantID: strings.Repeat("x", 500)}, strings.Repeat("x", 64) + "..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.claims.validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidClaims)
			require.Contains(t, err.Error(), tc.wantErr)
			require.Less(t, len(err.Error()), 200)
		})
	}
}

func TestCheck(t *testing.T) {
	tenantTok := &Claims{Scope: ScopeTenant, TenantID: tenantA}
	api := &Claims{Scope: ScopePageserverAPI}
	sk := &Claims{Scope: ScopeSafekeeperData}
	for _, tc := range []struct {
		name    string
		claims  *Claims
		tenant  string
		wantIs  error
		wantMsg string
	}{
		{"api global", api, "", nil, ""},
		{"api any tenant", api, tenantB, nil, ""},
		{"tenant own", tenantTok, tenantA, nil, ""},
		{"tenant other", tenantTok, tenantB, ErrPermissionDenied,
			"auth: permission denied: token for tenant " + tenantA + " cannot access tenant " + tenantB},
		{"tenant global", tenantTok, "", ErrPermissionDenied, `scope "tenant" is not allowed to use management operations`},
		{"safekeeper tenant", sk, tenantA, ErrPermissionDenied, `scope "safekeeperdata" is not allowed to access tenant ` + tenantA},
		{"safekeeper global", sk, "", ErrPermissionDenied, `scope "safekeeperdata" is not allowed to use management operations`},
		{"nil claims", nil, tenantA, ErrUnauthenticated, "no credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.claims, tc.tenant)
			if tc.wantIs == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.wantIs)
			require.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}

func TestCheckScope(t *testing.T) {
	sk := &Claims{Scope: ScopeSafekeeperData}
	tenantTok := &Claims{Scope: ScopeTenant, TenantID: tenantA}
	require.NoError(t, CheckScope(sk, ScopeSafekeeperData, ScopePageserverAPI))
	require.NoError(t, CheckScope(&Claims{Scope: ScopePageserverAPI}, ScopeSafekeeperData, ScopePageserverAPI))

	err := CheckScope(tenantTok, ScopeSafekeeperData, ScopePageserverAPI)
	require.ErrorIs(t, err, ErrPermissionDenied)
	require.Contains(t, err.Error(), `scope "tenant" is not allowed here (need one of scopes "safekeeperdata", "pageserverapi")`)

	err = CheckScope(tenantTok, ScopePageserverAPI)
	require.ErrorIs(t, err, ErrPermissionDenied)
	require.Contains(t, err.Error(), `need scope "pageserverapi"`)

	err = CheckScope(tenantTok)
	require.ErrorIs(t, err, ErrPermissionDenied)

	require.ErrorIs(t, CheckScope(nil, ScopeTenant), ErrUnauthenticated)
}
