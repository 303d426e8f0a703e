package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stratadb/strata/internal/osuser"
)

// pgUserName is the system user PostgreSQL runs as when the tests run as root.
const pgUserName = "strata-pg"

// osUser is the OS user that owns a cluster and runs its binaries.
type osUser struct {
	name     string
	uid, gid uint32
	// switchTo is true when children must be started with this user's
	// credentials (the test process is root and PostgreSQL refuses root).
	switchTo bool
}

// sysProcAttr returns the attributes that make a child run as u, or nil when
// the child simply inherits the test process's identity.
func (u osUser) sysProcAttr() *syscall.SysProcAttr {
	if !u.switchTo {
		return nil
	}
	// Groups is empty on purpose: the child drops root's supplementary groups.
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}}
}

// chown gives path to u when the test process is root; otherwise the test
// process already owns what it creates.
func (u osUser) chown(path string) error {
	if !u.switchTo {
		return nil
	}
	return os.Chown(path, int(u.uid), int(u.gid))
}

// resolveUser returns the user clusters run as: the current user, or
// strata-pg (created if needed, see internal/osuser) when the test process
// is root. base is the directory from baseDir (unused since user creation
// is serialized machine-wide by osuser).
func resolveUser(ctx context.Context, _ string) (osUser, error) {
	u, err := osuser.Ensure(ctx, pgUserName)
	if err != nil {
		return osUser{}, fmt.Errorf("%w: %w", ErrNoUser, err)
	}
	return osUser{name: u.Name, uid: u.UID, gid: u.GID, switchTo: u.Switch}, nil
}

// lockFile takes an exclusive flock on path (see osuser.LockFile).
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return osuser.LockFile(ctx, path)
}

// baseDir returns (creating it) the directory that holds this process
// user's clusters: os.TempDir()/strata-pgtest-<euid>, mode 0755 so that the
// unprivileged user can traverse it when the test process is root.
func baseDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "strata-pgtest-"+strconv.Itoa(os.Geteuid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("pgtest: create %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || (ok && int(st.Uid) != os.Geteuid()) {
		return "", fmt.Errorf("pgtest: %s is not a directory owned by uid %d; remove it", dir, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o755 { // umask may have narrowed it
		if err := os.Chmod(dir, 0o755); err != nil {
			return "", fmt.Errorf("pgtest: %w", err)
		}
	}
	if os.Geteuid() == 0 {
		if err := checkTraversable(dir); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// checkTraversable reports an ancestor of dir that other users cannot enter,
// which would keep strata-pg out of its own cluster directory.
func checkTraversable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("pgtest: %s (mode %v) cannot be entered by user %s; set TMPDIR to a directory everyone can traverse, such as /tmp",
				d, fi.Mode().Perm(), pgUserName)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// processAlive reports whether pid names a live process. EPERM means it
// exists but belongs to someone else. A zombie counts as dead: in containers
// whose init does not reap orphans it would otherwise look alive forever.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no procfs: trust kill(0)
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain ") ".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// readPID reads the first line of a pid file (postmaster.pid, owner.pid).
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pgtest: %s: bad pid %q", path, first)
	}
	return pid, nil
}

// killPostmaster SIGKILLs the postmaster named in dataDir/postmaster.pid and
// all its children, as a crash of the machine would end them, waits until
// they are gone, so that a following start finds no shared memory still
// attached, and removes the lock files they leave. It acts only after checking that the process's working
// directory is dataDir, so a stale pid file never kills an unrelated process
// that reused the pid. It returns nil when no such postmaster runs.
func killPostmaster(ctx context.Context, dataDir, socketDir string) error {
	pid, err := runningPostmaster(dataDir)
	if err != nil || pid == 0 {
		return err
	}
	// Stopped, the postmaster can neither fork new children nor restart
	// killed ones while its children are collected and killed.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pgtest: stop postmaster %d: %w", pid, err)
	}
	victims := append(childrenOf(pid), pid)
	for _, p := range victims {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for _, p := range victims {
		for processAlive(p) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("pgtest: process %d of postmaster %d still alive after SIGKILL: %w", p, pid, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return removeStaleLockFiles(dataDir, socketDir)
}

// removeStaleLockFiles removes postmaster.pid and the Unix socket lock
// files in socketDir (the cluster directory, used by this cluster only) once
// the postmaster is known to be dead. PostgreSQL removes stale lock files
// itself, except when the recorded pid still answers kill(0): a zombie,
// which this container's init (not a reaper) may leave for a while, or an
// unrelated process that reused the pid. The next start would then fail
// with "lock file ... already exists".
func removeStaleLockFiles(dataDir, socketDir string) error {
	stale, _ := filepath.Glob(filepath.Join(socketDir, ".s.PGSQL.*"))
	stale = append(stale, filepath.Join(dataDir, "postmaster.pid"))
	for _, path := range stale {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

// runningPostmaster returns the pid of the live postmaster of dataDir, or 0
// when postmaster.pid is missing or stale: its process is gone, a zombie, or
// a different process that reused the pid (its working directory is not
// dataDir; the postmaster chdirs into its data directory).
func runningPostmaster(dataDir string) (int, error) {
	pid, err := readPID(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil || cwd != want || !processAlive(pid) {
		return 0, nil
	}
	return pid, nil
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var children []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesized command: state, ppid, ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			children = append(children, child)
		}
	}
	return children
}
