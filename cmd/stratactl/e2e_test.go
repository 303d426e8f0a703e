package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/localstack"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
)

// buildStack builds the four service binaries into a temporary directory
// and the walredo extension into the source tree (make -C
// services/walredo/pgext, as `make build` does); it returns the bin dir
// and the extension's path.
func buildStack(t *testing.T) (binDir, extension string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	root := filepath.Dir(strings.TrimSpace(string(out)))
	binDir = t.TempDir()
	args := []string{"build", "-o", binDir + "/"}
	for _, svc := range localstack.Services {
		args = append(args, "./services/"+svc.Name+"/cmd/"+svc.Name)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	out, err = exec.Command("make", "-C", filepath.Join(root, "services/walredo/pgext")).CombinedOutput()
	require.NoError(t, err, "building the walredo extension: %s", out)
	return binDir, filepath.Join(root, "services/walredo/pgext/build/strata_walredo.so")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestEndToEnd drives stratactl as a user would against the real services:
// init, start, status, tenant create, timeline create/branch/list,
// fullbackup, boot and query the branch, kill a service and see status
// report it, stop.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real services")
	}
	binDir, ext := buildStack(t)
	// Under /tmp-like TempDir whose parents are traversable: booted
	// PostgreSQL runs as another user when the test runs as root.
	base, err := os.MkdirTemp("", "stratactl-e2e-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(base, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	dir := filepath.Join(base, "stack")

	r := run(t, "", "init", "--dir", dir, "--walredo-extension", ext)
	require.Equal(t, exitOK, r.code, r.stderr)
	t.Cleanup(func() {
		if r := run(t, "", "stop", "--dir", dir); r.code != exitOK {
			t.Errorf("stop: %s", r.stderr)
		}
	})
	r = run(t, "", "start", "--dir", dir, "--bin-dir", binDir, "--timeout", "60s")
	require.Equal(t, exitOK, r.code, "%s\n%s", r.stdout, r.stderr)

	r = run(t, "", "status", "--dir", dir, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var statuses []localstack.ServiceStatus
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &statuses))
	require.Len(t, statuses, 4)
	for _, st := range statuses {
		require.Equal(t, localstack.StateRunning, st.State, st.Name)
		require.Positive(t, st.PID)
	}

	ctl := func(args ...string) result {
		t.Helper()
		return run(t, "", append(args, "--stack-dir", dir)...)
	}
	r = ctl("tenant", "create")
	require.Equal(t, exitOK, r.code, r.stderr)
	tenant := strings.TrimSpace(r.stdout)
	r = ctl("timeline", "create", "--tenant", tenant, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var root timelineView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &root))
	r = ctl("timeline", "branch", "--tenant", tenant, "--from", root.TimelineID, "--lsn", root.LastRecordLSN, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var branch timelineView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &branch))
	require.Equal(t, root.LastRecordLSN, branch.AncestorLSN)

	r = ctl("timeline", "list", "--tenant", tenant)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "└─ "+branch.TimelineID)

	r = ctl("tenant", "list", "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var tenants []tenantView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &tenants))
	require.Len(t, tenants, 1)
	require.Equal(t, uint32(2), tenants[0].TimelineCount)

	tarFile := filepath.Join(base, "branch.tar")
	r = ctl("fullbackup", "--tenant", tenant, "--timeline", branch.TimelineID, "-o", tarFile)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "at LSN "+branch.AncestorLSN)

	// Boot the branch and use it.
	port := freePort(t)
	dataDir := filepath.Join(base, "branch-data")
	r = ctl("boot", "--tenant", tenant, "--timeline", branch.TimelineID, "--port", strconv.Itoa(port), "--dir", dataDir, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	t.Cleanup(func() { _ = localstack.StopPostgres(context.Background(), dataDir, "") })
	var booted struct {
		ConnString string `json:"conn_string"`
		LSN        string `json:"lsn"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &booted))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pg, err := pgconn.Connect(ctx, booted.ConnString)
	require.NoError(t, err)
	res, err := pg.Exec(ctx, "CREATE TABLE t(x int); INSERT INTO t VALUES (42); SELECT x FROM t").ReadAll()
	require.NoError(t, err)
	require.Equal(t, "42", string(res[len(res)-1].Rows[0][0]))
	require.NoError(t, pg.Close(ctx))

	// A killed service shows as dead and status fails.
	stack, err := localstack.Open(dir)
	require.NoError(t, err)
	pidData, err := os.ReadFile(stack.PIDPath("safekeeper-bridge"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidData)))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		r = run(t, "", "status", "--dir", dir)
		return r.code == exitRuntime
	}, 10*time.Second, 100*time.Millisecond)
	require.Regexp(t, `safekeeper-bridge\s+dead\s+-`, r.stdout)
	require.Contains(t, r.stderr, "1 of 4 services are not running: safekeeper-bridge (dead)")

	// start brings back only what is down.
	r = run(t, "", "start", "--dir", dir, "--bin-dir", binDir)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Regexp(t, `pageserver\s+running\s+\d+.*already running`, r.stdout)
	require.Regexp(t, `safekeeper-bridge\s+running\s+\d+.*started`, r.stdout)

	r = run(t, "", "logs", "pageserver", "--dir", dir)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "--- stratactl start pageserver")

	r = run(t, "", "stop", "--dir", dir)
	require.Equal(t, exitOK, r.code, r.stderr)
	r = run(t, "", "status", "--dir", dir)
	require.Equal(t, exitRuntime, r.code)
	require.Equal(t, 4, strings.Count(r.stdout, " stopped "), r.stdout)
	r = ctl("tenant", "list", "--timeout", "3s")
	require.Equal(t, exitRuntime, r.code)
	require.Contains(t, r.stderr, "try `stratactl status`")
}

// TestAttachRealPrimary attaches a real PostgreSQL 15 primary through the
// real bridge and pageserver, then boots the imported timeline.
func TestAttachRealPrimary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real services")
	}
	binDir, ext := buildStack(t)
	primary := pgtest.Start(t, pgtest.Options{})
	primary.Exec(t, "postgres", "CREATE TABLE kept(x int); INSERT INTO kept SELECT generate_series(1, 1000)")

	base, err := os.MkdirTemp("", "stratactl-attach-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(base, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	dir := filepath.Join(base, "stack")
	require.Equal(t, exitOK, run(t, "", "init", "--dir", dir, "--walredo-extension", ext).code)
	t.Cleanup(func() { run(t, "", "stop", "--dir", dir) })
	r := run(t, "", "start", "--dir", dir, "--bin-dir", binDir, "--timeout", "60s")
	require.Equal(t, exitOK, r.code, "%s\n%s", r.stdout, r.stderr)

	t.Setenv("PRIMARY", primary.ConnString("postgres"))
	r = run(t, "", "attach", "--primary", "env:PRIMARY", "--stack-dir", dir, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var v attachView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	t.Logf("attach: %s", r.stdout)

	port := freePort(t)
	dataDir := filepath.Join(base, "data")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		r = run(t, "", "timeline", "show", v.TimelineID, "--tenant", v.TenantID, "--stack-dir", dir)
		if r.code == exitOK {
			break
		}
		if time.Now().After(deadline) {
			for _, svc := range []string{"safekeeper-bridge", "pageserver"} {
				t.Logf("%s log:\n%s", svc, run(t, "", "logs", svc, "--dir", dir).stdout)
			}
			t.Fatalf("timeline %s never appeared: %s", v.TimelineID, r.stderr)
		}
	}
	// More data, then compaction once the pageserver has it: the boot
	// below reads the new rows through the image layers.
	primary.Exec(t, "postgres", "INSERT INTO kept SELECT generate_series(1001, 2000)")
	want, err := lsn.Parse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
	require.NoError(t, err)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = run(t, "", "timeline", "show", v.TimelineID, "--tenant", v.TenantID, "--stack-dir", dir, "-o", "json")
		require.Equal(t, exitOK, r.code, r.stderr)
		var tv timelineView
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &tv))
		if last, err := lsn.Parse(tv.LastRecordLSN); err == nil && last >= want {
			break
		}
		require.False(t, time.Now().After(deadline), "the pageserver never reached %s: %s", want, r.stdout)
	}
	r = run(t, "", "timeline", "compact", v.TimelineID, "--tenant", v.TenantID, "--stack-dir", dir, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var cv struct {
		ImageLSN      string `json:"image_lsn"`
		LayersCreated uint64 `json:"layers_created"`
		ImageKeys     uint64 `json:"image_keys"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &cv))
	t.Logf("compact: %s", r.stdout)
	require.NotZero(t, cv.LayersCreated)
	imageLSN, err := lsn.Parse(cv.ImageLSN)
	require.NoError(t, err)
	require.GreaterOrEqual(t, imageLSN, want)
	r = run(t, "", "timeline", "compact", v.TimelineID, "--tenant", v.TenantID, "--stack-dir", dir)
	require.Equal(t, exitOK, r.code, r.stderr)
	t.Logf("compact again: %s", r.stdout)

	// More rows after the image, then GC keeping only 8 KiB of history:
	// the cutoff rises to the image (disk_consistent_lsn), everything
	// under it goes, and history below the cutoff is refused.
	primary.Exec(t, "postgres", "INSERT INTO kept SELECT generate_series(2001, 3000)")
	want, err = lsn.Parse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
	require.NoError(t, err)
	var before timelineView
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = run(t, "", "timeline", "show", v.TimelineID, "--tenant", v.TenantID, "--stack-dir", dir, "-o", "json")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &before))
		if last, err := lsn.Parse(before.LastRecordLSN); err == nil && last >= want {
			break
		}
		require.False(t, time.Now().After(deadline), "the pageserver never reached %s: %s", want, r.stdout)
	}
	r = run(t, "", "timeline", "gc", v.TimelineID, "--tenant", v.TenantID, "--horizon", "8KiB", "--stack-dir", dir, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	t.Logf("gc: %s", r.stdout)
	var gv struct {
		GCCutoffLSN   string `json:"gc_cutoff_lsn"`
		LayersRemoved uint64 `json:"layers_removed"`
		LayersKept    uint64 `json:"layers_kept"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &gv))
	cutoff, err := lsn.Parse(gv.GCCutoffLSN)
	require.NoError(t, err)
	require.GreaterOrEqual(t, cutoff, imageLSN)
	require.NotZero(t, gv.LayersRemoved, "the import's image lies under the compaction's image")
	require.Equal(t, before.LayerFileCount, gv.LayersRemoved+gv.LayersKept)
	r = run(t, "", "timeline", "branch", "--tenant", v.TenantID, "--from", v.TimelineID, "--lsn", before.StartLSN, "--stack-dir", dir)
	require.NotEqual(t, exitOK, r.code, "a branch below the GC cutoff must be refused")
	require.Contains(t, r.stderr, "GC cutoff")
	r = run(t, "", "timeline", "gc", v.TimelineID, "--tenant", v.TenantID, "--horizon", "lots", "--stack-dir", dir)
	require.Equal(t, exitUsage, r.code, r.stderr)

	r = run(t, "", "boot", "--tenant", v.TenantID, "--timeline", v.TimelineID, "--port", strconv.Itoa(port), "--dir", dataDir, "--stack-dir", dir, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	t.Cleanup(func() { _ = localstack.StopPostgres(context.Background(), dataDir, "") })
	var booted struct {
		ConnString string `json:"conn_string"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &booted))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pg, err := pgconn.Connect(ctx, booted.ConnString)
	require.NoError(t, err)
	defer pg.Close(ctx)
	res, err := pg.Exec(ctx, "SELECT count(*) FROM kept").ReadAll()
	require.NoError(t, err)
	require.Equal(t, "3000", string(res[0].Rows[0][0]))
}
