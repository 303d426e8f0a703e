package service

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/logging"
)

// Common is the config section every service has. Its TOML keys sit at the
// top level of each service's file.
type Common struct {
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `toml:"log_format"`
	// MetricsAddr is where /metrics and /healthz are served ("" disables).
	MetricsAddr string `toml:"metrics_addr"`
	// AuthMode is "trust" (no tokens; development only) or "jwt".
	AuthMode string `toml:"auth_mode"`
	// AuthPublicKeyPath is a PEM file or a directory of PEM files with the
	// Ed25519 public keys that may sign tokens (required in jwt mode).
	AuthPublicKeyPath string `toml:"auth_public_key_path"`
}

// DefaultCommon returns the defaults with the given metrics address.
func DefaultCommon(metricsAddr string) Common {
	return Common{LogLevel: "info", LogFormat: "text", MetricsAddr: metricsAddr, AuthMode: string(auth.ModeTrust)}
}

// RegisterFlags binds the common flags with the current values as defaults.
func (c *Common) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "address for /metrics and /healthz (empty disables)")
	fs.StringVar(&c.AuthMode, "auth-mode", c.AuthMode, "authentication: trust (development only) or jwt")
	fs.StringVar(&c.AuthPublicKeyPath, "auth-public-key-path", c.AuthPublicKeyPath, "Ed25519 public key PEM file or directory (jwt mode)")
}

// Validate reports every problem of the section; each problem names its key.
func (c *Common) Validate() []error {
	var errs []error
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
	if c.LogFormat != logging.FormatText && c.LogFormat != logging.FormatJSON {
		errs = append(errs, fmt.Errorf("log_format: %q is not text or json", c.LogFormat))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics_addr: %w", err))
		}
	}
	mode, err := auth.ParseMode(c.AuthMode)
	if err != nil {
		errs = append(errs, fmt.Errorf("auth_mode: %w", err))
	} else if mode == auth.ModeJWT && c.AuthPublicKeyPath == "" {
		errs = append(errs, fmt.Errorf("auth_public_key_path: required when auth_mode is jwt"))
	}
	return errs
}

// Kit is what Setup builds from Common.
type Kit struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Auth     *auth.Authenticator
}

// Setup builds the logger (writing to logOut), a fresh registry and the
// authenticator (loading public keys in jwt mode).
func Setup(name string, c Common, logOut io.Writer, newRegistry func() *prometheus.Registry) (*Kit, error) {
	logger, err := logging.New(logOut, name, c.LogLevel, c.LogFormat)
	if err != nil {
		return nil, err
	}
	mode, err := auth.ParseMode(c.AuthMode)
	if err != nil {
		return nil, err
	}
	var verifier *auth.Verifier
	if mode == auth.ModeJWT {
		keys, err := auth.LoadPublicKeys(c.AuthPublicKeyPath)
		if err != nil {
			return nil, err
		}
		verifier, err = auth.NewVerifier(keys)
		if err != nil {
			return nil, err
		}
	}
	a, err := auth.NewAuthenticator(mode, verifier)
	if err != nil {
		return nil, err
	}
	if mode == auth.ModeTrust {
		logger.Warn("authentication is off (auth_mode = trust): every caller has full access; use jwt outside development")
	}
	return &Kit{Logger: logger, Registry: newRegistry(), Auth: a}, nil
}
