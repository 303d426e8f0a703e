package pageserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/service"
)

// Default addresses (design §3).
const (
	DefaultListenAddr  = "127.0.0.1:51051"
	DefaultMetricsAddr = "127.0.0.1:9898"
)

// Config is the pageserver's configuration (TOML file, then flags).
type Config struct {
	service.Common
	// ListenAddr is the gRPC address (PageService, ManagementService,
	// IngestService).
	ListenAddr string `toml:"listen_addr"`
	// WorkDir holds tenants/<tenant_id>/timelines/<timeline_id>.
	WorkDir string `toml:"workdir"`

	// LogOutput receives logs; nil means stderr. Not settable from TOML.
	LogOutput io.Writer `toml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Common:     service.DefaultCommon(DefaultMetricsAddr),
		ListenAddr: DefaultListenAddr,
		WorkDir:    ".strata/pageserver",
	}
}

// RegisterFlags binds the flags with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Common.RegisterFlags(fs)
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "gRPC listen address")
	fs.StringVar(&c.WorkDir, "workdir", c.WorkDir, "directory holding tenants and timelines")
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
	if len(errs) > 0 {
		return fmt.Errorf("pageserver config: %w", errors.Join(errs...))
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
	if err := os.MkdirAll(cfg.WorkDir, 0o750); err != nil {
		return fmt.Errorf("pageserver: creating workdir: %w", err)
	}
	return service.GRPCService{
		Name:       "pageserver",
		Common:     cfg.Common,
		ListenAddr: cfg.ListenAddr,
		LogOutput:  out,
		Register: func(context.Context, *service.Kit, *grpcserver.Server) ([]service.Part, error) {
			// The storage engine and its gRPC adapters register here as
			// they are built (issues #5, #6).
			return nil, nil
		},
	}.Run(ctx)
}
