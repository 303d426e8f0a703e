package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultUser is the system user children run as when we run as root.
const DefaultUser = "strata-walredo"

// osUser is the identity postgres runs with.
type osUser struct {
	name     string
	uid, gid uint32
	// switchTo: we are root, children get this user's credentials.
	switchTo bool
}

func (u osUser) sysProcAttr() *syscall.SysProcAttr {
	// Pdeathsig: a child must not outlive the process that feeds it. Go sets
	// it after switching credentials, which would otherwise clear it.
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if u.switchTo {
		attr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}
	}
	return attr
}

func (u osUser) chown(path string) error {
	if !u.switchTo {
		return nil
	}
	return os.Lchown(path, int(u.uid), int(u.gid))
}

// resolveUser returns the current user, or (when root) the named system
// user, creating it with useradd if missing. Concurrent creators race
// harmlessly: a failed useradd is followed by another lookup.
func resolveUser(ctx context.Context, name string) (osUser, error) {
	if os.Geteuid() != 0 {
		u := osUser{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
		if cur, err := user.Current(); err == nil {
			u.name = cur.Username
		}
		return u, nil
	}
	if name == "" {
		name = DefaultUser
	}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		u, err := user.Lookup(name)
		if err == nil {
			return userFrom(u)
		}
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return osUser{}, fmt.Errorf("%w: look up %q: %v", ErrNoUser, name, err)
		}
		out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
			"--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err == nil {
			continue
		}
		lastErr = fmt.Errorf("useradd %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		select {
		case <-ctx.Done():
			return osUser{}, fmt.Errorf("%w: %v (last error: %v)", ErrNoUser, ctx.Err(), lastErr)
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return osUser{}, fmt.Errorf("%w: %v", ErrNoUser, lastErr)
}

func userFrom(u *user.User) (osUser, error) {
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return osUser{}, fmt.Errorf("%w: user %q has non-numeric uid %q or gid %q", ErrNoUser, u.Username, u.Uid, u.Gid)
	}
	if uid == 0 {
		return osUser{}, fmt.Errorf("%w: user %q has uid 0; PostgreSQL refuses to run as root", ErrNoUser, u.Username)
	}
	return osUser{name: u.Username, uid: uint32(uid), gid: uint32(gid), switchTo: true}, nil
}
