package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stratadb/strata/internal/osuser"
	"github.com/stratadb/strata/services/pageserver/timeline"
)

// BootstrapOptions configure Bootstrap.
type BootstrapOptions struct {
	// RunAs is the system user initdb runs as when this process is root
	// (PostgreSQL refuses to run as root); required then, ignored
	// otherwise. scratchDir must be traversable by it.
	RunAs string
	// Superuser is the new cluster's bootstrap superuser (initdb -U);
	// empty means the user initdb runs as.
	Superuser string
	// Checksums enables data checksums (initdb --data-checksums).
	Checksums bool
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Bootstrap creates a brand-new cluster with pgBinDir/initdb in a
// temporary directory under scratchDir, imports it on the empty timeline tl
// (ImportDir at its shutdown checkpoint, then that checkpoint record from
// its pg_wal), and removes the directory.
func Bootstrap(ctx context.Context, tl *timeline.Timeline, pgBinDir, scratchDir string, opts BootstrapOptions) (Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	cred, name, err := runAsCredential(ctx, opts.RunAs)
	if err != nil {
		return Result{}, err
	}
	dir, err := os.MkdirTemp(scratchDir, "initdb-")
	if err != nil {
		return Result{}, fmt.Errorf("importer: %w", err)
	}
	defer os.RemoveAll(dir)
	dataDir := filepath.Join(dir, "data")
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return Result{}, fmt.Errorf("importer: %w", err)
		}
	}
	superuser := opts.Superuser
	if superuser == "" {
		superuser = name
	}
	args := []string{"-D", dataDir, "-A", "trust", "-U", superuser, "--no-sync", "-E", "UTF8", "--locale=C"}
	if opts.Checksums {
		args = append(args, "--data-checksums")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(pgBinDir, "initdb"), args...)
	cmd.Dir = dir
	// A clean environment: no PGDATA or locale settings leak in.
	cmd.Env = []string{"PATH=" + pgBinDir + ":/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if cred != nil {
		cmd.SysProcAttr.Credential = cred
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return Result{}, fmt.Errorf("importer: initdb: %w: %s", err, lastLines(string(out), 10))
	}
	log.Info("importer: initdb done", "dir", dataDir, "elapsed", time.Since(began))
	res, err := ImportDir(ctx, tl, dataDir, Options{Logger: log})
	if err != nil {
		return Result{}, err
	}
	ing, err := NewIngest(ctx, tl, log)
	if err != nil {
		return Result{}, err
	}
	if _, err := ImportWALDir(ctx, ing, filepath.Join(dataDir, "pg_wal"), 0); err != nil {
		return Result{}, err
	}
	if ing.Records() == 0 || tl.LastRecordLSN() <= res.At {
		return Result{}, fmt.Errorf("%w: initdb's shutdown checkpoint record at %s is not in its pg_wal", ErrIncomplete, res.At)
	}
	res.Elapsed = time.Since(began)
	log.Info("importer: bootstrapped", "checkpoint", res.At, "last_record_lsn", tl.LastRecordLSN(), "elapsed", res.Elapsed)
	return res, nil
}

// runAsCredential returns the credential to run PostgreSQL binaries with
// (nil: as ourselves) and that user's name. As root it is runAs, created if
// missing (internal/osuser).
func runAsCredential(ctx context.Context, runAs string) (*syscall.Credential, string, error) {
	if os.Geteuid() == 0 && runAs == "" {
		return nil, "", errors.New("importer: running as root: BootstrapOptions.RunAs must name an unprivileged user for initdb")
	}
	u, err := osuser.Ensure(ctx, runAs)
	if err != nil {
		return nil, "", fmt.Errorf("importer: %w", err)
	}
	if !u.Switch {
		return nil, u.Name, nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}, u.Name, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
