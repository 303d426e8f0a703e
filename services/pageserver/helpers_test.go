package pageserver

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/config"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/walredo/pgext"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if extBuildDir != "" {
		os.RemoveAll(extBuildDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	extOnce     sync.Once
	extPath     string
	extErr      error
	extBuildDir string
)

// walredoExtension builds strata_walredo.so from this tree once per test
// binary (a prebuilt one may come from other sources).
func walredoExtension(t *testing.T) string {
	t.Helper()
	extOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "walredo", "pgext")
		extBuildDir, extErr = os.MkdirTemp("", "strata-ps-ext-")
		if extErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		extPath, extErr = pgext.Build(ctx, src, extBuildDir, "")
	})
	require.NoError(t, extErr, "building strata_walredo (run make deps)")
	return extPath
}

// traversableDir returns a fresh directory every user can traverse: when
// the test runs as root, walredo children and initdb run as another user
// and must reach their directories (t.TempDir() is 0700).
func traversableDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// sharedWalredoDir is the machine-wide walredo work dir of these tests, so
// the template (an initdb) is made once.
func sharedWalredoDir(t *testing.T) string {
	dir := filepath.Join(os.TempDir(), "strata-ps-walredo-test-"+strconv.Itoa(os.Geteuid()))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

// testConfig is a config on free ports with an in-process walredo pool.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.ListenAddr = freeAddr(t)
	cfg.MetricsAddr = ""
	cfg.WorkDir = traversableDir(t, "strata-ps-")
	cfg.LogOutput = io.Discard
	if testing.Verbose() {
		cfg.LogOutput = os.Stderr
	}
	cfg.WalredoExtensionPath = walredoExtension(t)
	cfg.WalredoWorkDir = sharedWalredoDir(t)
	cfg.WalredoMaxChildren = 2
	cfg.WalredoMaxChildrenPerTenant = 1
	cfg.PageCacheSize = 16 * config.MiB
	cfg.WaitLSNTimeout = config.Duration(30 * time.Second)
	return cfg
}

// withJWT switches cfg to jwt mode with a fresh key pair and returns a
// token issuer.
func withJWT(t *testing.T, cfg *Config) func(scope auth.Scope, tenant string) string {
	dir := t.TempDir()
	privPath, pubPath, err := auth.GenerateKeyPair(dir)
	require.NoError(t, err)
	priv, err := auth.LoadPrivateKey(privPath)
	require.NoError(t, err)
	cfg.AuthMode = string(auth.ModeJWT)
	cfg.AuthPublicKeyPath = pubPath
	return func(scope auth.Scope, tenant string) string {
		tok, err := auth.Issue(priv, &auth.Claims{Scope: scope, TenantID: tenant})
		require.NoError(t, err)
		return tok
	}
}

// running is a pageserver started in-process through Run.
type running struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan error
}

func startPageserver(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, cfg) }()
	cc := dialToken(t, cfg.ListenAddr, "")
	require.Eventually(t, func() bool {
		select {
		case err := <-r.done:
			r.done <- err
			return true
		default:
		}
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(cc).Check(c, &healthpb.HealthCheckRequest{})
		return err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING
	}, 2*time.Minute, 50*time.Millisecond)
	select {
	case err := <-r.done:
		t.Fatalf("pageserver exited: %v", err)
	default:
	}
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			panic(fmt.Sprintf("pageserver Run: %v", err))
		}
	case <-time.After(30 * time.Second):
		panic("pageserver did not stop")
	}
}

// dialToken connects with token as bearer credentials ("" for none).
func dialToken(t *testing.T, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerToken(token, false)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

type clients struct {
	mgmt pb.ManagementServiceClient
	page pb.PageServiceClient
	ing  pb.IngestServiceClient
}

func newClients(cc *grpc.ClientConn) clients {
	return clients{pb.NewManagementServiceClient(cc), pb.NewPageServiceClient(cc), pb.NewIngestServiceClient(cc)}
}

func requireCode(t *testing.T, want codes.Code, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.Equal(t, want.String(), status.Code(err).String(), "error: %v", err)
}
