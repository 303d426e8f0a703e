package pageserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/service"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/server"
	"github.com/stratadb/strata/services/pageserver/tenantmgr"
	"github.com/stratadb/strata/services/pageserver/timeline"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/process"
)

// Default addresses (design §3).
const (
	DefaultListenAddr  = "127.0.0.1:51051"
	DefaultMetricsAddr = "127.0.0.1:9898"
	// DefaultEphemeralMemoryLimit is the default ephemeral_memory_limit:
	// one default checkpoint_distance of open-layer data.
	DefaultEphemeralMemoryLimit = 256 << 20
	// DefaultWalredoExtensionPath is where `make build` leaves the
	// extension, relative to the repository root.
	DefaultWalredoExtensionPath = "services/walredo/pgext/build/strata_walredo.so"
)

// Environment variables holding the walredo service's token (grpc mode).
const (
	WalredoTokenEnv     = "STRATA_WALREDO_TOKEN"
	WalredoTokenFileEnv = "STRATA_WALREDO_TOKEN_FILE"
)

// Config is the pageserver's configuration (TOML file, then flags).
type Config struct {
	service.Common
	// ListenAddr is the gRPC address (PageService, ManagementService,
	// IngestService).
	ListenAddr string `toml:"listen_addr"`
	// WorkDir holds tenants/<tenant_id>/timelines/<timeline_id>.
	WorkDir string `toml:"workdir"`

	// PageCacheSize is the process-wide page cache (8 KB slots).
	PageCacheSize config.ByteSize `toml:"page_cache_size"`
	// EphemeralMemoryLimit is the process-wide memory in which the open
	// layers' ephemeral files keep their bytes in 256 KiB chunks; beyond
	// it they are written to the files (0: always written).
	EphemeralMemoryLimit config.ByteSize `toml:"ephemeral_memory_limit"`
	// CheckpointDistance is the WAL a timeline's open layer may cover
	// before it is frozen and flushed to a layer file.
	CheckpointDistance config.ByteSize `toml:"checkpoint_distance"`
	// CheckpointTimeout flushes a quiet open layer after this long.
	CheckpointTimeout config.Duration `toml:"checkpoint_timeout"`
	// WaitLSNTimeout bounds how long a read waits for WAL to arrive.
	WaitLSNTimeout config.Duration `toml:"wait_lsn_timeout"`
	// ImageCreationThreshold: once this many delta layers lie above a
	// timeline's newest image layer, the background compaction images the
	// whole keyspace at disk_consistent_lsn (0 turns it off; the Compact
	// call still works).
	ImageCreationThreshold int `toml:"image_creation_threshold"`
	// ImageLayerTargetSize splits an image pass into files of this size.
	ImageLayerTargetSize config.ByteSize `toml:"image_layer_target_size"`
	// ImageWorkers is how many pages compaction reconstructs concurrently.
	ImageWorkers int `toml:"image_workers"`
	// GCHorizon is the WAL history below last_record_lsn that GC keeps
	// (RunGc without a horizon, and the background GC).
	GCHorizon config.ByteSize `toml:"gc_horizon"`
	// GCPeriod runs GC on every timeline this often; 0 (the default) never
	// removes history on its own: every LSN stays readable until RunGc.
	GCPeriod config.Duration `toml:"gc_period"`
	// GetPagesMaxInflight bounds the pipelined requests of one GetPages
	// stream.
	GetPagesMaxInflight int `toml:"get_pages_max_inflight"`

	// WalredoMode is "process" (a pool of PostgreSQL children in this
	// process) or "grpc" (a walredo service at WalredoAddr; its token comes
	// from STRATA_WALREDO_TOKEN or STRATA_WALREDO_TOKEN_FILE).
	WalredoMode string `toml:"walredo_mode"`
	WalredoAddr string `toml:"walredo_addr"`
	// PGBinDir holds PostgreSQL 15's postgres and initdb (walredo children
	// and timeline bootstrap); "" means $STRATA_PG_BIN or pg_config.
	PGBinDir string `toml:"pg_bin_dir"`
	// WalredoExtensionPath is strata_walredo.so (make build).
	WalredoExtensionPath string `toml:"walredo_extension_path"`
	// WalredoWorkDir holds the walredo template and the children's data
	// dirs; "" means <workdir>/walredo.
	WalredoWorkDir string `toml:"walredo_workdir"`
	// WalredoMaxChildren and WalredoMaxChildrenPerTenant cap the pool.
	WalredoMaxChildren          int `toml:"walredo_max_children"`
	WalredoMaxChildrenPerTenant int `toml:"walredo_max_children_per_tenant"`
	// WalredoRequestTimeout bounds one redo request.
	WalredoRequestTimeout config.Duration `toml:"walredo_request_timeout"`
	// WALLogHints must equal data_checksums || wal_log_hints of the
	// source clusters.
	WALLogHints bool `toml:"wal_log_hints"`
	// RunAsUser is the OS user walredo children and initdb run as when
	// the pageserver runs as root.
	RunAsUser string `toml:"run_as_user"`

	// LogOutput receives logs; nil means stderr. Not settable from TOML.
	LogOutput io.Writer `toml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	tl := timeline.DefaultConfig()
	pd := pool.Default()
	return Config{
		Common:     service.DefaultCommon(DefaultMetricsAddr),
		ListenAddr: DefaultListenAddr,
		WorkDir:    ".strata/pageserver",

		PageCacheSize:        config.ByteSize(pagecache.DefaultConfig().SizeBytes),
		EphemeralMemoryLimit: config.ByteSize(DefaultEphemeralMemoryLimit),
		CheckpointDistance:   config.ByteSize(tl.CheckpointDistance),
		CheckpointTimeout:    config.Duration(tl.CheckpointTimeout),
		WaitLSNTimeout:       config.Duration(tl.WaitLSNTimeout),
		GetPagesMaxInflight:  server.DefaultMaxInflightGetPages,

		ImageCreationThreshold: tl.ImageCreationThreshold,
		ImageLayerTargetSize:   config.ByteSize(tl.ImageLayerTargetSize),
		ImageWorkers:           tl.ImageWorkers,
		GCHorizon:              config.ByteSize(64 << 20),

		WalredoMode:                 tenantmgr.RedoModeProcess,
		WalredoExtensionPath:        DefaultWalredoExtensionPath,
		WalredoMaxChildren:          pd.MaxChildren,
		WalredoMaxChildrenPerTenant: pd.MaxChildrenPerTenant,
		WalredoRequestTimeout:       config.Duration(60 * time.Second),
		RunAsUser:                   process.DefaultUser,
	}
}

// RegisterFlags binds the flags with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Common.RegisterFlags(fs)
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "gRPC listen address")
	fs.StringVar(&c.WorkDir, "workdir", c.WorkDir, "directory holding tenants and timelines")
	fs.Var(&c.PageCacheSize, "page-cache-size", "process-wide page cache size")
	fs.Var(&c.EphemeralMemoryLimit, "ephemeral-memory-limit", "memory in which open layers keep their data before writing it to ephemeral files (0: always write)")
	fs.Var(&c.CheckpointDistance, "checkpoint-distance", "WAL bytes an open layer covers before it is flushed")
	fs.Var(&c.CheckpointTimeout, "checkpoint-timeout", "flush a quiet open layer after this long")
	fs.Var(&c.WaitLSNTimeout, "wait-lsn-timeout", "how long a read waits for WAL to arrive")
	fs.IntVar(&c.ImageCreationThreshold, "image-creation-threshold", c.ImageCreationThreshold, "delta layers above the newest image that trigger background image creation (0: off)")
	fs.Var(&c.ImageLayerTargetSize, "image-layer-target-size", "size of one image layer file written by compaction")
	fs.IntVar(&c.ImageWorkers, "image-workers", c.ImageWorkers, "pages reconstructed concurrently by compaction")
	fs.Var(&c.GCHorizon, "gc-horizon", "WAL history below last_record_lsn that GC keeps")
	fs.Var(&c.GCPeriod, "gc-period", "run GC on every timeline this often (0: never in the background)")
	fs.IntVar(&c.GetPagesMaxInflight, "get-pages-max-inflight", c.GetPagesMaxInflight, "pipelined requests per GetPages stream")
	fs.StringVar(&c.WalredoMode, "walredo-mode", c.WalredoMode, "walredo: process (in-process pool) or grpc (walredo service)")
	fs.StringVar(&c.WalredoAddr, "walredo-addr", c.WalredoAddr, "walredo service address (walredo-mode grpc)")
	fs.StringVar(&c.PGBinDir, "pg-bin-dir", c.PGBinDir, "PostgreSQL 15 bin directory (empty: $STRATA_PG_BIN or pg_config --bindir)")
	fs.StringVar(&c.WalredoExtensionPath, "walredo-extension-path", c.WalredoExtensionPath, "strata_walredo.so built by make build")
	fs.StringVar(&c.WalredoWorkDir, "walredo-workdir", c.WalredoWorkDir, "walredo template and children directory (empty: <workdir>/walredo)")
	fs.IntVar(&c.WalredoMaxChildren, "walredo-max-children", c.WalredoMaxChildren, "walredo children of all tenants together")
	fs.IntVar(&c.WalredoMaxChildrenPerTenant, "walredo-max-children-per-tenant", c.WalredoMaxChildrenPerTenant, "walredo children of one tenant")
	fs.Var(&c.WalredoRequestTimeout, "walredo-request-timeout", "bound of one redo request")
	fs.BoolVar(&c.WALLogHints, "wal-log-hints", c.WALLogHints, "source clusters have data checksums or wal_log_hints on")
	fs.StringVar(&c.RunAsUser, "run-as-user", c.RunAsUser, "OS user walredo children and initdb run as when started by root")
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	errs := c.Common.Validate()
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("listen_addr: %w", err))
	}
	if c.WorkDir == "" {
		errs = append(errs, errors.New("workdir: must not be empty"))
	}
	if err := (pagecache.Config{SizeBytes: int64(c.PageCacheSize)}).Validate(); err != nil || c.PageCacheSize > config.ByteSize(math.MaxInt64) {
		errs = append(errs, fmt.Errorf("page_cache_size: %s must be a multiple of 8KiB and at least %s", c.PageCacheSize, config.ByteSize(pagecache.MinSizeBytes)))
	}
	if c.EphemeralMemoryLimit != 0 && c.EphemeralMemoryLimit < config.ByteSize(ephemeral.ChunkSize) || c.EphemeralMemoryLimit > config.ByteSize(math.MaxInt64) {
		errs = append(errs, fmt.Errorf("ephemeral_memory_limit: %s, must be 0 (off) or at least %s", c.EphemeralMemoryLimit, config.ByteSize(ephemeral.ChunkSize)))
	}
	if c.CheckpointDistance < config.ByteSize(pgtypes.BLCKSZ) {
		errs = append(errs, fmt.Errorf("checkpoint_distance: %s, must be at least 8KiB", c.CheckpointDistance))
	}
	if c.ImageCreationThreshold < 0 {
		errs = append(errs, fmt.Errorf("image_creation_threshold: %d, must be 0 (off) or more", c.ImageCreationThreshold))
	}
	if c.ImageLayerTargetSize < config.ByteSize(pgtypes.BLCKSZ) {
		errs = append(errs, fmt.Errorf("image_layer_target_size: %s, must be at least 8KiB", c.ImageLayerTargetSize))
	}
	if c.GCPeriod < 0 {
		errs = append(errs, fmt.Errorf("gc_period: %s, must be 0 (off) or positive", c.GCPeriod))
	}
	if c.ImageWorkers < 1 || c.ImageWorkers > 64 {
		errs = append(errs, fmt.Errorf("image_workers: %d, must be between 1 and 64", c.ImageWorkers))
	}
	for key, d := range map[string]config.Duration{"checkpoint_timeout": c.CheckpointTimeout, "wait_lsn_timeout": c.WaitLSNTimeout, "walredo_request_timeout": c.WalredoRequestTimeout} {
		if d.Std() <= 0 {
			errs = append(errs, fmt.Errorf("%s: %s, must be positive", key, d))
		}
	}
	if c.GetPagesMaxInflight < 1 {
		errs = append(errs, fmt.Errorf("get_pages_max_inflight: %d, must be at least 1", c.GetPagesMaxInflight))
	}
	switch c.WalredoMode {
	case tenantmgr.RedoModeProcess:
		if c.WalredoExtensionPath == "" {
			errs = append(errs, errors.New("walredo_extension_path: must not be empty with walredo_mode process (make build leaves it in "+DefaultWalredoExtensionPath+")"))
		}
		if c.WalredoMaxChildren < 1 {
			errs = append(errs, fmt.Errorf("walredo_max_children: %d, must be at least 1", c.WalredoMaxChildren))
		}
		if c.WalredoMaxChildrenPerTenant < 1 || c.WalredoMaxChildrenPerTenant > c.WalredoMaxChildren {
			errs = append(errs, fmt.Errorf("walredo_max_children_per_tenant: %d, must be in [1, walredo_max_children=%d]", c.WalredoMaxChildrenPerTenant, c.WalredoMaxChildren))
		}
	case tenantmgr.RedoModeGRPC:
		if _, _, err := net.SplitHostPort(c.WalredoAddr); err != nil {
			errs = append(errs, fmt.Errorf("walredo_addr: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("walredo_mode: %q is not process or grpc", c.WalredoMode))
	}
	if len(errs) > 0 {
		return fmt.Errorf("pageserver config: %w", errors.Join(errs...))
	}
	return nil
}

// Run serves until ctx is cancelled: it opens every tenant and timeline,
// builds the page cache and the walredo Redoer, registers
// ManagementService, PageService and IngestService, and runs the
// timelines' flushers beside the gRPC server. After the server stopped it
// closes the timelines, then the Redoer.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	out := cfg.LogOutput
	if out == nil {
		out = os.Stderr
	}
	workDir, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return fmt.Errorf("pageserver: workdir: %w", err)
	}
	if err := os.MkdirAll(workDir, 0o750); err != nil {
		return fmt.Errorf("pageserver: creating workdir: %w", err)
	}
	var (
		mgr       *tenantmgr.Manager
		closeRedo func() error
	)
	err = service.GRPCService{
		Name:       "pageserver",
		Common:     cfg.Common,
		ListenAddr: cfg.ListenAddr,
		LogOutput:  out,
		Register: func(ctx context.Context, kit *service.Kit, srv *grpcserver.Server) ([]service.Part, error) {
			redoCfg, err := cfg.redoConfig(workDir)
			if err != nil {
				return nil, err
			}
			r, closeFn, err := tenantmgr.NewRedoer(ctx, redoCfg, kit.Logger, kit.Registry)
			if err != nil {
				return nil, fmt.Errorf("pageserver: %w", err)
			}
			closeRedo = closeFn
			cache, err := pagecache.New(pagecache.Config{SizeBytes: int64(cfg.PageCacheSize)}, kit.Registry)
			if err != nil {
				return nil, fmt.Errorf("pageserver: %w", err)
			}
			ephemeralMem := ephemeral.NewMemory(cfg.EphemeralMemoryLimit.Bytes())
			if err := ephemeralMem.Register(kit.Registry); err != nil {
				return nil, fmt.Errorf("pageserver: %w", err)
			}
			mgr, err = tenantmgr.Open(ctx, tenantmgr.Config{
				WorkDir: workDir,
				Timeline: timeline.Config{
					CheckpointDistance:     cfg.CheckpointDistance.Bytes(),
					ImageCreationThreshold: cfg.ImageCreationThreshold,
					ImageLayerTargetSize:   cfg.ImageLayerTargetSize.Bytes(),
					ImageWorkers:           cfg.ImageWorkers,
					CheckpointTimeout:      cfg.CheckpointTimeout.Std(),
					WaitLSNTimeout:         cfg.WaitLSNTimeout.Std(),
				},
				Cache: cache, EphemeralMemory: ephemeralMem, Redo: r, Logger: kit.Logger,
				GCHorizon: cfg.GCHorizon.Bytes(), GCPeriod: cfg.GCPeriod.Std(),
			})
			if err != nil {
				return nil, fmt.Errorf("pageserver: %w", err)
			}
			if err := kit.Registry.Register(tenantmgr.NewCollector(mgr)); err != nil {
				return nil, fmt.Errorf("pageserver: registering metrics: %w", err)
			}
			pgBin := cfg.PGBinDir
			if pgBin == "" {
				pgBin, _ = process.FindBinDir(ctx) // bootstrap reports a missing one
			}
			server.New(server.Options{
				Manager: mgr, Logger: kit.Logger, MaxInflightGetPages: cfg.GetPagesMaxInflight,
				PGBinDir: pgBin, ScratchDir: workDir, BootstrapRunAs: cfg.RunAsUser,
				Registerer: kit.Registry,
			}).Register(srv)
			kit.Logger.Info("pageserver ready", "workdir", workDir, "tenants", len(mgr.ListTenants()),
				"page_cache_size", cfg.PageCacheSize, "walredo_mode", cfg.WalredoMode)
			return []service.Part{mgr.Run}, nil
		},
	}.Run(ctx)
	// The gRPC server has stopped: no call reaches the timelines any more.
	if mgr != nil {
		if cerr := mgr.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if closeRedo != nil {
		if cerr := closeRedo(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// redoConfig builds the walredo settings; the token is read from the
// environment, never from the file or flags (design D5).
func (c *Config) redoConfig(workDir string) (tenantmgr.RedoConfig, error) {
	rc := tenantmgr.RedoConfig{
		Mode: c.WalredoMode, Addr: c.WalredoAddr,
		PGBinDir: c.PGBinDir, ExtensionPath: c.WalredoExtensionPath,
		WorkDir: c.WalredoWorkDir, RunAsUser: c.RunAsUser,
		MaxChildren: c.WalredoMaxChildren, MaxChildrenPerTenant: c.WalredoMaxChildrenPerTenant,
		RequestTimeout: c.WalredoRequestTimeout.Std(), WALLogHints: c.WALLogHints,
	}
	if rc.WorkDir == "" {
		rc.WorkDir = filepath.Join(workDir, "walredo")
	}
	if c.WalredoMode == tenantmgr.RedoModeGRPC {
		token, err := auth.TokenFromEnv(WalredoTokenEnv, WalredoTokenFileEnv)
		if err != nil && !errors.Is(err, auth.ErrNoToken) {
			return rc, fmt.Errorf("pageserver: walredo token: %w", err)
		}
		rc.Token = token
	}
	return rc, nil
}
