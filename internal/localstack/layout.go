package localstack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/stratadb/strata/internal/auth"
)

// FormatVersion is the version of the directory layout Init writes.
const FormatVersion = 1

// DefaultDir is the stack directory when none is given.
const DefaultDir = ".strata"

// Health is how a service's readiness is probed.
type Health int

const (
	// HealthGRPC: the standard gRPC health service reports SERVING.
	HealthGRPC Health = iota
	// HealthTCP: the listen address accepts connections (pgproxy speaks
	// the PostgreSQL wire protocol, not gRPC).
	HealthTCP
)

// Service describes one of the stack's services. The table is static
// knowledge about the binaries; addresses come from each config file.
type Service struct {
	// Name is the binary name and the name used on the command line.
	Name string
	// Health is how Start and Status probe it.
	Health Health
	// TokenFileEnv names the environment variable through which the
	// service reads the file holding its token, and TokenEnv the variable
	// that must then be unset (auth.TokenFromEnv refuses both); empty when
	// the service presents no token.
	TokenEnv, TokenFileEnv string
	// TokenScope is the scope of the token it gets.
	TokenScope auth.Scope
}

// Services are the stack's services in start order: walredo and the
// pageserver first, then the services that call the pageserver.
var Services = []Service{
	{Name: "walredo", Health: HealthGRPC},
	// The pageserver calls walredo (walredo_mode grpc), which wants scope
	// pageserverapi.
	{Name: "pageserver", Health: HealthGRPC, TokenEnv: "STRATA_WALREDO_TOKEN", TokenFileEnv: "STRATA_WALREDO_TOKEN_FILE", TokenScope: auth.ScopePageserverAPI},
	// The bridge ingests WAL and, for `attach`, imports base backups; the
	// pageserver accepts scope safekeeperdata for both (design D5).
	{Name: "safekeeper-bridge", Health: HealthGRPC, TokenEnv: "STRATA_BRIDGE_TOKEN", TokenFileEnv: "STRATA_BRIDGE_TOKEN_FILE", TokenScope: auth.ScopeSafekeeperData},
	// pgproxy forwards each client's own token (auth_mode jwt), so it gets
	// no service token of its own.
	{Name: "pgproxy", Health: HealthTCP},
}

// LookupService returns the service called name.
func LookupService(name string) (Service, error) {
	for _, s := range Services {
		if s.Name == name {
			return s, nil
		}
	}
	names := make([]string, len(Services))
	for i, s := range Services {
		names[i] = s.Name
	}
	return Service{}, fmt.Errorf("%w %q (one of %q)", ErrUnknownService, name, names)
}

// Token scopes Init writes a token for.
var tokenScopes = []auth.Scope{auth.ScopePageserverAPI, auth.ScopeSafekeeperData}

// Stack is an initialized stack directory.
type Stack struct {
	// Dir is the absolute stack directory.
	Dir string
}

// Paths inside the stack directory.
func (s *Stack) manifestPath() string           { return filepath.Join(s.Dir, "stack.toml") }
func (s *Stack) ConfigPath(svc string) string   { return filepath.Join(s.Dir, "config", svc+".toml") }
func (s *Stack) PIDPath(svc string) string      { return filepath.Join(s.Dir, "run", svc+".pid") }
func (s *Stack) LogPath(svc string) string      { return filepath.Join(s.Dir, "logs", svc+".log") }
func (s *Stack) DataDir(svc string) string      { return filepath.Join(s.Dir, "data", svc) }
func (s *Stack) KeyDir() string                 { return filepath.Join(s.Dir, "auth") }
func (s *Stack) PublicKeyPath() string          { return filepath.Join(s.KeyDir(), auth.PublicKeyFileName) }
func (s *Stack) PrivateKeyPath() string         { return filepath.Join(s.KeyDir(), auth.PrivateKeyFileName) }
func (s *Stack) TokenPath(sc auth.Scope) string { return filepath.Join(s.Dir, "tokens", string(sc)) }

type manifest struct {
	FormatVersion int       `toml:"format_version"`
	CreatedAt     time.Time `toml:"created_at"`
}

// Open returns the stack in dir, checking its format version.
func Open(dir string) (*Stack, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	s := &Stack{Dir: abs}
	var m manifest
	if _, err := toml.DecodeFile(s.manifestPath(), &m); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w %s (run `stratactl init --dir %s` first)", ErrNotInitialized, abs, dir)
		}
		return nil, fmt.Errorf("localstack: %s: %w", s.manifestPath(), err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w: %s has format_version %d, this stratactl reads %d", ErrUnsupportedFormat, s.manifestPath(), m.FormatVersion, FormatVersion)
	}
	return s, nil
}

// Addrs are a service's addresses, read back from its config file.
type Addrs struct {
	ListenAddr  string `toml:"listen_addr" json:"listen_addr"`
	MetricsAddr string `toml:"metrics_addr" json:"metrics_addr"`
}

// Addrs reads the listen and metrics addresses from svc's config file.
// Other keys are ignored: the service itself decodes its file strictly.
func (s *Stack) Addrs(svc string) (Addrs, error) {
	var a Addrs
	if _, err := toml.DecodeFile(s.ConfigPath(svc), &a); err != nil {
		return Addrs{}, fmt.Errorf("localstack: %w", err)
	}
	return a, nil
}

// Token returns the token of scope sc written by Init.
func (s *Stack) Token(sc auth.Scope) (string, error) {
	data, err := os.ReadFile(s.TokenPath(sc))
	if err != nil {
		return "", fmt.Errorf("localstack: token: %w", err)
	}
	return string(trimSpace(data)), nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
