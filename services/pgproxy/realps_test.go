package pgproxy

// Helpers that run pgproxy in front of the REAL pageserver (services/
// pageserver, started in-process through pageserver.Run with an in-process
// walredo pool), fed by a real PostgreSQL 15 primary: its base backup is
// imported through ManagementService.ImportBaseBackup and its later WAL is
// streamed by the safekeeper-bridge (the pattern of
// services/pageserver/e2e_test.go).

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	pageserverv1 "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pageserver"
	bridge "github.com/stratadb/strata/services/safekeeper-bridge"
	"github.com/stratadb/strata/services/walredo/pgext"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/process"
)

var (
	extOnce sync.Once
	extPath string
	extErr  error
)

// walredoExtension returns strata_walredo.so built from this tree. It is
// kept in a machine-wide directory named by the source's build id (like
// pgtest's initdb templates), so a test binary builds it at most once per
// source version and leaves no per-run directory behind.
func walredoExtension(t testing.TB) string {
	t.Helper()
	extOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("strata-pgproxy-walredo-ext-%d-%s", os.Geteuid(), pgext.BuildID()))
		extPath = filepath.Join(dir, pgext.LibraryName)
		if _, err := os.Stat(extPath); err == nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "walredo", "pgext")
		tmp, err := os.MkdirTemp("", "strata-pgproxy-ext-build-")
		if err != nil {
			extErr = err
			return
		}
		defer os.RemoveAll(tmp)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		built, err := pgext.Build(ctx, src, tmp, "")
		if err != nil {
			extErr = err
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			extErr = err
			return
		}
		// Write beside, then rename: a concurrent test binary sees either
		// nothing or the whole library.
		data, err := os.ReadFile(built)
		if err != nil {
			extErr = err
			return
		}
		part := extPath + ".part" + strconv.Itoa(os.Getpid())
		if extErr = os.WriteFile(part, data, 0o755); extErr != nil {
			return
		}
		extErr = os.Rename(part, extPath)
	})
	require.NoError(t, extErr, "building strata_walredo (run make deps)")
	return extPath
}

// traversableDir is a fresh directory every user can traverse: walredo
// children run as another user when the test runs as root.
func traversableDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// sharedWalredoDir is the machine-wide walredo work dir shared with the
// pageserver's tests, so the walredo template (an initdb) is made once.
func sharedWalredoDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "strata-ps-walredo-test-"+strconv.Itoa(os.Geteuid()))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// keys is one Ed25519 key pair shared by pgproxy and the pageserver.
type keys struct {
	priv    ed25519.PrivateKey
	pubPath string
}

func newKeys(t testing.TB) keys {
	t.Helper()
	privPath, pubPath, err := auth.GenerateKeyPair(t.TempDir())
	require.NoError(t, err)
	priv, err := auth.LoadPrivateKey(privPath)
	require.NoError(t, err)
	return keys{priv: priv, pubPath: pubPath}
}

func (k keys) token(t testing.TB, scope auth.Scope, tenant string) string {
	t.Helper()
	tok, err := auth.Issue(k.priv, &auth.Claims{Scope: scope, TenantID: tenant})
	require.NoError(t, err)
	return tok
}

