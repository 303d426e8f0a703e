package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stratadb/strata/services/walredo/pgext"
)

// Config says where postgres and the extension are and where children live.
type Config struct {
	// BinDir holds postgres, initdb and pg_resetwal; "" means $STRATA_PG_BIN
	// or `pg_config --bindir`.
	BinDir string
	// ExtensionPath is the built strata_walredo.so.
	ExtensionPath string
	// WorkDir holds the template and the children's data dirs. When running
	// as root, every ancestor must be traversable by RunAsUser.
	WorkDir string
	// RunAsUser is the system user children run as when we are root
	// (created if missing); "" means DefaultUser.
	RunAsUser string
	// StartTimeout bounds a child's start-up and handshake; 0 means 30 s.
	StartTimeout time.Duration
	// RequestTimeout bounds every request unless the context is shorter;
	// 0 means 60 s (Neon's wal_redo_timeout).
	RequestTimeout time.Duration
	// Logger receives the children's stderr and lifecycle events.
	Logger *slog.Logger
}

func (c Config) withDefaults(ctx context.Context) (Config, error) {
	if c.BinDir == "" {
		dir, err := FindBinDir(ctx)
		if err != nil {
			return c, err
		}
		c.BinDir = dir
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var problems []string
	if c.ExtensionPath == "" {
		problems = append(problems, "ExtensionPath is empty")
	}
	if c.WorkDir == "" {
		problems = append(problems, "WorkDir is empty")
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %s", ErrTemplate, strings.Join(problems, "; "))
	}
	return c, nil
}

// FindBinDir returns $STRATA_PG_BIN if set, else `pg_config --bindir`.
func FindBinDir(ctx context.Context) (string, error) {
	if dir := os.Getenv("STRATA_PG_BIN"); dir != "" {
		return dir, nil
	}
	out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output()
	if err != nil {
		return "", fmt.Errorf("%w: pg_config --bindir: %v (install postgresql-15 or set STRATA_PG_BIN)", ErrTemplate, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Template is a prepared data directory that children copy.
type Template struct {
	cfg     Config
	user    osUser
	dataDir string
	libPath string
}

// DataDir returns the template's data directory.
func (t *Template) DataDir() string { return t.dataDir }

// PrepareTemplate returns the template for cfg, creating it if this work
// dir has none for the extension's build id. Safe to call concurrently from
// several goroutines and processes (a file lock serialises preparation).
func PrepareTemplate(ctx context.Context, cfg Config) (*Template, error) {
	cfg, err := cfg.withDefaults(ctx)
	if err != nil {
		return nil, err
	}
	u, err := resolveUser(ctx, cfg.RunAsUser)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.WorkDir, filepath.Join(cfg.WorkDir, "lib"), filepath.Join(cfg.WorkDir, "children")} {
		// 0755: the unprivileged user must traverse what root created.
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(cfg.WorkDir, "template.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("%w: lock: %v", ErrTemplate, err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()

	id := pgext.BuildID()
	t := &Template{
		cfg:     cfg,
		user:    u,
		libPath: filepath.Join(cfg.WorkDir, "lib", "strata_walredo-"+id+".so"),
		dataDir: filepath.Join(cfg.WorkDir, "template-"+id, "data"),
	}
	// Replace (never overwrite in place) the library: live children map it.
	if err := installFile(cfg.ExtensionPath, t.libPath); err != nil {
		return nil, fmt.Errorf("%w: install extension: %v", ErrTemplate, err)
	}
	pruneStale(cfg.WorkDir, filepath.Dir(t.dataDir), cfg.Logger)
	if _, err := os.Stat(filepath.Join(t.dataDir, "PG_VERSION")); err == nil {
		return t, nil
	}
	if err := t.create(ctx, id); err != nil {
		return nil, err
	}
	return t, nil
}

func installFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// create builds the template in a scratch dir and renames it into place, so
// a crash mid-way never leaves a half-made template that looks ready.
func (t *Template) create(ctx context.Context, id string) error {
	final := filepath.Dir(t.dataDir)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	scratch, err := os.MkdirTemp(t.cfg.WorkDir, "template-"+id+".tmp-")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	defer os.RemoveAll(scratch)
	if err := os.Chmod(scratch, 0o755); err != nil {
		return fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	data := filepath.Join(scratch, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	if err := t.user.chown(data); err != nil {
		return fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	start := time.Now()
	steps := []struct {
		bin   string
		args  []string
		stdin string
	}{
		{"initdb", []string{"-D", data, "--no-sync", "--no-instructions", "-A", "trust", "--locale=C", "-E", "UTF8"}, ""},
		// Every real LSN must count as already flushed in the scratch
		// cluster, or writing out a redone page fails the XLogFlush check.
		{"pg_resetwal", []string{"-l", "000000017FFFFFFF00000000", data}, ""},
		{"postgres", append([]string{"--single", "-D", data}, append(childSettings(false), "postgres")...),
			fmt.Sprintf("CREATE FUNCTION strata_walredo_main() RETURNS void AS '%s', 'strata_walredo_main' LANGUAGE C;\n", t.libPath)},
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, filepath.Join(t.cfg.BinDir, s.bin), s.args...)
		cmd.SysProcAttr = t.user.sysProcAttr()
		cmd.Env = childEnv()
		cmd.Dir = scratch
		if s.stdin != "" {
			cmd.Stdin = strings.NewReader(s.stdin)
		}
		out, err := cmd.CombinedOutput()
		if err == nil && s.stdin != "" && bytes.Contains(out, []byte("ERROR:")) {
			err = errors.New("statement failed")
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v: %s", ErrTemplate, s.bin, err, strings.TrimSpace(string(out)))
		}
	}
	if err := os.Rename(scratch, final); err != nil {
		return fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	t.cfg.Logger.Info("walredo template prepared", "dir", t.dataDir, "build_id", id, "took", time.Since(start))
	return nil
}

// childSettings are the GUCs of every single-user backend we start.
func childSettings(walLogHints bool) []string {
	hints := "off"
	if walLogHints {
		hints = "on"
	}
	return []string{
		"-F",
		"-c", "shared_buffers=1MB",
		// minimal + RelationCreateStorage keeps hint-bit FPIs out of the
		// scratch WAL (see strata_walredo.c).
		"-c", "wal_level=minimal",
		"-c", "max_wal_senders=0",
		"-c", "wal_log_hints=" + hints,
		"-c", "log_min_messages=warning",
		"-c", "autovacuum=off",
	}
}

func childEnv() []string {
	return []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
}

// copyTree copies the template data dir to dst, preserving modes, and gives
// everything to u.
func copyTree(src, dst string, u osUser) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets and the like have no business in a template
		}
		return u.chown(target)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
