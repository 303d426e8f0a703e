package bridge

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// TestPrimaryTimelineSwitch: the primary the bridge follows switches to a
// new PostgreSQL timeline (it was a standby and is promoted, as after a
// failover). The primary crashes under load, comes back as a standby of its
// own WAL (standby.signal), the bridge streams from it on timeline 1, and
// it is promoted to timeline 2 while the bridge streams; more load follows.
// The bridge follows the switch without losing or skipping WAL: the
// pageserver ingests across it, and a fullbackup at the final LSN boots
// with the promoted server's fingerprint on timeline 2.
func TestPrimaryTimelineSwitch(t *testing.T) {
	// The timeline of the WAL being written now (pg_control's checkpoint
	// keeps the old one until the first checkpoint after promotion).
	const tliSQL = "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
	if testing.Short() {
		t.Skip("builds and runs the real services")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, primary, ref := attachedPrimary(ctx, t)
	out, err := primary.Run(ctx, "pgbench", "-c", "2", "-T", "2", "-n", "postgres")
	require.NoError(t, err, string(out))

	// Crash, and restart as a standby of its own WAL: it replays to the
	// end of pg_wal and stays in recovery on timeline 1.
	primary.Crash(t)
	restartAsStandby(t, primary)
	require.Equal(t, "t", primary.Query(t, "postgres", "SELECT pg_is_in_recovery()"))
	replayed := lsn.MustParse(primary.Query(t, "postgres", "SELECT pg_last_wal_replay_lsn()"))
	s.waitIngested(ctx, ref, replayed, time.Minute)
	// The bridge reconnects and streams from the standby, still on
	// timeline 1, before the promotion ends that stream at the switch
	// point.
	streams := func() int {
		logs, err := os.ReadFile(s.stack.LogPath("safekeeper-bridge"))
		require.NoError(t, err)
		return strings.Count(string(logs), "msg=streaming")
	}
	require.Eventually(t, func() bool { return streams() == 2 }, 30*time.Second, 50*time.Millisecond, "the bridge must reconnect to the standby")

	out, err = primary.Run(ctx, "pg_ctl", "promote", "-w", "-D", primary.DataDir)
	require.NoError(t, err, string(out))
	require.Equal(t, "00000002", primary.Query(t, "postgres", tliSQL))
	out, err = primary.Run(ctx, "pgbench", "-c", "2", "-T", "2", "-n", "postgres")
	require.NoError(t, err, string(out))
	primary.Exec(t, "postgres", "CREATE TABLE after_promotion AS SELECT g FROM generate_series(1, 1000) g")

	final := lsn.MustParse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
	s.waitIngested(ctx, ref, final, time.Minute)
	st := s.status(ctx, ref)
	require.Equal(t, "streaming", st.GetState(), st.GetError())
	logs, err := os.ReadFile(s.stack.LogPath("safekeeper-bridge"))
	require.NoError(t, err)
	require.Regexp(t, `msg=streaming .*timeline=1 (.|\n)*msg=streaming .*timeline=1 (.|\n)*ended the stream(.|\n)*msg=streaming .*timeline=2 `, string(logs),
		"the bridge streams timeline 1 from the primary, then from the standby until the switch point, then timeline 2")
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, "msg=streaming") || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Logf("bridge: %s", line)
		}
	}

	archive := s.fullbackup(ctx, ref, final)
	want := primary.Query(t, "postgres", fingerprintSQL)
	dst := bootBackup(t, archive)
	require.Equal(t, want, dst.Query(t, "postgres", fingerprintSQL))
	require.Equal(t, "1000", dst.Query(t, "postgres", "SELECT count(*) FROM after_promotion"))
	require.Equal(t, "00000002", dst.Query(t, "postgres", tliSQL), "the fullbackup continues the promoted timeline")
	dst.Stop(t)
}

// TestPrimaryTimelineDiverged: the primary fails over to a server that was
// behind — its new timeline forks before the end of what the bridge has
// spooled (and the pageserver ingested). The bridge must not splice the
// new timeline's WAL after the old one's: it stops the timeline with an
// error naming both timelines, the switch point and the spooled end, and
// the pageserver gets nothing of the new timeline.
func TestPrimaryTimelineDiverged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real services")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, primary, ref := attachedPrimary(ctx, t)

	// A copy of the server as it is now, taken while it is down: the
	// "standby that was behind".
	primary.Crash(t)
	behind := primary.DataDir + ".behind"
	out, err := exec.Command("cp", "-a", primary.DataDir, behind).CombinedOutput()
	require.NoError(t, err, string(out))
	primary.Restart(t)
	out, err = primary.Run(ctx, "pgbench", "-c", "2", "-T", "2", "-n", "postgres")
	require.NoError(t, err, string(out))
	spooledEnd := lsn.MustParse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
	s.waitIngested(ctx, ref, spooledEnd, time.Minute)

	// Fail over to the copy: it replays its WAL and is promoted.
	primary.Crash(t)
	require.NoError(t, os.Rename(primary.DataDir, primary.DataDir+".lost"))
	require.NoError(t, os.Rename(behind, primary.DataDir))
	restartAsStandby(t, primary)
	out, err = primary.Run(ctx, "pg_ctl", "promote", "-w", "-D", primary.DataDir)
	require.NoError(t, err, string(out))
	forked := lsn.MustParse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
	require.Less(t, forked, spooledEnd, "the promoted copy must be behind what the bridge spooled")
	primary.Exec(t, "postgres", "CREATE TABLE only_on_timeline_2 AS SELECT g FROM generate_series(1, 1000) g")

	var msg string
	require.Eventually(t, func() bool {
		st := s.status(ctx, ref)
		msg = st.GetState() + ": " + st.GetError()
		return st.GetState() == "error"
	}, time.Minute, 50*time.Millisecond, "last status %s", msg)
	t.Logf("status: %s", msg)
	require.Contains(t, msg, "the primary's new timeline diverged from the spooled WAL")
	require.Contains(t, msg, "switched from timeline 1 to 2 at")
	info, err := s.timeline(ctx, ref)
	require.NoError(t, err)
	require.LessOrEqual(t, lsn.LSN(info.GetLastRecordLsn()), spooledEnd, "nothing of timeline 2 may reach the pageserver")
}

// attachedPrimary starts the services and a primary with pgbench tables,
// and attaches the primary through the bridge.
func attachedPrimary(ctx context.Context, t *testing.T) (*procStack, *pgtest.Server, *pb.TimelineRef) {
	t.Helper()
	binDir, ext := buildServices(t)
	s := startStack(t, binDir, ext, killPageserverConf)
	primary := pgtest.Start(t, pgtest.Options{})
	out, err := primary.Run(ctx, "pgbench", "-i", "-s", "1", "-q", "postgres")
	require.NoError(t, err, string(out))
	return s, primary, s.attach(ctx, primary)
}

// restartAsStandby starts the stopped server with a standby.signal: it
// replays the WAL in its pg_wal and stays in recovery until promoted.
func restartAsStandby(t *testing.T, srv *pgtest.Server) {
	t.Helper()
	owner, err := os.Stat(srv.DataDir)
	require.NoError(t, err)
	sys := owner.Sys().(*syscall.Stat_t)
	signal := filepath.Join(srv.DataDir, "standby.signal")
	require.NoError(t, os.WriteFile(signal, nil, 0o600))
	require.NoError(t, os.Chown(signal, int(sys.Uid), int(sys.Gid)))
	srv.Restart(t)
}
