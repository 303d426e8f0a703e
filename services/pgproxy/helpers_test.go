package pgproxy

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/services/pgproxy/internal/fakeps"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Fixed ids of the test world.
const (
	tenantA   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tenantB   = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	timelineA = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	timelineB = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
)

// env is one running pgproxy in front of one fake pageserver.
type env struct {
	t       testing.TB
	fake    *fakeps.Server
	priv    ed25519.PrivateKey
	pgAddr  *net.TCPAddr
	metrics string
	// fakeAddr is the fake pageserver's gRPC address.
	fakeAddr string
	// stop stops pgproxy and checks Run's result; idempotent.
	stop func()
}

type envOptions struct {
	proxyMode auth.Mode // pgproxy's auth mode (default jwt)
	fakeMode  auth.Mode // the fake pageserver's (default jwt)
	mutate    func(*Config)
	// serviceScope, if set, puts a token of that scope in TokenEnv.
	serviceScope auth.Scope
}

func startEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.proxyMode == "" {
		o.proxyMode = auth.ModeJWT
	}
	if o.fakeMode == "" {
		o.fakeMode = auth.ModeJWT
	}
	dir := t.TempDir()
	privPath, pubPath, err := auth.GenerateKeyPair(dir)
	require.NoError(t, err)
	priv, err := auth.LoadPrivateKey(privPath)
	require.NoError(t, err)
	keys, err := auth.LoadPublicKeys(pubPath)
	require.NoError(t, err)
	verifier, err := auth.NewVerifier(keys)
	require.NoError(t, err)
	fakeAuth, err := auth.NewAuthenticator(o.fakeMode, verifier)
	require.NoError(t, err)

	e := &env{t: t, fake: fakeps.New(), priv: priv}
	e.fake.AddTimeline(tenantA, timelineA)
	e.fake.AddTimeline(tenantB, timelineB)
	psAddr := fakeps.Start(t, e.fake, fakeAuth)
	e.fakeAddr = psAddr

	// Metrics on a free port we pick first.
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.metrics = ml.Addr().String()
	require.NoError(t, ml.Close())

	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.MetricsAddr = e.metrics
	cfg.PageserverAddr = psAddr
	cfg.AuthMode = string(o.proxyMode)
	cfg.AuthPublicKeyPath = pubPath
	cfg.LogOutput = io.Discard
	cfg.LogLevel = "warn"
	ready := make(chan net.Addr, 1)
	cfg.Ready = func(a net.Addr) { ready <- a }
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	if o.serviceScope != "" {
		t.Setenv(TokenEnv, e.token(o.serviceScope, ""))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case a := <-ready:
		e.pgAddr = a.(*net.TCPAddr)
	case err := <-done:
		cancel()
		t.Fatalf("pgproxy.Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("pgproxy did not start")
	}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("pgproxy.Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("pgproxy did not stop")
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

func (e *env) token(scope auth.Scope, tenant string) string {
	e.t.Helper()
	tok, err := auth.Issue(e.priv, &auth.Claims{Scope: scope, TenantID: tenant})
	require.NoError(e.t, err)
	return tok
}

func (e *env) expiredToken() string {
	e.t.Helper()
	tok, err := auth.Issue(e.priv, &auth.Claims{Scope: auth.ScopePageserverAPI,
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour))}})
	require.NoError(e.t, err)
	return tok
}

func wrongKeyToken(t testing.TB) string {
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	tok, err := auth.Issue(priv, &auth.Claims{Scope: auth.ScopePageserverAPI})
	require.NoError(t, err)
	return tok
}

// connString is a libpq connection string for pgconn.
func (e *env) connString(password string) string {
	s := fmt.Sprintf("host=127.0.0.1 port=%d user=compute dbname=postgres sslmode=disable connect_timeout=10", e.pgAddr.Port)
	if password != "" {
		s += " password=" + password
	}
	return s
}

// psql runs the real psql client with the token in PGPASSWORD; extra args
// come before -c.
func (e *env) psql(token, command string, extra ...string) (string, error) {
	e.t.Helper()
	bin, err := pgtest.BinDir()
	require.NoError(e.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-X", "-w", "-h", "127.0.0.1", "-p", fmt.Sprint(e.pgAddr.Port), "-U", "compute", "-d", "postgres"}, extra...)
	args = append(args, "-c", command)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "psql"), args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+token, "PGSSLMODE=prefer", "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
