package tenant

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

const (
	tenantsDirName   = "tenants"
	timelinesDirName = "timelines"
	// tempPrefix names a directory being created; tombstonePrefix one being
	// deleted. Both start with a dot so they can never parse as ids, and
	// both are removed by Open.
	tempPrefix      = ".tmp-"
	tombstonePrefix = ".deleted-"
	dirPerm         = 0o700
)

func renameCheckThenRename(oldPath, newPath string) error {
	if _, err := os.Lstat(newPath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldPath, New: newPath, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(oldPath, newPath)
}

// scratchName returns prefix + id + "-" + random hex, unique enough that
// concurrent or repeated attempts never collide.
func scratchName(prefix, id string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms (Go 1.24+)
	return prefix + id + "-" + hex.EncodeToString(b[:])
}

func isScratch(name string) bool {
	return strings.HasPrefix(name, tempPrefix) || strings.HasPrefix(name, tombstonePrefix)
}

// State is the load state of a tenant or timeline.
type State int

const (
	// StateActive: loaded and usable.
	StateActive State = iota
	// StateBroken: found damaged at Open; see BrokenReason.
	StateBroken
)

// String returns "Active" or "Broken" (Neon's TimelineInfo state names).
func (s State) String() string {
	switch s {
	case StateActive:
		return "Active"
	case StateBroken:
		return "Broken"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}
