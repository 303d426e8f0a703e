// Package walredo is the WAL-redo service: it serves WalRedoService over
// gRPC from per-tenant pools of PostgreSQL 15 children (design D3). Run
// wires the template (services/walredo/process), the pool
// (services/walredo/pool) and the gRPC adapter (services/walredo/server)
// into a service.GRPCService; cmd/walredo only loads the config and calls
// Run. See docs/walredo.md for operation.
//
// Concurrency: Run blocks until ctx is cancelled; everything it starts
// (gRPC server, metrics endpoint, pool reaper, children) stops before it
// returns.
package walredo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/service"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/server"
)

// Default addresses (design §3).
const (
	DefaultListenAddr  = "127.0.0.1:51052"
	DefaultMetricsAddr = "127.0.0.1:9899"
	// DefaultExtensionPath is where `make build` leaves the extension,
	// relative to the repository root.
	DefaultExtensionPath = "services/walredo/pgext/build/strata_walredo.so"
)

// Config is the walredo service's configuration (TOML file, then flags).
type Config struct {
	service.Common
	// ListenAddr is the gRPC address (WalRedoService).
	ListenAddr string `toml:"listen_addr"`
	// WorkDir holds the extension copy, the template data dir and one data
	// dir per live child. When running as root every ancestor must be
	// traversable by RunAsUser.
	WorkDir string `toml:"workdir"`
	// PGBinDir holds postgres, initdb and pg_resetwal of PostgreSQL 15;
	// "" means $STRATA_PG_BIN or `pg_config --bindir`.
	PGBinDir string `toml:"pg_bin_dir"`
	// ExtensionPath is the built strata_walredo.so (`make build`). A .so
	// built from other sources is refused at the first child's handshake.
	ExtensionPath string `toml:"extension_path"`
	// MaxChildren caps the children of all tenants together.
	MaxChildren int `toml:"max_children"`
	// MaxChildrenPerTenant caps one tenant's children.
	MaxChildrenPerTenant int `toml:"max_children_per_tenant"`
	// IdleTimeout stops a child that served nothing for this long.
	IdleTimeout config.Duration `toml:"idle_timeout"`
	// RequestTimeout bounds one request to a child; past it the child is
	// killed and the request fails with DEADLINE_EXCEEDED.
	RequestTimeout config.Duration `toml:"request_timeout"`
	// WALLogHints must equal data_checksums || wal_log_hints of the source
	// clusters; requests declaring otherwise are refused.
	WALLogHints bool `toml:"wal_log_hints"`
	// RunAsUser is the OS user children run as when the service runs as
	// root (created if missing); "" means strata-walredo.
	RunAsUser string `toml:"run_as_user"`

	// LogOutput receives logs; nil means stderr. Not settable from TOML.
	LogOutput io.Writer `toml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	pd := pool.Default()
	return Config{
		Common:               service.DefaultCommon(DefaultMetricsAddr),
		ListenAddr:           DefaultListenAddr,
		WorkDir:              ".strata/walredo",
		ExtensionPath:        DefaultExtensionPath,
		MaxChildren:          pd.MaxChildren,
		MaxChildrenPerTenant: pd.MaxChildrenPerTenant,
		IdleTimeout:          config.Duration(pd.IdleTimeout),
		RequestTimeout:       config.Duration(60 * time.Second),
		RunAsUser:            process.DefaultUser,
	}
}

// RegisterFlags binds the flags with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Common.RegisterFlags(fs)
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "gRPC listen address")
	fs.StringVar(&c.WorkDir, "workdir", c.WorkDir, "directory holding the template and the children's data dirs")
	fs.StringVar(&c.PGBinDir, "pg-bin-dir", c.PGBinDir, "PostgreSQL 15 bin directory (empty: $STRATA_PG_BIN or pg_config --bindir)")
	fs.StringVar(&c.ExtensionPath, "extension-path", c.ExtensionPath, "the strata_walredo.so built by make build")
	fs.IntVar(&c.MaxChildren, "max-children", c.MaxChildren, "children of all tenants together")
	fs.IntVar(&c.MaxChildrenPerTenant, "max-children-per-tenant", c.MaxChildrenPerTenant, "children of one tenant")
	fs.Var(&c.IdleTimeout, "idle-timeout", "stop a child idle for this long")
	fs.Var(&c.RequestTimeout, "request-timeout", "kill a child whose request runs longer")
	fs.BoolVar(&c.WALLogHints, "wal-log-hints", c.WALLogHints, "source clusters have data checksums or wal_log_hints on")
	fs.StringVar(&c.RunAsUser, "run-as-user", c.RunAsUser, "OS user children run as when started by root")
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
	if c.ExtensionPath == "" {
		errs = append(errs, errors.New("extension_path: must not be empty (make build leaves it in "+DefaultExtensionPath+")"))
	}
	if c.MaxChildren < 1 {
		errs = append(errs, fmt.Errorf("max_children: %d, must be at least 1", c.MaxChildren))
	}
	if c.MaxChildrenPerTenant < 1 || c.MaxChildrenPerTenant > c.MaxChildren {
		errs = append(errs, fmt.Errorf("max_children_per_tenant: %d, must be in [1, max_children=%d]", c.MaxChildrenPerTenant, c.MaxChildren))
	}
	if c.IdleTimeout.Std() <= 0 {
		errs = append(errs, fmt.Errorf("idle_timeout: %s, must be positive", c.IdleTimeout))
	}
	if c.RequestTimeout.Std() <= 0 {
		errs = append(errs, fmt.Errorf("request_timeout: %s, must be positive", c.RequestTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("walredo config: %w", errors.Join(errs...))
	}
	return nil
}

// Run serves until ctx is cancelled. The template is prepared before the
// gRPC port opens (seconds on first use of a work dir, instant after), so a
// server that answers health checks can serve redo.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	out := cfg.LogOutput
	if out == nil {
		out = os.Stderr
	}
	if _, err := os.Stat(cfg.ExtensionPath); err != nil {
		return fmt.Errorf("walredo: extension_path: %w (run make build, or point extension_path at strata_walredo.so)", err)
	}
	workDir, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return fmt.Errorf("walredo: workdir: %w", err)
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return fmt.Errorf("walredo: creating workdir: %w", err)
	}
	var p *pool.Pool
	err = service.GRPCService{
		Name:       "walredo",
		Common:     cfg.Common,
		ListenAddr: cfg.ListenAddr,
		LogOutput:  out,
		Register: func(ctx context.Context, kit *service.Kit, srv *grpcserver.Server) ([]service.Part, error) {
			tmpl, err := process.PrepareTemplate(ctx, process.Config{
				BinDir:         cfg.PGBinDir,
				ExtensionPath:  cfg.ExtensionPath,
				WorkDir:        workDir,
				RunAsUser:      cfg.RunAsUser,
				RequestTimeout: cfg.RequestTimeout.Std(),
				Logger:         kit.Logger,
			})
			if err != nil {
				return nil, fmt.Errorf("walredo: %w", err)
			}
			p, err = pool.New(tmpl, pool.Config{
				MaxChildren:          cfg.MaxChildren,
				MaxChildrenPerTenant: cfg.MaxChildrenPerTenant,
				IdleTimeout:          cfg.IdleTimeout.Std(),
				WALLogHints:          cfg.WALLogHints,
				Logger:               kit.Logger,
				Registerer:           kit.Registry,
			})
			if err != nil {
				return nil, fmt.Errorf("walredo: %w", err)
			}
			redoServer := server.New(p, server.Options{WALLogHints: cfg.WALLogHints})
			redoServer.Register(srv)
			kit.Logger.Info("walredo pool ready", "template", tmpl.DataDir(), "max_children", cfg.MaxChildren,
				"max_children_per_tenant", cfg.MaxChildrenPerTenant, "wal_log_hints", cfg.WALLogHints)
			// Open ApplyStreams would hold the graceful stop for its whole
			// timeout: on shutdown they finish what runs and end.
			drain := func(ctx context.Context) error {
				<-ctx.Done()
				redoServer.Drain()
				return nil
			}
			return []service.Part{drain}, nil
		},
	}.Run(ctx)
	// The gRPC server has stopped (or never started): no call can reach the
	// pool any more.
	if p != nil {
		if cerr := p.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}
