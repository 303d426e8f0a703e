package walredo_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo"
	"github.com/stratadb/strata/services/walredo/client"
	"github.com/stratadb/strata/services/walredo/internal/walredotest"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/redo"
)

// testCfg holds the extension built for this test binary and the shared
// test work dir (its template is prepared once per machine).
var testCfg process.Config

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cfg, cleanup, err := walredotest.Setup(ctx, slog.New(slog.DiscardHandler))
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "walredo test setup:", err)
		os.Exit(1)
	}
	testCfg = cfg
	code := m.Run()
	cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*walredo.Config)
		want   []string // substrings of the error; none means valid
	}{
		{"defaults", func(*walredo.Config) {}, nil},
		{"bad listen", func(c *walredo.Config) { c.ListenAddr = "nope" }, []string{"listen_addr"}},
		{"everything wrong at once", func(c *walredo.Config) {
			c.WorkDir = ""
			c.ExtensionPath = ""
			c.MaxChildren = 0
			c.IdleTimeout = 0
			c.RequestTimeout = config.Duration(-time.Second)
			c.LogLevel = "loud"
		}, []string{"workdir", "extension_path", "max_children:", "max_children_per_tenant", "idle_timeout", "request_timeout", "log_level"}},
		{"per tenant above global", func(c *walredo.Config) { c.MaxChildren, c.MaxChildrenPerTenant = 2, 3 }, []string{"max_children_per_tenant: 3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := walredo.DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg := walredo.DefaultConfig()
	require.Equal(t, "127.0.0.1:51052", cfg.ListenAddr)
	require.Equal(t, "127.0.0.1:9899", cfg.MetricsAddr)
	require.Equal(t, process.DefaultUser, cfg.RunAsUser)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return addr
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// waitServing polls the health service until the walredo service is
// SERVING or the deadline passes.
func waitServing(t *testing.T, conn *grpc.ClientConn, exited <-chan error) {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "strata.walredo.v1.WalRedoService"})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("service exited before serving: %v", err)
		default:
		}
		require.True(t, time.Now().Before(deadline), "not SERVING after 60 s: %v %v", resp, err)
		time.Sleep(50 * time.Millisecond)
	}
}

var heapTag = pgtypes.BufferTag{Rel: pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: 5, RelNode: 16384}}

// applyThrough rebuilds a 5-record heap page through c and checks its LSN.
func applyThrough(t *testing.T, c *client.Client) {
	t.Helper()
	raws := make([][]byte, 5)
	for i := range raws {
		raws[i] = walredotest.HeapInsert(heapTag, uint16(i+1), int32(i), i == 0, 1000)
	}
	recs := walredotest.Chain(lsn.MustParse("0/1000000"), raws...)
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(context.Background(), &redo.Request{Tag: heapTag, Records: recs}, page))
	require.Equal(t, recs[4].End, pgtypes.PageGetLSN(page))
}

func metricsBody(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

func TestRunServesAndStops(t *testing.T) {
	cfg := walredo.DefaultConfig()
	cfg.ListenAddr = freeAddr(t)
	cfg.MetricsAddr = freeAddr(t)
	cfg.WorkDir = testCfg.WorkDir
	cfg.ExtensionPath = testCfg.ExtensionPath
	cfg.LogOutput = io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- walredo.Run(ctx, cfg) }()

	conn := dial(t, cfg.ListenAddr)
	waitServing(t, conn, done)
	applyThrough(t, client.New(conn))

	body := metricsBody(t, cfg.MetricsAddr)
	require.Contains(t, body, `strata_walredo_requests_total{result="ok"} 1`)
	require.Contains(t, body, `strata_walredo_live_children{tenant="00000000000000000000000000000000"} 1`)
	require.Contains(t, body, `grpc_server_handled_total{grpc_code="OK",grpc_method="Apply"`)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunRefusesMissingExtension(t *testing.T) {
	cfg := walredo.DefaultConfig()
	cfg.ExtensionPath = filepath.Join(t.TempDir(), "missing.so")
	cfg.WorkDir = t.TempDir()
	cfg.LogOutput = io.Discard
	err := walredo.Run(context.Background(), cfg)
	require.ErrorContains(t, err, "make build")
}

// TestE2EBinary builds cmd/walredo, runs it as a real process with a TOML
// config, rebuilds a page through the client and stops it with SIGTERM.
func TestE2EBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "walredo")
	build := exec.Command("go", "build", "-o", bin, "github.com/stratadb/strata/services/walredo/cmd/walredo")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	listen, metrics := freeAddr(t), freeAddr(t)
	conf := filepath.Join(dir, "walredo.toml")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
listen_addr = %q
metrics_addr = %q
workdir = %q
extension_path = %q
max_children = 2
max_children_per_tenant = 1
idle_timeout = "30s"
request_timeout = "20s"
log_format = "json"
`, listen, metrics, testCfg.WorkDir, testCfg.ExtensionPath)), 0o644))

	var logs strings.Builder
	cmd := exec.Command(bin, "--config", conf, "--log-level", "debug")
	cmd.Stdout = &logs
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("walredo output:\n%s", logs.String())
		}
	})

	conn := dial(t, listen)
	waitServing(t, conn, exited)
	applyThrough(t, client.New(conn))
	require.Contains(t, metricsBody(t, metrics), `strata_walredo_records_applied_total 5`)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "clean stop exits 0")
	case <-time.After(30 * time.Second):
		t.Fatal("walredo did not stop after SIGTERM")
	}
	require.Contains(t, logs.String(), `"msg":"stopped"`)
}
