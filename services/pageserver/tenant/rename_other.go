//go:build !linux

package tenant

// renameNoReplace renames oldPath to newPath and fails with an error
// wrapping fs.ErrExist when newPath exists. Without renameat2 the check and
// the rename are two steps; the callers' lifecycle mutex keeps them
// race-free within the process.
func renameNoReplace(oldPath, newPath string) error {
	return renameCheckThenRename(oldPath, newPath)
}