// startRealPageserver runs pageserver.Run in-process in mode (jwt with k's
// public key, or trust) and returns its gRPC address once it is serving.
func startRealPageserver(t testing.TB, mode auth.Mode, k keys) string {
	t.Helper()
	cfg := pageserver.DefaultConfig()
	cfg.ListenAddr = freeAddr(t)
	cfg.MetricsAddr = ""
	cfg.WorkDir = traversableDir(t, "strata-pgproxy-ps-")
	cfg.LogOutput = io.Discard
	if testing.Verbose() {
		cfg.LogOutput = os.Stderr
		cfg.LogLevel = "warn"
	}
	cfg.WalredoExtensionPath = walredoExtension(t)
	cfg.WalredoWorkDir = sharedWalredoDir(t)
	cfg.WalredoMaxChildren = 2
	cfg.WalredoMaxChildrenPerTenant = 1
	cfg.PageCacheSize = 64 * config.MiB
	cfg.WaitLSNTimeout = config.Duration(30 * time.Second)
	cfg.AuthMode = string(mode)
	if mode == auth.ModeJWT {
		cfg.AuthPublicKeyPath = k.pubPath
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pageserver.Run(ctx, cfg) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("pageserver.Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("pageserver did not stop")
			}
		})
	})
	cc := dialGRPC(t, cfg.ListenAddr, "")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("pageserver exited: %v", err)
		default:
		}
		c, ccancel := context.WithTimeout(ctx, time.Second)
		resp, err := healthpb.NewHealthClient(cc).Check(c, &healthpb.HealthCheckRequest{})
		ccancel()
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			return cfg.ListenAddr
		}
		if time.Now().After(deadline) {
			t.Fatalf("pageserver not serving after 2 minutes: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialGRPC connects with token as bearer credentials ("" for none).
func dialGRPC(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
		grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(4 << 20)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerToken(token, false)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// startProxy runs pgproxy in mode in front of the pageserver at psAddr and
// returns its PostgreSQL-wire address.
func startProxy(t testing.TB, psAddr string, mode auth.Mode, k keys) *net.TCPAddr {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.MetricsAddr = ""
	cfg.PageserverAddr = psAddr
	cfg.AuthMode = string(mode)
	cfg.AuthPublicKeyPath = k.pubPath
	cfg.LogOutput = io.Discard
	cfg.LogLevel = "warn"
	ready := make(chan net.Addr, 1)
	cfg.Ready = func(a net.Addr) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var addr *net.TCPAddr
	select {
	case a := <-ready:
		addr = a.(*net.TCPAddr)
	case err := <-done:
		cancel()
		t.Fatalf("pgproxy.Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("pgproxy did not start")
	}
	t.Cleanup(func() {
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
	return addr
}

// proxyConnString is a libpq connection string to pgproxy at addr.
func proxyConnString(addr *net.TCPAddr, password string) string {
	s := fmt.Sprintf("host=127.0.0.1 port=%d user=compute dbname=postgres sslmode=disable connect_timeout=10", addr.Port)
	if password != "" {
		s += " password=" + password
	}
	return s
}

// importBaseBackup takes a pg_basebackup of primary (tar format, no WAL)
// and imports it as a new timeline of a new tenant; it returns the ids and
// the import LSN.
func importBaseBackup(t testing.TB, ctx context.Context, primary *pgtest.Server, mgmt pageserverv1.ManagementServiceClient, name string) (*pageserverv1.TimelineRef, lsn.LSN) {
	t.Helper()
	backupDir := filepath.Join(filepath.Dir(primary.DataDir), "backup-"+name)
	out, err := primary.Run(ctx, "pg_basebackup", "-h", primary.Host, "-p", strconv.Itoa(primary.Port), "-U", primary.User,
		"-D", backupDir, "-Ft", "-X", "none", "--no-manifest", "-c", "fast")
	require.NoError(t, err, "pg_basebackup: %s", out)
	baseTar, err := os.ReadFile(filepath.Join(backupDir, "base.tar"))
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(backupDir))

	tr, err := mgmt.CreateTenant(ctx, &pageserverv1.CreateTenantRequest{})
	require.NoError(t, err)
	ref := &pageserverv1.TimelineRef{TenantId: tr.Tenant.TenantId, TimelineId: ids.NewTimelineID().String()}
	imp, err := mgmt.ImportBaseBackup(ctx)
	require.NoError(t, err)
	require.NoError(t, imp.Send(&pageserverv1.ImportBaseBackupRequest{Part: &pageserverv1.ImportBaseBackupRequest_Header{
		Header: &pageserverv1.ImportBaseBackupRequest_ImportHeader{TenantId: ref.TenantId, TimelineId: ref.TimelineId}}}))
	for len(baseTar) > 0 {
		n := min(256<<10, len(baseTar))
		require.NoError(t, imp.Send(&pageserverv1.ImportBaseBackupRequest{Part: &pageserverv1.ImportBaseBackupRequest_BaseTarChunk{BaseTarChunk: baseTar[:n]}}))
		baseTar = baseTar[n:]
	}
	resp, err := imp.CloseAndRecv()
	require.NoError(t, err)
	return ref, lsn.LSN(resp.Timeline.StartLsn)
}

// streamWAL runs the safekeeper-bridge from primary's slot into ref until
// the returned stop function is called.
func streamWAL(t testing.TB, ctx context.Context, primary *pgtest.Server, psAddr, slot, serviceToken string, ref *pageserverv1.TimelineRef) (stop func(), status func() any) {
	t.Helper()
	const env = "STRATA_PGPROXY_E2E_PRIMARY"
	t.Setenv(env, primary.ReplicationConnString())
	t.Setenv(bridge.TokenEnv, serviceToken)
	bcfg := bridge.DefaultConfig()
	bcfg.SpoolDir = t.TempDir()
	bcfg.PageserverAddr = psAddr
	bcfg.MetricsAddr = ""
	bcfg.Timelines = []bridge.TimelineConfig{{TenantID: ref.TenantId, TimelineID: ref.TimelineId, PrimaryConnEnv: env, SlotName: slot}}
	b, err := bridge.New(bcfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	bctx, bcancel := context.WithCancel(ctx)
	bdone := make(chan struct{})
	go func() { defer close(bdone); _ = b.Run(bctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { bcancel(); <-bdone }) }
	t.Cleanup(stop)
	return stop, func() any { return b.Status() }
}

// waitIngested waits until ref's last_record_lsn reaches target.
func waitIngested(t testing.TB, ctx context.Context, mgmt pageserverv1.ManagementServiceClient, ref *pageserverv1.TimelineRef, target lsn.LSN, status func() any) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r, err := mgmt.GetTimeline(ctx, &pageserverv1.GetTimelineRequest{Timeline: ref})
		require.NoError(t, err)
		if lsn.LSN(r.Timeline.LastRecordLsn) >= target {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pageserver reached %s, not %s; bridge status %+v", lsn.LSN(r.Timeline.LastRecordLsn), target, status())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newMaskPool is a walredo pool used only for rm_mask.
func newMaskPool(t testing.TB) *pool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmpl, err := process.PrepareTemplate(ctx, process.Config{ExtensionPath: walredoExtension(t), WorkDir: sharedWalredoDir(t)})
	require.NoError(t, err)
	p, err := pool.New(tmpl, pool.Config{MaxChildren: 1, MaxChildrenPerTenant: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func mustUint(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	require.NoError(t, err, "%q", s)
	return v
}
