package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/auth"
)

const tenantA = "3f0c2a6e9b1d4c7a8e5f0b2d4c6a8e0f"

type result struct {
	code           int
	stdout, stderr string
}

// run executes stratactl in-process, exactly as main does, with stdin.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := execute(context.Background(), root, args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestVersion(t *testing.T) {
	r := run(t, "", "version")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "stratactl dev\n")
	require.Contains(t, r.stdout, "go:       go1.")

	r = run(t, "", "version", "--output", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.Equal(t, "dev", v.Version)
	require.NotEmpty(t, v.Commit)
	require.True(t, strings.HasPrefix(v.GoVersion, "go"), v.GoVersion)

	old := commit
	commit = "abc123"
	t.Cleanup(func() { commit = old })
	r = run(t, "", "-o", "json", "version")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.Equal(t, "abc123", v.Commit)
}

// keygen runs "token keygen" into a fresh directory and returns its paths.
func keygen(t *testing.T) (dir, priv, pub string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "keys")
	r := run(t, "", "token", "keygen", "--dir", dir)
	require.Equal(t, exitOK, r.code, r.stderr)
	priv = filepath.Join(dir, auth.PrivateKeyFileName)
	pub = filepath.Join(dir, auth.PublicKeyFileName)
	require.Contains(t, r.stdout, priv)
	require.Contains(t, r.stdout, pub)
	return dir, priv, pub
}

func TestTokenRoundTrip(t *testing.T) {
	dir, priv, pub := keygen(t)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	r := run(t, "", "token", "issue", "--scope", "tenant", "--tenant", tenantA, "--key", priv)
	require.Equal(t, exitOK, r.code, r.stderr)
	token := strings.TrimSpace(r.stdout)
	require.Len(t, strings.Split(token, "."), 3)

	t.Run("text from stdin", func(t *testing.T) {
		r := run(t, token+"\n", "token", "verify", "--key", pub)
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "token is valid\n")
		require.Contains(t, r.stdout, "scope:      tenant\n")
		require.Contains(t, r.stdout, "tenant_id:  "+tenantA+"\n")
		require.NotContains(t, r.stdout, "never", "default --ttl sets an expiry")
	})
	t.Run("json from file, key directory", func(t *testing.T) {
		keysOnly := t.TempDir()
		data, err := os.ReadFile(pub)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(keysOnly, "k1.pem"), data, 0o644))
		tokenFile := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(tokenFile, []byte(token), 0o600))

		r := run(t, "", "token", "verify", "--key", keysOnly, "--token-file", tokenFile, "-o", "json")
		require.Equal(t, exitOK, r.code, r.stderr)
		var got claimsView
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Equal(t, auth.ScopeTenant, got.Scope)
		require.Equal(t, tenantA, got.TenantID)
		issued, err := time.Parse(time.RFC3339, got.IssuedAt)
		require.NoError(t, err)
		expires, err := time.Parse(time.RFC3339, got.ExpiresAt)
		require.NoError(t, err)
		require.Equal(t, 24*time.Hour, expires.Sub(issued))
	})
	t.Run("issue json, no expiry", func(t *testing.T) {
		r := run(t, "", "token", "issue", "--scope", "pageserverapi", "--key", priv, "--ttl", "0", "-o", "json")
		require.Equal(t, exitOK, r.code, r.stderr)
		var got struct {
			Token  string     `json:"token"`
			Claims claimsView `json:"claims"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Equal(t, auth.ScopePageserverAPI, got.Claims.Scope)
		require.Empty(t, got.Claims.ExpiresAt)

		r = run(t, got.Token, "token", "verify", "--key", pub)
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "expires_at: never\n")

		r = run(t, got.Token, "token", "verify", "--key", pub, "--require-exp")
		require.Equal(t, exitRuntime, r.code)
		require.Contains(t, r.stderr, "token has no expiry")
	})
}

func TestTokenVerifyInvalid(t *testing.T) {
	_, priv, pub := keygen(t)
	_, otherPriv, _ := keygen(t)
	r := run(t, "", "token", "issue", "--scope", "pageserverapi", "--key", priv)
	require.Equal(t, exitOK, r.code, r.stderr)
	token := strings.TrimSpace(r.stdout)
	parts := strings.Split(token, ".")

	r = run(t, "", "token", "issue", "--scope", "pageserverapi", "--key", otherPriv)
	require.Equal(t, exitOK, r.code, r.stderr)
	foreign := strings.TrimSpace(r.stdout)

	key, err := auth.LoadPrivateKey(priv)
	require.NoError(t, err)
	expired, err := auth.Issue(key, &auth.Claims{Scope: auth.ScopePageserverAPI, RegisteredClaims: jwt.RegisteredClaims{
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour)),
	}})
	require.NoError(t, err)

	// Flip one character of the signature.
	sig := []byte(parts[2])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)

	for _, tc := range []struct {
		name, token, wantMsg string
	}{
		{"tampered signature", tampered, "token signature does not verify"},
		{"tampered claims", parts[0] + ".eyJzY29wZSI6InRlbmFudCJ9." + parts[2], "token signature does not verify"},
		{"other key", foreign, "token signature does not verify"},
		{"expired", expired, "token expired at"},
		{"garbage", "hello", "malformed token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.token, "token", "verify", "--key", pub)
			require.Equal(t, exitRuntime, r.code)
			require.Empty(t, r.stdout)
			require.Contains(t, r.stderr, "stratactl: token is invalid: auth: unauthenticated: "+tc.wantMsg)
			require.NotContains(t, r.stderr, "Run '", "runtime errors print no usage hint")
		})
	}
}

func TestUsageErrors(t *testing.T) {
	_, priv, pub := keygen(t)
	for _, tc := range []struct {
		name    string
		stdin   string
		args    []string
		wantMsg string
	}{
		{"unknown command", "", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", "", []string{"token", "issue", "--bogus"}, "unknown flag: --bogus"},
		{"bad output", "", []string{"--output", "yaml", "version"}, `invalid --output "yaml"`},
		{"version args", "", []string{"version", "extra"}, "takes no arguments"},
		{"keygen without dir", "", []string{"token", "keygen"}, `required flag(s) "dir" not set`},
		{"issue without scope", "", []string{"token", "issue", "--key", priv}, `required flag(s) "scope" not set`},
		{"issue unknown scope", "", []string{"token", "issue", "--scope", "admin", "--key", priv}, `unknown scope "admin"`},
		{"issue tenant without id", "", []string{"token", "issue", "--scope", "tenant", "--key", priv}, "--scope tenant needs --tenant"},
		{"issue bad tenant", "", []string{"token", "issue", "--scope", "tenant", "--tenant", "ABC", "--key", priv}, `--tenant "ABC" is not a tenant id`},
		{"issue negative ttl", "", []string{"token", "issue", "--scope", "pageserverapi", "--key", priv, "--ttl", "-1h"}, "is negative"},
		{"issue bad ttl", "", []string{"token", "issue", "--scope", "pageserverapi", "--key", priv, "--ttl", "soon"}, "invalid argument"},
		{"verify token as argument", "", []string{"token", "verify", "--key", pub, "eyJ.x.y"}, "never from arguments"},
		{"verify empty stdin", "", []string{"token", "verify", "--key", pub}, "no token on stdin"},
		{"verify without key", "x", []string{"token", "verify"}, `required flag(s) "key" not set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.stdin, tc.args...)
			require.Equal(t, exitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.wantMsg)
			require.Contains(t, r.stderr, "--help' for usage.")
			require.Empty(t, r.stdout)
		})
	}
}

