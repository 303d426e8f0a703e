package osuser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoUser is returned (wrapped) when the user cannot be found or created.
var ErrNoUser = errors.New("osuser: cannot find or create the OS user")

var errUnknown = errors.New("osuser: unknown user")

// User is an OS user children run as.
type User struct {
	Name     string
	UID, GID uint32
	// Switch is set when children must be started with this user's
	// credentials (this process is root).
	Switch bool
}

// SysProcAttr returns the attributes that start a child as u, or nil when
// the child simply inherits this process's identity.
func (u User) SysProcAttr() *syscall.SysProcAttr {
	if !u.Switch {
		return nil
	}
	// Groups is empty on purpose: the child drops root's supplementary groups.
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}}
}

// Chown gives path to u when this process is root; otherwise this process
// already owns what it creates. Symbolic links are not followed.
func (u User) Chown(path string) error {
	if !u.Switch {
		return nil
	}
	return os.Lchown(path, int(u.UID), int(u.GID))
}

// Ensure returns the user children run as: the current user when this
// process is not root, else the system user name, created if missing
// (system account, own group, no home, shell nologin).
func Ensure(ctx context.Context, name string) (User, error) {
	if os.Geteuid() != 0 {
		return Current(), nil
	}
	if u, err := lookup(name); err == nil || !errors.Is(err, errUnknown) {
		return u, err
	}
	useradd, err := findUseradd(name)
	if err != nil {
		return User{}, err
	}
	unlock, err := LockFile(ctx, filepath.Join(os.TempDir(), "strata-useradd.lock"))
	if err != nil {
		return User{}, fmt.Errorf("%w: %v", ErrNoUser, err)
	}
	defer unlock()
	// Someone else may hold /etc/passwd's own lock for a moment; useradd
	// then fails and is retried.
	var lastErr error
	backoff := 20 * time.Millisecond
	for attempt := 0; attempt < 10; attempt++ {
		u, err := lookup(name)
		if err == nil || !errors.Is(err, errUnknown) {
			return u, err
		}
		out, err := exec.CommandContext(ctx, useradd, "--system", "--user-group", "--no-create-home",
			"--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err == nil {
			continue // look it up on the next iteration
		}
		lastErr = fmt.Errorf("useradd %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		select {
		case <-ctx.Done():
			return User{}, fmt.Errorf("%w: %v (last error: %v)", ErrNoUser, ctx.Err(), lastErr)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
	return User{}, fmt.Errorf("%w: %v", ErrNoUser, lastErr)
}

func lookup(name string) (User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return User{}, errUnknown
		}
		return User{}, fmt.Errorf("%w: look up %q: %v", ErrNoUser, name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return User{}, fmt.Errorf("%w: user %q has non-numeric uid %q or gid %q", ErrNoUser, u.Username, u.Uid, u.Gid)
	}
	if uid == 0 {
		return User{}, fmt.Errorf("%w: user %q has uid 0; PostgreSQL refuses to run as root", ErrNoUser, u.Username)
	}
	return User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Switch: true}, nil
}

func findUseradd(name string) (string, error) {
	if p, err := exec.LookPath("useradd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/useradd", "/sbin/useradd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: running as root and useradd is not installed; create a user %q or run as a non-root user", ErrNoUser, name)
}

// Current describes this (non-root) process's user. Containers often run
// with a uid that has no passwd entry; the name then falls back to $USER or
// "strata".
func Current() User {
	u := User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if cur, err := user.Current(); err == nil && cur.Username != "" {
		u.Name = cur.Username
	} else if name := os.Getenv("USER"); name != "" {
		u.Name = name
	} else {
		u.Name = "strata"
	}
	return u
}

// LockFile takes an exclusive flock on path (creating it), waiting until
// ctx ends. flock locks belong to the open file description, so goroutines
// of one process exclude each other too. Call unlock to release.
func LockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
