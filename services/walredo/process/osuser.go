package process

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/stratadb/strata/internal/osuser"
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
// user, created if missing (internal/osuser serializes creation
// machine-wide).
func resolveUser(ctx context.Context, name string) (osUser, error) {
	if name == "" {
		name = DefaultUser
	}
	u, err := osuser.Ensure(ctx, name)
	if err != nil {
		return osUser{}, fmt.Errorf("%w: %w", ErrNoUser, err)
	}
	return osUser{name: u.Name, uid: u.UID, gid: u.GID, switchTo: u.Switch}, nil
}
