package process

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPruneStale(t *testing.T) {
	work := t.TempDir()
	mk := func(rel string, age time.Duration, pid int) string {
		dir := filepath.Join(work, rel)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
		if pid != 0 {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(strconv.Itoa(pid)+"\n/x\n"), 0o600))
		}
		ts := time.Now().Add(-age)
		require.NoError(t, os.Chtimes(dir, ts, ts))
		return dir
	}
	deadOld := mk("children/child-1", time.Hour, 0)
	aliveOld := mk("children/child-2", time.Hour, os.Getpid())
	young := mk("children/child-3", time.Second, 0)
	keep := mk("template-aaaa", time.Hour, 0)
	otherOld := mk("template-bbbb", time.Hour, 0)
	otherYoung := mk("template-cccc", time.Second, 0)

	pruneStale(work, keep, slog.New(slog.DiscardHandler))
	for dir, want := range map[string]bool{
		deadOld: false, aliveOld: true, young: true, keep: true, otherOld: false, otherYoung: true,
	} {
		_, err := os.Stat(dir)
		require.Equal(t, want, err == nil, dir)
	}
}
