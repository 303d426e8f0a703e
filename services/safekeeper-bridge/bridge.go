package bridge

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/stratadb/strata/internal/ids"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/service"
	"github.com/stratadb/strata/services/safekeeper-bridge/server"
	"github.com/stratadb/strata/services/safekeeper-bridge/timelines"
)

// Default addresses (design §3).
const (
	DefaultListenAddr  = "127.0.0.1:51053"
	DefaultMetricsAddr = "127.0.0.1:9900"
)

// Environment variables holding the safekeeperdata token the bridge
// presents to the pageserver (design D5: never on the command line).
const (
	TokenEnv     = "STRATA_BRIDGE_TOKEN"
	TokenFileEnv = "STRATA_BRIDGE_TOKEN_FILE"
)

// TimelineConfig attaches one pageserver timeline to one primary.
type TimelineConfig struct {
	TenantID   string `toml:"tenant_id"`
	TimelineID string `toml:"timeline_id"`
	// PrimaryConnEnv names the environment variable that holds the
	// primary's connection string (it may carry a password, so it is never
	// in the file or on the command line).
	PrimaryConnEnv string `toml:"primary_conn_env"`
	// SlotName is the permanent physical replication slot on the primary.
	SlotName string `toml:"slot_name"`
	// StartLSN, optional, is where an empty spool starts with a new slot
	// (the imported base backup's start LSN); default: the slot's
	// restart_lsn.
	StartLSN string `toml:"start_lsn"`
}

