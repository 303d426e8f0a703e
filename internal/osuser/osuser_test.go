package osuser

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEnsure(t *testing.T) {
	u, err := Ensure(context.Background(), "strata-pg")
	require.NoError(t, err)
	if os.Geteuid() != 0 {
		require.False(t, u.Switch)
		require.Nil(t, u.SysProcAttr())
		require.NoError(t, u.Chown(t.TempDir()))
		return
	}
	require.True(t, u.Switch)
	require.NotZero(t, u.UID)
	require.NotNil(t, u.SysProcAttr())
	dir := t.TempDir()
	require.NoError(t, u.Chown(dir))
	// Concurrent Ensure of one existing name agrees on the uid.
	var wg sync.WaitGroup
	uids := make([]uint32, 8)
	for i := range uids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := Ensure(context.Background(), "strata-pg")
			if err == nil {
				uids[i] = v.UID
			}
		}()
	}
	wg.Wait()
	for _, id := range uids {
		require.Equal(t, u.UID, id)
	}
}

func TestCurrent(t *testing.T) {
	c := Current()
	require.Equal(t, uint32(os.Getuid()), c.UID)
	require.NotEmpty(t, c.Name)
}

func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	ctx := context.Background()
	unlock, err := LockFile(ctx, path)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = LockFile(short, path)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	unlock()
	u2, err := LockFile(ctx, path)
	require.NoError(t, err)
	u2()
	_, err = LockFile(ctx, filepath.Join(t.TempDir(), "missing", "l"))
	require.Error(t, err)
}
