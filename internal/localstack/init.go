package localstack

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/golang-jwt/jwt/v5"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/durable"
)

// InitOptions configures Init.
type InitOptions struct {
	// Dir is the stack directory (created; must not hold a stack yet).
	Dir string
	// WalredoExtension is the path of strata_walredo.so; "" searches
	// ExtensionCandidates(BinDir) and falls back to the first candidate.
	WalredoExtension string
	// BinDir is where the service binaries are; only used to find the
	// walredo extension.
	BinDir string
	// PGBinDir is PostgreSQL 15's bin directory for walredo; "" lets
	// walredo find it ($STRATA_PG_BIN or pg_config --bindir).
	PGBinDir string
	// Now stamps created_at and the tokens' iat; zero means time.Now.
	Now time.Time
}

// InitResult describes what Init wrote.
type InitResult struct {
	Stack *Stack
	// Addrs of each service by name.
	Addrs map[string]Addrs
	// WalredoExtension is the extension path written into walredo.toml;
	// ExtensionFound reports whether it exists now.
	WalredoExtension string
	ExtensionFound   bool
}

// ExtensionCandidates are the places Init looks for strata_walredo.so: next
// to the binaries, in the source tree above a ./bin directory (where `make
// build` leaves it), and in the source tree below the working directory.
func ExtensionCandidates(binDir string) []string {
	const rel = "services/walredo/pgext/build/strata_walredo.so"
	var out []string
	if binDir != "" {
		out = append(out, filepath.Join(binDir, "strata_walredo.so"), filepath.Join(binDir, "..", rel))
	}
	if wd, err := os.Getwd(); err == nil {
		out = append(out, filepath.Join(wd, rel))
	}
	return out
}

// Init creates a stack in opts.Dir: configs with free loopback ports and
// auth_mode jwt, a key pair, and one token per scope.
func Init(opts InitOptions) (*InitResult, error) {
	if opts.Dir == "" {
		opts.Dir = DefaultDir
	}
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	s := &Stack{Dir: abs}
	if _, err := os.Stat(s.manifestPath()); err == nil {
		return nil, fmt.Errorf("%w in %s (use `stratactl start`, or remove the directory to start afresh)", ErrExists, abs)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)

	for _, d := range []string{s.Dir, s.KeyDir(), filepath.Join(s.Dir, "tokens"), filepath.Join(s.Dir, "config"),
		filepath.Join(s.Dir, "run"), filepath.Join(s.Dir, "logs"), filepath.Join(s.Dir, "data")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("localstack: %w", err)
		}
	}
	// walredo's children (and the pageserver's initdb for bootstrap) may
	// run as another user (run_as_user when
	// started by root) and need to reach their work directory.
	for _, svc := range Services {
		mode := os.FileMode(0o700)
		if svc.Name == "walredo" || svc.Name == "pageserver" {
			mode = 0o755
		}
		if err := os.MkdirAll(s.DataDir(svc.Name), mode); err != nil {
			return nil, fmt.Errorf("localstack: %w", err)
		}
	}
	if os.Geteuid() == 0 {
		// Traversable by walredo's child user: data/ and the stack dir.
		for _, d := range []string{s.Dir, filepath.Join(s.Dir, "data")} {
			if err := os.Chmod(d, 0o711); err != nil {
				return nil, fmt.Errorf("localstack: %w", err)
			}
		}
	}

	privPath, _, err := auth.GenerateKeyPair(s.KeyDir())
	if err != nil {
		return nil, err
	}
	priv, err := auth.LoadPrivateKey(privPath)
	if err != nil {
		return nil, err
	}
	for _, sc := range tokenScopes {
		// No expiry: the stack is long-lived, as Neon's local tokens.
		tok, err := auth.Issue(priv, &auth.Claims{Scope: sc, RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now)}})
		if err != nil {
			return nil, err
		}
		if err := durable.WriteFile(s.TokenPath(sc), []byte(tok+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("localstack: %w", err)
		}
	}

	ports, err := freePorts(2 * len(Services))
	if err != nil {
		return nil, err
	}
	res := &InitResult{Stack: s, Addrs: map[string]Addrs{}}
	for i, svc := range Services {
		res.Addrs[svc.Name] = Addrs{
			ListenAddr:  net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[2*i])),
			MetricsAddr: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[2*i+1])),
		}
	}

	res.WalredoExtension = opts.WalredoExtension
	if res.WalredoExtension == "" {
		cands := ExtensionCandidates(opts.BinDir)
		for _, c := range cands {
			if _, err := os.Stat(c); err == nil {
				res.WalredoExtension = c
				break
			}
		}
		if res.WalredoExtension == "" && len(cands) > 0 {
			res.WalredoExtension = cands[len(cands)-1]
		}
	}
	if res.WalredoExtension, err = filepath.Abs(res.WalredoExtension); err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	_, statErr := os.Stat(res.WalredoExtension)
	res.ExtensionFound = statErr == nil

	pageserverAddr := res.Addrs["pageserver"].ListenAddr
	for _, svc := range Services {
		a := res.Addrs[svc.Name]
		cfg := map[string]any{
			"listen_addr":          a.ListenAddr,
			"metrics_addr":         a.MetricsAddr,
			"auth_mode":            string(auth.ModeJWT),
			"auth_public_key_path": s.PublicKeyPath(),
			"log_level":            "info",
			"log_format":           "text",
		}
		switch svc.Name {
		case "pageserver":
			cfg["workdir"] = s.DataDir(svc.Name)
			// Redo through the stack's walredo service; the extension path
			// serves walredo_mode = "process" should a user switch to it.
			cfg["walredo_mode"] = "grpc"
			cfg["walredo_addr"] = res.Addrs["walredo"].ListenAddr
			cfg["walredo_extension_path"] = res.WalredoExtension
			if opts.PGBinDir != "" {
				cfg["pg_bin_dir"] = opts.PGBinDir
			}
		case "walredo":
			cfg["workdir"] = s.DataDir(svc.Name)
			cfg["extension_path"] = res.WalredoExtension
			if opts.PGBinDir != "" {
				cfg["pg_bin_dir"] = opts.PGBinDir
			}
		case "safekeeper-bridge":
			cfg["spool_dir"] = s.DataDir(svc.Name)
			cfg["pageserver_addr"] = pageserverAddr
		case "pgproxy":
			cfg["pageserver_addr"] = pageserverAddr
		}
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "# %s configuration written by `stratactl init` on %s.\n# Edit freely; `stratactl start` passes it as --config.\n\n", svc.Name, now.Format(time.RFC3339))
		if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
			return nil, fmt.Errorf("localstack: %w", err)
		}
		if err := durable.WriteFile(s.ConfigPath(svc.Name), buf.Bytes(), 0o600); err != nil {
			return nil, fmt.Errorf("localstack: %w", err)
		}
	}

	// The manifest last: a directory without it is not a stack, so an
	// interrupted init can be retried after removing the directory.
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(manifest{FormatVersion: FormatVersion, CreatedAt: now}); err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	if err := durable.WriteFile(s.manifestPath(), buf.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	return res, nil
}

// freePorts returns n distinct free loopback TCP ports. All listeners stay
// open until every port is chosen, so the kernel cannot hand one out twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("localstack: choosing a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