// Config is the bridge's configuration (TOML file, then flags).
type Config struct {
	service.Common
	// ListenAddr is the gRPC address of the bridge's own API.
	ListenAddr string `toml:"listen_addr"`
	// SpoolDir holds the durable WAL spool, one subdirectory per timeline
	// (<tenant>/<timeline>), and attachments.json, the timelines attached
	// through the BridgeService API (mode 0600: it holds their connection
	// strings).
	SpoolDir string `toml:"spool_dir"`
	// PageserverAddr is the pageserver's gRPC address.
	PageserverAddr string `toml:"pageserver_addr"`
	// SpoolSyncDelay: received WAL is fsynced (and then counts as spooled
	// and is sent to the pageserver) once the stream has been quiet this
	// long.
	SpoolSyncDelay config.Duration `toml:"spool_sync_delay"`
	// SpoolMaxSyncDelay bounds how long a received byte waits for its
	// fsync under a steady stream: the main part of the lag to the
	// pageserver under load.
	SpoolMaxSyncDelay config.Duration `toml:"spool_max_sync_delay"`
	// SpoolSyncBytes: a burst is fsynced every this many bytes.
	SpoolSyncBytes config.ByteSize `toml:"spool_sync_bytes"`
	// Timelines are the timelines to stream ([[timeline]] tables).
	Timelines []TimelineConfig `toml:"timeline"`

	// LogOutput receives logs; nil means stderr. Not settable from TOML.
	LogOutput io.Writer `toml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Common:         service.DefaultCommon(DefaultMetricsAddr),
		ListenAddr:     DefaultListenAddr,
		SpoolDir:       ".strata/safekeeper-bridge",
		PageserverAddr: "127.0.0.1:51051",

		SpoolSyncDelay:    config.Duration(2 * time.Millisecond),
		SpoolMaxSyncDelay: config.Duration(5 * time.Millisecond),
		SpoolSyncBytes:    config.ByteSize(4 << 20),
	}
}

// RegisterFlags binds the flags with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Common.RegisterFlags(fs)
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "gRPC listen address")
	fs.StringVar(&c.SpoolDir, "spool-dir", c.SpoolDir, "directory of the durable WAL spool")
	fs.StringVar(&c.PageserverAddr, "pageserver-addr", c.PageserverAddr, "pageserver gRPC address")
	fs.Var(&c.SpoolSyncDelay, "spool-sync-delay", "fsync received WAL after the stream has been quiet this long")
	fs.Var(&c.SpoolMaxSyncDelay, "spool-max-sync-delay", "longest wait of a received byte for its fsync")
	fs.Var(&c.SpoolSyncBytes, "spool-sync-bytes", "fsync a burst every this many bytes")
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	errs := c.Common.Validate()
	for key, addr := range map[string]string{"listen_addr": c.ListenAddr, "pageserver_addr": c.PageserverAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("spool_dir: must not be empty"))
	}
	if c.SpoolSyncDelay.Std() <= 0 || c.SpoolMaxSyncDelay.Std() < c.SpoolSyncDelay.Std() || c.SpoolMaxSyncDelay.Std() > 10*time.Second {
		errs = append(errs, fmt.Errorf("spool_sync_delay %s and spool_max_sync_delay %s: need 0 < spool_sync_delay <= spool_max_sync_delay <= 10s", c.SpoolSyncDelay, c.SpoolMaxSyncDelay))
	}
	if c.SpoolSyncBytes < 8<<10 || c.SpoolSyncBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("spool_sync_bytes: %s, must be between 8KiB and 1GiB", c.SpoolSyncBytes))
	}
	seen := map[string]bool{}
	for i, tl := range c.Timelines {
		key := fmt.Sprintf("timeline[%d]", i)
		if !auth.IsTenantID(tl.TenantID) {
			errs = append(errs, fmt.Errorf("%s.tenant_id: %q is not 32 lowercase hex characters", key, tl.TenantID))
		}
		if !isTimelineID(tl.TimelineID) {
			errs = append(errs, fmt.Errorf("%s.timeline_id: %q is not 32 lowercase hex characters", key, tl.TimelineID))
		}
		if seen[tl.TenantID+"/"+tl.TimelineID] {
			errs = append(errs, fmt.Errorf("%s: timeline %s/%s is listed twice", key, tl.TenantID, tl.TimelineID))
		}
		seen[tl.TenantID+"/"+tl.TimelineID] = true
		if tl.PrimaryConnEnv == "" {
			errs = append(errs, fmt.Errorf("%s.primary_conn_env: must name an environment variable", key))
		}
		if tl.SlotName == "" {
			errs = append(errs, fmt.Errorf("%s.slot_name: must not be empty", key))
		}
		if tl.StartLSN != "" {
			if _, err := lsn.Parse(tl.StartLSN); err != nil {
				errs = append(errs, fmt.Errorf("%s.start_lsn: %w", key, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("safekeeper-bridge config: %w", errors.Join(errs...))
	}
	return nil
}

// Run serves until ctx is cancelled: the BridgeService API (scope
// pageserverapi), health and reflection on ListenAddr, metrics on
// MetricsAddr, and every attached timeline.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	out := cfg.LogOutput
	if out == nil {
		out = os.Stderr
	}
	return service.GRPCService{
		Name: "safekeeper-bridge", Common: cfg.Common, ListenAddr: cfg.ListenAddr, LogOutput: out,
		Register: func(ctx context.Context, kit *service.Kit, srv *grpcserver.Server) ([]service.Part, error) {
			b, err := New(cfg, kit.Logger, kit.Registry)
			if err != nil {
				return nil, err
			}
			server.Register(srv, b.Manager)
			return []service.Part{b.Run}, nil
		},
	}.Run(ctx)
}

// TimelineStatus is the state of one attached timeline.
type TimelineStatus = timelines.Status

// Bridge is the set of attached timelines (timelines.Manager) with its
// connection to the pageserver.
type Bridge struct {
	*timelines.Manager
	conn *grpc.ClientConn
}

// New restores the attached timelines (config file and attachments.json),
// opens their spools and the pageserver client; Run starts streaming. The
// registry receives the bridge's metrics (nil: not registered).
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	configured := make([]timelines.Attachment, 0, len(cfg.Timelines))
	for _, tc := range cfg.Timelines {
		connString := os.Getenv(tc.PrimaryConnEnv)
		if connString == "" {
			return nil, fmt.Errorf("safekeeper-bridge: timeline %s: environment variable %s (primary_conn_env) is empty", tc.TimelineID, tc.PrimaryConnEnv)
		}
		a := timelines.Attachment{TenantID: tc.TenantID, TimelineID: tc.TimelineID, SlotName: tc.SlotName, PrimaryConnInfo: connString}
		if tc.StartLSN != "" {
			a.StartLSN = lsn.MustParse(tc.StartLSN) // validated
		}
		configured = append(configured, a)
	}
	token, err := auth.TokenFromEnv(TokenEnv, TokenFileEnv)
	if err != nil && !errors.Is(err, auth.ErrNoToken) {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// gRPC's default reconnect backoff grows to 120 s; a restarted
		// pageserver should get its WAL back within seconds.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}, MinConnectTimeout: 5 * time.Second}),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerToken(token, false)))
	} else {
		log.Warn("no pageserver token (" + TokenEnv + " / " + TokenFileEnv + "); works only with a pageserver in trust mode")
	}
	conn, err := grpc.NewClient(cfg.PageserverAddr, opts...)
	if err != nil {
		return nil, fmt.Errorf("safekeeper-bridge: pageserver client: %w", err)
	}
	m, err := timelines.New(timelines.Options{
		StateDir: cfg.SpoolDir, Pageserver: conn, Logger: log,
		SpoolSyncDelay: cfg.SpoolSyncDelay.Std(), SpoolMaxSyncDelay: cfg.SpoolMaxSyncDelay.Std(), SpoolSyncBytes: int(cfg.SpoolSyncBytes),
	}, configured)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	b := &Bridge{Manager: m, conn: conn}
	if reg != nil {
		if err := registerMetrics(reg, m); err != nil {
			m.Close()
			_ = conn.Close()
			return nil, err
		}
	}
	return b, nil
}

// Run streams every timeline until ctx is cancelled, then closes the spools
// and the pageserver connection and returns nil. A timeline stopped by a
// permanent error (see TimelineStatus.Err) does not stop the others.
func (b *Bridge) Run(ctx context.Context) error {
	defer func() { _ = b.conn.Close() }()
	return b.Manager.Run(ctx)
}

// Status returns the state of every timeline, sorted by tenant and
// timeline.
func (b *Bridge) Status() []TimelineStatus { return b.List() }

// isTimelineID reports whether s is a timeline id in text form (design D6).
func isTimelineID(s string) bool {
	_, err := ids.ParseTimelineID(s)
	return err == nil
}
