package durable

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "metadata")
	require.NoError(t, WriteFile(p, []byte("v1"), 0o600))
	require.NoError(t, WriteFile(p, []byte("version 2"), 0o644))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "version 2", string(b))
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temp file left behind")
}

func TestWriteFileErrorsLeaveTargetAlone(t *testing.T) {
	dir := t.TempDir()
	err := WriteFile(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600)
	require.ErrorContains(t, err, "durable: creating temp file")

	// Renaming over a directory fails; the temp file must be cleaned up.
	target := filepath.Join(dir, "adir")
	require.NoError(t, os.Mkdir(target, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(target, "keep"), nil, 0o600))
	err = WriteFile(target, []byte("x"), 0o600)
	require.ErrorContains(t, err, "durable: renaming")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".metadata.tmp-123"), []byte("half"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "metadata"), []byte("whole"), 0o600))
	require.NoError(t, RemoveTemps(dir))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "metadata", entries[0].Name())
	require.NoError(t, RemoveTemps(dir))
}

func TestSyncDirMissing(t *testing.T) {
	require.ErrorContains(t, SyncDir(filepath.Join(t.TempDir(), "nope")), "durable: opening directory")
}
