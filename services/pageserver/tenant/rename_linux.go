//go:build linux

package tenant

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames oldPath to newPath and fails with an error
// wrapping fs.ErrExist when newPath exists. os.Rename would silently replace
// an empty directory at newPath; renameat2(RENAME_NOREPLACE) makes the check
// and the rename one atomic step. Filesystems without renameat2 support fall
// back to a check then a rename, which the callers' lifecycle mutex keeps
// race-free within the process.
func renameNoReplace(oldPath, newPath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldPath, unix.AT_FDCWD, newPath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		return renameCheckThenRename(oldPath, newPath)
	}
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldPath, New: newPath, Err: err}
	}
	return nil
}
