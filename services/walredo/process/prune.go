package process

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pruneAge keeps pruning away from directories that may be in use right now
// (a child dir being copied has no postmaster.pid yet).
const pruneAge = 10 * time.Minute

// pruneStale removes what crashed processes left in the work dir: child
// copies whose postgres is gone, and templates of other build ids. Several
// processes may share a work dir, so only old, unused entries go.
func pruneStale(workDir, keepTemplate string, log *slog.Logger) {
	now := time.Now()
	old := func(path string) bool {
		fi, err := os.Stat(path)
		return err == nil && now.Sub(fi.ModTime()) > pruneAge
	}
	children, _ := filepath.Glob(filepath.Join(workDir, "children", "child-*"))
	for _, dir := range children {
		if !old(dir) || postgresAlive(filepath.Join(dir, "data", "postmaster.pid")) {
			continue
		}
		log.Info("removing stale walredo child dir", "dir", dir)
		_ = os.RemoveAll(dir)
	}
	templates, _ := filepath.Glob(filepath.Join(workDir, "template-*"))
	for _, dir := range templates {
		if dir == keepTemplate || strings.HasSuffix(dir, ".lock") || !old(dir) {
			continue
		}
		log.Info("removing walredo template of another build", "dir", dir)
		_ = os.RemoveAll(dir)
	}
}

// postgresAlive reports whether the pid in a postmaster.pid file runs.
func postgresAlive(pidFile string) bool {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
