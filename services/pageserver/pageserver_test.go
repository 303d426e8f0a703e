package pageserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stratadb/strata/internal/config"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func TestConfigFileFlagsAndValidation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pageserver.toml")
	require.NoError(t, os.WriteFile(path, []byte(`
listen_addr = "127.0.0.1:7000"
workdir = "/var/lib/strata"
log_level = "debug"
`), 0o600))

	cfg := DefaultConfig()
	require.NoError(t, config.Load("pageserver", []string{"--config", path, "--listen-addr", "127.0.0.1:7001"}, &cfg))
	require.Equal(t, "127.0.0.1:7001", cfg.ListenAddr, "flags win over the file")
	require.Equal(t, "/var/lib/strata", cfg.WorkDir)
	require.Equal(t, "debug", cfg.LogLevel, "common keys sit at the top level")

	require.NoError(t, os.WriteFile(path, []byte("listen_adr = \"x\"\n"), 0o600))
	cfg = DefaultConfig()
	err := config.Load("pageserver", []string{"--config", path}, &cfg)
	require.ErrorContains(t, err, "listen_adr")

	cfg = DefaultConfig()
	cfg.ListenAddr = "nope"
	cfg.AuthMode = "jwt"
	cfg.LogFormat = "xml"
	err = cfg.Validate()
	require.ErrorContains(t, err, "listen_addr")
	require.ErrorContains(t, err, "auth_public_key_path")
	require.ErrorContains(t, err, "log_format")
}

func TestRunServesHealthAndMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsAddr = freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()

	cc, err := grpc.NewClient(cfg.ListenAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(cc).Check(c, &healthpb.HealthCheckRequest{})
		return err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING
	}, 10*time.Second, 20*time.Millisecond)

	resp, err := http.Get("http://" + cfg.MetricsAddr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "go_goroutines")
	require.Contains(t, string(body), "strata_pageserver_timelines")
	require.Contains(t, string(body), "strata_pagecache_slots")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
}

func TestRunRefusesBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	cfg := testConfig(t)
	cfg.ListenAddr = l.Addr().String()
	err = Run(context.Background(), cfg)
	require.ErrorContains(t, err, "pageserver gRPC: listening on "+cfg.ListenAddr)
}

func TestConfigValidateNewFields(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"grpc walredo without address", func(c *Config) { c.WalredoMode = "grpc" }, []string{"walredo_addr"}},
		{"grpc walredo", func(c *Config) { c.WalredoMode = "grpc"; c.WalredoAddr = "127.0.0.1:51052" }, nil},
		{"everything wrong", func(c *Config) {
			c.PageCacheSize = 1000
			c.CheckpointDistance = 0
			c.CheckpointTimeout = 0
			c.WaitLSNTimeout = config.Duration(-time.Second)
			c.GetPagesMaxInflight = 0
			c.WalredoMode = "magic"
		}, []string{"page_cache_size", "checkpoint_distance", "checkpoint_timeout", "wait_lsn_timeout", "get_pages_max_inflight", "walredo_mode"}},
		{"ephemeral memory off", func(c *Config) { c.EphemeralMemoryLimit = 0 }, nil},
		{"ephemeral memory below one chunk", func(c *Config) { c.EphemeralMemoryLimit = 64 << 10 }, []string{"ephemeral_memory_limit: 64KiB, must be 0 (off) or at least 256KiB"}},
		{"pool caps", func(c *Config) { c.WalredoMaxChildren, c.WalredoMaxChildrenPerTenant = 1, 2 }, []string{"walredo_max_children_per_tenant"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
