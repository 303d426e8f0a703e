package pgproxy

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/config"
)

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())

	bad := DefaultConfig()
	bad.ListenAddr = "nope"
	bad.MaxConnections = 0
	bad.PipelineDepth = -1
	bad.IdleTimeout = 0
	bad.TLSCertPath = "/x.pem"
	bad.AuthMode = "jwt"
	err := bad.Validate()
	require.Error(t, err)
	for _, key := range []string{"listen_addr", "max_connections", "pipeline_depth", "idle_timeout", "tls_cert_path", "auth_public_key_path"} {
		require.ErrorContains(t, err, key)
	}
	require.EqualError(t, Run(context.Background(), bad), err.Error(), "Run refuses an invalid config")
}

func TestConfigFlags(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("pgproxy", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--max-message-bytes", "64KiB", "--idle-timeout", "5m", "--pipeline-depth", "7"}))
	require.Equal(t, config.ByteSize(64<<10), cfg.MaxMessageBytes)
	require.Equal(t, "5m0s", cfg.IdleTimeout.String())
	require.Equal(t, 7, cfg.PipelineDepth)
	require.NoError(t, cfg.Validate())
	require.True(t, strings.Contains(cfg.String(), "pipeline_depth=7"))
}

func TestConfigTOML(t *testing.T) {
	path := t.TempDir() + "/pgproxy.toml"
	require.NoError(t, os.WriteFile(path, []byte(`
listen_addr = "127.0.0.1:6400"
pageserver_addr = "127.0.0.1:51051"
max_connections = 10
max_message_bytes = "64KiB"
idle_timeout = "1m"
pipeline_depth = 64
`), 0o600))
	cfg := DefaultConfig()
	require.NoError(t, config.Load("pgproxy", []string{"--config", path, "--max-connections", "20"}, &cfg))
	require.Equal(t, "127.0.0.1:6400", cfg.ListenAddr)
	require.Equal(t, 20, cfg.MaxConnections, "flags win over the file")
	require.Equal(t, config.ByteSize(64<<10), cfg.MaxMessageBytes)
	require.Equal(t, 64, cfg.PipelineDepth)
}
