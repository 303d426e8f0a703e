package tenant

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/services/pageserver/timeline/metadata"
)

const crashDirEnv = "STRATA_TENANT_CRASH_CHILD_DIR"

// TestCrashChild is the child process of TestKillDuringLifecycle: it churns
// through creates, branches, metadata updates and deletes until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestKillDuringLifecycle")
	}
	ctx := context.Background()
	r, err := Open(ctx, dir, nil)
	require.NoError(t, err)
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for {
		tenants := r.ListTenants()
		switch op := rng.IntN(10); {
		case op == 0 || len(tenants) == 0:
			_, err := r.CreateTenant(ctx, ids.NewTenantID())
			require.NoError(t, err)
		case op == 1 && len(tenants) > 3:
			require.NoError(t, r.DeleteTenant(ctx, tenants[rng.IntN(len(tenants))].ID()))
		default:
			tn := tenants[rng.IntN(len(tenants))]
			tls := tn.ListTimelines()
			switch {
			case len(tls) == 0 || op == 2:
				_, err := tn.CreateTimeline(ctx, ids.NewTimelineID(), rootMD("0/1000000"))
				require.NoError(t, err)
			case op < 6:
				anc := tls[rng.IntN(len(tls))]
				_, err := tn.CreateTimeline(ctx, ids.NewTimelineID(), branchMD(anc.ID(), "0/1000000"))
				require.NoError(t, err)
			case op < 8:
				_, err := tls[rng.IntN(len(tls))].UpdateMetadata(func(m *metadata.Metadata) { m.DiskConsistentLSN += 8 })
				require.NoError(t, err)
			default:
				// The last in ancestor order has no children.
				require.NoError(t, tn.DeleteTimeline(ctx, tls[len(tls)-1].ID()))
			}
		}
	}
}

// TestKillDuringLifecycle kills a churning child with SIGKILL at random
// moments and checks after each that the repository reopens with nothing
// broken or half-created and no leftovers. (SIGKILL keeps the OS page cache,
// so this tests the rename protocol and the cleanup, not fsync ordering.)
func TestKillDuringLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	for round := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(stdout).ReadString('\n')
		require.NoError(t, err, "round %d: child did not start", round)
		require.Equal(t, "ready\n", line)
		time.Sleep(time.Duration(5+rng.IntN(60)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait() // killed: a non-nil error is expected

		r, err := Open(context.Background(), dir, nil)
		require.NoError(t, err)
		tenantsDir := filepath.Join(dir, "tenants")
		require.Len(t, dirNames(t, tenantsDir), len(r.ListTenants()), "round %d: only tenants remain", round)
		for _, tn := range r.ListTenants() {
			require.Equal(t, StateActive, tn.State(), "round %d: %v", round, tn.BrokenReason())
			require.Len(t, dirNames(t, filepath.Join(tn.Dir(), "timelines")), len(tn.ListTimelines()), "round %d", round)
			for _, tl := range tn.ListTimelines() {
				require.Equal(t, StateActive, tl.State(), "round %d: %v", round, tl.BrokenReason())
				require.Equal(t, []string{"metadata"}, dirNames(t, tl.Dir()), "round %d", round)
			}
		}
	}
}