func TestRuntimeErrors(t *testing.T) {
	dir, _, pub := keygen(t)
	for _, tc := range []struct {
		name    string
		stdin   string
		args    []string
		wantMsg string
	}{
		{"keygen twice", "", []string{"token", "keygen", "--dir", dir}, "file already exists"},
		{"missing private key", "", []string{"token", "issue", "--scope", "pageserverapi", "--key", filepath.Join(dir, "nope.pem")}, "no such file"},
		{"public key as private", "", []string{"token", "issue", "--scope", "pageserverapi", "--key", pub}, `want "PRIVATE KEY"`},
		{"private key in key dir", "x.y.z", []string{"token", "verify", "--key", dir}, auth.PrivateKeyFileName},
		{"missing token file", "", []string{"token", "verify", "--key", pub, "--token-file", filepath.Join(dir, "nope")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.stdin, tc.args...)
			require.Equal(t, exitRuntime, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.wantMsg)
		})
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	r := run(t, "", "--help")
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stdout, "Exit codes:")
	require.Contains(t, r.stdout, "2  usage error")
	for _, cmd := range []string{"token", "version"} {
		require.Contains(t, r.stdout, cmd)
	}
}

func TestReadTokenLimits(t *testing.T) {
	_, err := readToken(strings.NewReader(strings.Repeat("a", auth.MaxTokenBytes+1)), "")
	require.ErrorContains(t, err, "larger than")
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	_, err = readToken(nil, empty)
	require.ErrorContains(t, err, "is empty")
	_, err = readToken(errReader{}, "")
	require.ErrorContains(t, err, "read token from stdin")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
