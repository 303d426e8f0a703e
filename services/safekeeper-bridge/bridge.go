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
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/service"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/ingest"
	"github.com/stratadb/strata/services/safekeeper-bridge/replication"
	"github.com/stratadb/strata/services/safekeeper-bridge/spool"
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
	// SpoolDir holds the durable WAL spool, one subdirectory per timeline.
	SpoolDir string `toml:"spool_dir"`
	// PageserverAddr is the pageserver's gRPC address.
	PageserverAddr string `toml:"pageserver_addr"`
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
	}
}

// RegisterFlags binds the flags with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Common.RegisterFlags(fs)
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "gRPC listen address")
	fs.StringVar(&c.SpoolDir, "spool-dir", c.SpoolDir, "directory of the durable WAL spool")
	fs.StringVar(&c.PageserverAddr, "pageserver-addr", c.PageserverAddr, "pageserver gRPC address")
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
	seen := map[string]bool{}
	for i, tl := range c.Timelines {
		key := fmt.Sprintf("timeline[%d]", i)
		if !auth.IsTenantID(tl.TenantID) {
			errs = append(errs, fmt.Errorf("%s.tenant_id: %q is not 32 lowercase hex characters", key, tl.TenantID))
		}
		if !auth.IsTenantID(tl.TimelineID) {
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

// Run serves until ctx is cancelled.
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
		Register: func(ctx context.Context, kit *service.Kit, _ *grpcserver.Server) ([]service.Part, error) {
			// The BridgeService gRPC API (attach/detach/list/status) is
			// not implemented yet; status is in logs and metrics.
			b, err := New(cfg, kit.Logger, kit.Registry)
			if err != nil {
				return nil, err
			}
			return []service.Part{b.Run}, nil
		},
	}.Run(ctx)
}

// TimelineStatus is the state of one attached timeline.
type TimelineStatus struct {
	TenantID, TimelineID string
	// SpooledLSN is the spool's durable end; SpoolStartLSN its oldest byte.
	SpooledLSN, SpoolStartLSN lsn.LSN
	// ReceivedLSN is the end of WAL received from the primary;
	// PrimaryFlushLSN the primary's WAL end as it last said.
	ReceivedLSN, PrimaryFlushLSN lsn.LSN
	// SentLSN is the end of WAL sent to the pageserver; LastRecordLSN and
	// DiskConsistentLSN are the pageserver's acknowledgements.
	SentLSN, LastRecordLSN, DiskConsistentLSN lsn.LSN
	// ReportedFlushLSN is the flush position last confirmed to the slot.
	ReportedFlushLSN                      lsn.LSN
	PrimaryConnected, PageserverConnected bool
	// Err is the permanent error that stopped the timeline (a WAL gap, a
	// missing slot, ...), or nil while it runs.
	Err error
}

// Bridge streams every configured timeline.
type Bridge struct {
	cfg       Config
	log       *slog.Logger
	conn      *grpc.ClientConn
	timelines []*timeline
}

type timeline struct {
	cfg      TimelineConfig
	spool    *spool.Spool
	streamer *replication.Streamer
	sender   *ingest.Sender

	mu  sync.Mutex
	err error
}

// New opens the spools and builds the clients; Run starts streaming. The
// registry receives the bridge's metrics (nil: not registered).
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
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
	b := &Bridge{cfg: cfg, log: log, conn: conn}
	client := pb.NewIngestServiceClient(conn)
	for _, tc := range cfg.Timelines {
		tl, err := b.newTimeline(tc, client)
		if err != nil {
			b.close()
			return nil, err
		}
		b.timelines = append(b.timelines, tl)
		if reg != nil {
			if err := registerMetrics(reg, tl); err != nil {
				b.close()
				return nil, err
			}
		}
	}
	return b, nil
}

func (b *Bridge) newTimeline(tc TimelineConfig, client pb.IngestServiceClient) (*timeline, error) {
	log := b.log.With("tenant_id", tc.TenantID, "timeline_id", tc.TimelineID)
	connString := os.Getenv(tc.PrimaryConnEnv)
	if connString == "" {
		return nil, fmt.Errorf("safekeeper-bridge: timeline %s: environment variable %s (primary_conn_env) is empty", tc.TimelineID, tc.PrimaryConnEnv)
	}
	var start lsn.LSN
	if tc.StartLSN != "" {
		start = lsn.MustParse(tc.StartLSN) // validated
	}
	sp, err := spool.Open(filepath.Join(b.cfg.SpoolDir, tc.TenantID, tc.TimelineID), spool.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	tl := &timeline{cfg: tc, spool: sp}
	tl.sender = ingest.New(ingest.Config{TenantID: tc.TenantID, TimelineID: tc.TimelineID, Source: "safekeeper-bridge/" + tc.SlotName}, client, sp, log)
	tl.streamer, err = replication.New(replication.Config{ConnString: connString, SlotName: tc.SlotName, StartLSN: start}, sp, tl.sender.DiskConsistentLSN, log)
	if err != nil {
		_ = sp.Close()
		return nil, err
	}
	return tl, nil
}

func (b *Bridge) close() {
	for _, tl := range b.timelines {
		_ = tl.spool.Close()
	}
	_ = b.conn.Close()
}

// Run streams every timeline until ctx is cancelled, then closes the spools
// and returns nil. A timeline stopped by a permanent error (see
// TimelineStatus.Err) does not stop the others.
func (b *Bridge) Run(ctx context.Context) error {
	defer b.close()
	var wg sync.WaitGroup
	for _, tl := range b.timelines {
		wg.Go(func() {
			if err := tl.run(ctx); err != nil {
				tl.mu.Lock()
				tl.err = err
				tl.mu.Unlock()
				b.log.Error("timeline stopped", "tenant_id", tl.cfg.TenantID, "timeline_id", tl.cfg.TimelineID, "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}

// run runs the replication client and the ingest client of one timeline;
// a permanent error in either stops both.
func (tl *timeline) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return tl.streamer.Run(ctx) })
	g.Go(func() error { return tl.sender.Run(ctx) })
	return g.Wait()
}

func (tl *timeline) status() TimelineStatus {
	rs, is := tl.streamer.Stats(), tl.sender.Stats()
	tl.mu.Lock()
	err := tl.err
	tl.mu.Unlock()
	return TimelineStatus{
		TenantID: tl.cfg.TenantID, TimelineID: tl.cfg.TimelineID,
		SpooledLSN: tl.spool.FlushLSN(), SpoolStartLSN: tl.spool.StartLSN(),
		ReceivedLSN: rs.ReceivedLSN.Load(), PrimaryFlushLSN: rs.PrimaryFlushLSN.Load(),
		SentLSN: is.SentLSN.Load(), LastRecordLSN: is.LastRecordLSN.Load(), DiskConsistentLSN: is.DiskConsistentLSN.Load(),
		ReportedFlushLSN:    rs.ReportedFlushLSN.Load(),
		PrimaryConnected:    rs.Connected.Load(),
		PageserverConnected: is.Connected.Load(),
		Err:                 err,
	}
}

// Status returns the state of every timeline.
func (b *Bridge) Status() []TimelineStatus {
	out := make([]TimelineStatus, 0, len(b.timelines))
	for _, tl := range b.timelines {
		out = append(out, tl.status())
	}
	return out
}
