package pgproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/metrics"
	"github.com/stratadb/strata/internal/service"
	"github.com/stratadb/strata/services/pgproxy/session"
	"github.com/stratadb/strata/services/pgproxy/upstream"
	"github.com/stratadb/strata/services/pgproxy/wire"
)

// Default addresses (design §3).
const (
	DefaultListenAddr  = "127.0.0.1:64000"
	DefaultMetricsAddr = "127.0.0.1:9901"
)

// Environment variables holding the token pgproxy presents to the
// pageserver for clients that presented none (trust mode in front of a jwt
// pageserver). Tokens never come from flags or the TOML file (design D5).
const (
	TokenEnv     = "STRATA_PGPROXY_TOKEN"
	TokenFileEnv = "STRATA_PGPROXY_TOKEN_FILE"
)

// Config is pgproxy's configuration (TOML file, then flags).
type Config struct {
	service.Common
	// ListenAddr is the PostgreSQL-wire address.
	ListenAddr string `toml:"listen_addr"`
	// PageserverAddr is the pageserver's gRPC address.
	PageserverAddr string `toml:"pageserver_addr"`

	// MaxConnections bounds concurrent client connections.
	MaxConnections int `toml:"max_connections"`
	// MaxMessageBytes bounds one frontend message.
	MaxMessageBytes config.ByteSize `toml:"max_message_bytes"`
	// StartupTimeout bounds start-up and authentication.
	StartupTimeout config.Duration `toml:"startup_timeout"`
	// IdleTimeout closes a connection waiting this long for a query
	// (pagestream connections are exempt: computes keep them idle).
	IdleTimeout config.Duration `toml:"idle_timeout"`
	// ShutdownTimeout is how long commands in flight may run after a stop
	// signal before their connections are closed.
	ShutdownTimeout config.Duration `toml:"shutdown_timeout"`
	// PipelineDepth bounds pagestream requests in flight per connection.
	PipelineDepth int `toml:"pipeline_depth"`
	// MaxBatchBlocks bounds the GetPage requests folded into one GetPages
	// request.
	MaxBatchBlocks int `toml:"max_batch_blocks"`
	// TLSCertPath and TLSKeyPath enable TLS (both or neither); with TLS on,
	// plaintext clients are refused.
	TLSCertPath string `toml:"tls_cert_path"`
	TLSKeyPath  string `toml:"tls_key_path"`

	// LogOutput receives logs; nil means stderr. Not settable from TOML.
	LogOutput io.Writer `toml:"-"`
	// Ready, if set, receives the bound PostgreSQL-wire address once
	// listening (tests use port 0). Not settable from TOML.
	Ready func(pgAddr net.Addr) `toml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Common:          service.DefaultCommon(DefaultMetricsAddr),
		ListenAddr:      DefaultListenAddr,
		PageserverAddr:  "127.0.0.1:51051",
		MaxConnections:  wire.DefaultMaxConnections,
		MaxMessageBytes: config.ByteSize(wire.DefaultMaxMessageBytes),
		StartupTimeout:  config.Duration(wire.DefaultStartupTimeout),
		IdleTimeout:     config.Duration(wire.DefaultIdleTimeout),
		ShutdownTimeout: config.Duration(wire.DefaultShutdownTimeout),
		PipelineDepth:   session.DefaultMaxInFlight,
		MaxBatchBlocks:  session.DefaultMaxBatch,
	}
}

// RegisterFlags binds the flags with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Common.RegisterFlags(fs)
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "PostgreSQL-wire listen address")
	fs.StringVar(&c.PageserverAddr, "pageserver-addr", c.PageserverAddr, "pageserver gRPC address")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "maximum concurrent client connections")
	fs.Var(&c.MaxMessageBytes, "max-message-bytes", "maximum size of one client message")
	fs.Var(&c.StartupTimeout, "startup-timeout", "time allowed for start-up and authentication")
	fs.Var(&c.IdleTimeout, "idle-timeout", "close connections idle this long between queries")
	fs.Var(&c.ShutdownTimeout, "shutdown-timeout", "grace period for commands in flight at shutdown")
	fs.IntVar(&c.PipelineDepth, "pipeline-depth", c.PipelineDepth, "pagestream requests in flight per connection")
	fs.IntVar(&c.MaxBatchBlocks, "max-batch-blocks", c.MaxBatchBlocks, "GetPage requests folded into one GetPages request")
	fs.StringVar(&c.TLSCertPath, "tls-cert-path", c.TLSCertPath, "TLS certificate (PEM); enables TLS with --tls-key-path")
	fs.StringVar(&c.TLSKeyPath, "tls-key-path", c.TLSKeyPath, "TLS private key (PEM)")
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	errs := c.Common.Validate()
	for _, kv := range [][2]string{{"listen_addr", c.ListenAddr}, {"pageserver_addr", c.PageserverAddr}} {
		if _, _, err := net.SplitHostPort(kv[1]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", kv[0], err))
		}
	}
	positive := func(key string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %d", key, v))
		}
	}
	positive("max_connections", int64(c.MaxConnections))
	positive("max_message_bytes", int64(c.MaxMessageBytes))
	positive("startup_timeout", int64(c.StartupTimeout))
	positive("idle_timeout", int64(c.IdleTimeout))
	positive("shutdown_timeout", int64(c.ShutdownTimeout))
	positive("pipeline_depth", int64(c.PipelineDepth))
	positive("max_batch_blocks", int64(c.MaxBatchBlocks))
	if c.MaxMessageBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("max_message_bytes: %s is more than 1GiB", c.MaxMessageBytes))
	}
	if (c.TLSCertPath == "") != (c.TLSKeyPath == "") {
		errs = append(errs, errors.New("tls_cert_path and tls_key_path: set both or neither"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("pgproxy config: %w", errors.Join(errs...))
	}
	return nil
}

// String shows the configuration for the start-up log (no secrets: tokens
// and keys are only named by path).
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen_addr=%s pageserver_addr=%s metrics_addr=%s auth_mode=%s auth_public_key_path=%q ",
		c.ListenAddr, c.PageserverAddr, c.MetricsAddr, c.AuthMode, c.AuthPublicKeyPath)
	fmt.Fprintf(&b, "max_connections=%d max_message_bytes=%s startup_timeout=%s idle_timeout=%s shutdown_timeout=%s pipeline_depth=%d max_batch_blocks=%d tls=%t",
		c.MaxConnections, c.MaxMessageBytes, c.StartupTimeout, c.IdleTimeout, c.ShutdownTimeout, c.PipelineDepth, c.MaxBatchBlocks, c.TLSCertPath != "")
	return b.String()
}

// Run serves until ctx is cancelled: the PostgreSQL-wire server, and the
// metrics endpoint, under one errgroup. It returns nil after a clean stop.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	logOut := cfg.LogOutput
	if logOut == nil {
		logOut = os.Stderr
	}
	kit, err := service.Setup("pgproxy", cfg.Common, logOut, metrics.NewRegistry)
	if err != nil {
		return err
	}
	var verifier *auth.Verifier
	if kit.Auth.Mode() == auth.ModeJWT {
		keys, err := auth.LoadPublicKeys(cfg.AuthPublicKeyPath)
		if err != nil {
			return err
		}
		if verifier, err = auth.NewVerifier(keys); err != nil {
			return err
		}
	}
	serviceToken, err := auth.TokenFromEnv(TokenEnv, TokenFileEnv)
	if err != nil && !errors.Is(err, auth.ErrNoToken) {
		return err
	}
	var tlsConfig *tls.Config
	if cfg.TLSCertPath != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertPath, cfg.TLSKeyPath)
		if err != nil {
			return fmt.Errorf("pgproxy: loading TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	wireMetrics, err := wire.NewMetrics(kit.Registry)
	if err != nil {
		return err
	}
	sessionMetrics, err := session.NewMetrics(kit.Registry)
	if err != nil {
		return err
	}
	up, err := upstream.Dial(cfg.PageserverAddr)
	if err != nil {
		return err
	}
	defer up.Close()
	handler, err := session.New(session.Options{
		Page: up.Page, Management: up.Management, ServiceToken: serviceToken, Metrics: sessionMetrics,
		MaxInFlight: cfg.PipelineDepth, MaxBatch: cfg.MaxBatchBlocks,
	})
	if err != nil {
		return err
	}
	srv, err := wire.NewServer(wire.Options{
		Mode: kit.Auth.Mode(), Verifier: verifier, Handler: handler, Logger: kit.Logger, Metrics: wireMetrics, TLS: tlsConfig,
		Limits: wire.Limits{
			MaxConnections:  cfg.MaxConnections,
			MaxMessageBytes: int(cfg.MaxMessageBytes),
			StartupTimeout:  cfg.StartupTimeout.Std(),
			IdleTimeout:     cfg.IdleTimeout.Std(),
			ShutdownTimeout: cfg.ShutdownTimeout.Std(),
			WriteTimeout:    30 * time.Second,
		},
	})
	if err != nil {
		return err
	}

	pgLis, err := service.Listen("pgproxy PostgreSQL-wire", cfg.ListenAddr)
	if err != nil {
		return err
	}
	var metricsLis net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLis, err = service.Listen("pgproxy metrics", cfg.MetricsAddr); err != nil {
			_ = pgLis.Close()
			return err
		}
	}
	kit.Logger.Info("starting", "config", cfg.String(), "pg_addr", pgLis.Addr().String())
	if cfg.Ready != nil {
		cfg.Ready(pgLis.Addr())
	}
	err = service.RunParts(ctx,
		func(ctx context.Context) error { return srv.Serve(ctx, pgLis) },
		service.MetricsPart(kit, metricsLis),
	)
	kit.Logger.Info("stopped", "err", err)
	return err
}
