package bridge

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/stratadb/strata/internal/service"
)

// Default addresses (design §3).
const (
	DefaultListenAddr  = "127.0.0.1:51053"
	DefaultMetricsAddr = "127.0.0.1:9900"
)

// Config is the bridge's configuration (TOML file, then flags).
type Config struct {
	service.Common
	// ListenAddr is the gRPC address of the bridge's own API.
	ListenAddr string `toml:"listen_addr"`
	// SpoolDir holds the durable WAL spool.
	SpoolDir string `toml:"spool_dir"`
	// PageserverAddr is the pageserver's gRPC address.
	PageserverAddr string `toml:"pageserver_addr"`

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
	// Replication, spool and the BridgeService register here (issue #7).
	return service.GRPCService{Name: "safekeeper-bridge", Common: cfg.Common, ListenAddr: cfg.ListenAddr, LogOutput: out}.Run(ctx)
}
