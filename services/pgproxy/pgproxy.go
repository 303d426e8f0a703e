package pgproxy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/stratadb/strata/internal/service"
)

// Default addresses (design §3).
const (
	DefaultListenAddr  = "127.0.0.1:64000"
	DefaultMetricsAddr = "127.0.0.1:9901"
)

// ErrNotBuilt is returned by Run until the wire server exists (issue #8).
var ErrNotBuilt = errors.New("pgproxy: the PostgreSQL-wire server is not built yet (issue #8)")

// Config is pgproxy's configuration (TOML file, then flags).
type Config struct {
	service.Common
	// ListenAddr is the PostgreSQL-wire address.
	ListenAddr string `toml:"listen_addr"`
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
		PageserverAddr: "127.0.0.1:51051",
	}
}

// RegisterFlags binds the flags with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Common.RegisterFlags(fs)
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "PostgreSQL-wire listen address")
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
	if len(errs) > 0 {
		return fmt.Errorf("pgproxy config: %w", errors.Join(errs...))
	}
	return nil
}

// Run serves until ctx is cancelled. Until issue #8 lands it validates the
// configuration and returns ErrNotBuilt.
func Run(_ context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return ErrNotBuilt
}
