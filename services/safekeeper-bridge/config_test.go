package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/config"
)

func TestConfigTOMLAndValidate(t *testing.T) {
	cfg := DefaultConfig()
	err := config.Decode([]byte(`
spool_dir = "/var/lib/strata/spool"
pageserver_addr = "127.0.0.1:51051"

[[timeline]]
tenant_id = "0123456789abcdef0123456789abcdef"
timeline_id = "fedcba9876543210fedcba9876543210"
primary_conn_env = "PRIMARY_A"
slot_name = "strata_a"
start_lsn = "0/1000000"
`), "test.toml", &cfg)
	require.NoError(t, err)
	require.Len(t, cfg.Timelines, 1)
	require.Equal(t, "PRIMARY_A", cfg.Timelines[0].PrimaryConnEnv)
	require.NoError(t, cfg.Validate())

	// Group commit settings.
	c := cfg
	require.NoError(t, config.Decode([]byte("spool_sync_delay = \"1ms\"\nspool_max_sync_delay = \"5ms\"\nspool_sync_bytes = \"1MiB\"\n"), "sync.toml", &c))
	require.NoError(t, c.Validate())
	require.Equal(t, 5*time.Millisecond, c.SpoolMaxSyncDelay.Std())
	require.Equal(t, uint64(1<<20), c.SpoolSyncBytes.Bytes())
	for _, bad := range []string{"spool_sync_delay = \"0s\"", "spool_max_sync_delay = \"1ms\"\nspool_sync_delay = \"2ms\"", "spool_max_sync_delay = \"1m\"", "spool_sync_bytes = \"1KiB\""} {
		c := cfg
		require.NoError(t, config.Decode([]byte(bad), "bad.toml", &c))
		require.ErrorContains(t, c.Validate(), "spool_", bad)
	}

	tests := []struct {
		name string
		tl   TimelineConfig
		want []string
	}{
		{"everything wrong", TimelineConfig{TenantID: "x", TimelineID: "y", StartLSN: "zz"},
			[]string{"timeline[1].tenant_id", "timeline[1].timeline_id", "timeline[1].primary_conn_env", "timeline[1].slot_name", "timeline[1].start_lsn"}},
		{"duplicate", cfg.Timelines[0], []string{"listed twice"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.Timelines = append([]TimelineConfig{cfg.Timelines[0]}, tc.tl)
			err := c.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}
