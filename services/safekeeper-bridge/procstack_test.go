package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/localstack"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	bridgev1 "github.com/stratadb/strata/proto/gen/strata/bridge/v1"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// This file holds the helpers of the tests that run the real services as
// processes (kill_test.go, e2e_bench_test.go): the binaries are built with
// `go build`, laid out and started with internal/localstack, and driven
// over their gRPC APIs.

// buildServices builds the four service binaries into a temporary
// directory and the walredo extension into the source tree (as `make
// build` does); it returns the bin dir and the extension's path.
func buildServices(t testing.TB) (binDir, extension string) {
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

// procStack is a localstack stack whose services run as processes.
type procStack struct {
	t      testing.TB
	stack  *localstack.Stack
	binDir string
	addrs  map[string]localstack.Addrs
	conn   *grpc.ClientConn // pageserver, pageserverapi token
	bconn  *grpc.ClientConn // bridge, pageserverapi token
	mgmt   pb.ManagementServiceClient
	page   pb.PageServiceClient
	bridge bridgev1.BridgeServiceClient
}

// startStack initialises a stack in a fresh directory, appends
// pageserverConf (TOML lines) to the pageserver's config, and starts every
// service. The stack is stopped when the test ends.
func startStack(t testing.TB, binDir, ext string, pageserverConf string) *procStack {
	t.Helper()
	return startStackWith(t, binDir, ext, map[string]string{"pageserver": pageserverConf})
}

// startStackWith is startStack with TOML lines appended to the config of
// each service named in confs.
func startStackWith(t testing.TB, binDir, ext string, confs map[string]string) *procStack {
	t.Helper()
	// Parents traversable: walredo's children run as another user when
	// the test runs as root.
	base, err := os.MkdirTemp("", "bridge-proc-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(base, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	res, err := localstack.Init(localstack.InitOptions{Dir: filepath.Join(base, "stack"), WalredoExtension: ext, BinDir: binDir})
	require.NoError(t, err)
	s := &procStack{t: t, stack: res.Stack, binDir: binDir, addrs: res.Addrs}
	for svc, conf := range confs {
		if conf == "" {
			continue
		}
		f, err := os.OpenFile(s.stack.ConfigPath(svc), os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString("\n" + conf + "\n")
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, svc := range []string{"safekeeper-bridge", "pageserver"} {
				data, _ := os.ReadFile(s.stack.LogPath(svc))
				t.Logf("--- %s log (last 40 lines):\n%s", svc, lastLines(string(data), 40))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = s.stack.Stop(ctx, 5*time.Second)
	})
	s.start()

	token, err := s.stack.Token(auth.ScopePageserverAPI)
	require.NoError(t, err)
	dial := func(addr string) *grpc.ClientConn {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(auth.BearerToken(token, false)),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	s.conn = dial(s.addrs["pageserver"].ListenAddr)
	s.bconn = dial(s.addrs["safekeeper-bridge"].ListenAddr)
	s.mgmt = pb.NewManagementServiceClient(s.conn)
	s.page = pb.NewPageServiceClient(s.conn)
	s.bridge = bridgev1.NewBridgeServiceClient(s.bconn)
	return s
}

// start starts every service that is not running and waits for health.
func (s *procStack) start() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, err := s.stack.Start(ctx, localstack.StartOptions{BinDir: s.binDir, ReadyTimeout: 60 * time.Second})
	require.NoError(s.t, err)
}

func (s *procStack) pid(svc string) int {
	s.t.Helper()
	data, err := os.ReadFile(s.stack.PIDPath(svc))
	require.NoError(s.t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(s.t, err)
	return pid
}

// kill SIGKILLs svc's process group and waits until the process is gone.
func (s *procStack) kill(svc string) {
	s.t.Helper()
	pid := s.pid(svc)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	require.Eventually(s.t, func() bool { return syscall.Kill(pid, 0) != nil }, 10*time.Second, 10*time.Millisecond,
		"%s (pid %d) survived SIGKILL", svc, pid)
}

// signal sends sig to svc's process.
func (s *procStack) signal(svc string, sig syscall.Signal) {
	s.t.Helper()
	require.NoError(s.t, syscall.Kill(s.pid(svc), sig))
}

// attach creates a tenant and attaches primary through the bridge with a
// base backup import, then waits until the timeline streams.
func (s *procStack) attach(ctx context.Context, primary *pgtest.Server) *pb.TimelineRef {
	s.t.Helper()
	tr, err := s.mgmt.CreateTenant(ctx, &pb.CreateTenantRequest{})
	require.NoError(s.t, err)
	resp, err := s.bridge.Attach(ctx, &bridgev1.AttachRequest{TenantId: tr.GetTenant().GetTenantId(), PrimaryConninfo: primary.ConnString("postgres"), Import: true})
	require.NoError(s.t, err)
	ref := &pb.TimelineRef{TenantId: resp.GetStatus().GetTenantId(), TimelineId: resp.GetStatus().GetTimelineId()}
	require.NotEmpty(s.t, ref.TimelineId)
	var st *bridgev1.TimelineStatus
	require.Eventually(s.t, func() bool {
		st = s.status(ctx, ref)
		require.Empty(s.t, st.GetError(), "attach failed: %+v", st)
		return st.GetState() == "streaming"
	}, 90*time.Second, 100*time.Millisecond, "timeline never streamed: %+v", st)
	return ref
}

// status is the bridge's status of ref; nil when the bridge does not answer.
func (s *procStack) status(ctx context.Context, ref *pb.TimelineRef) *bridgev1.TimelineStatus {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := s.bridge.GetStatus(cctx, &bridgev1.GetStatusRequest{TenantId: ref.TenantId, TimelineId: ref.TimelineId})
	if err != nil {
		return nil
	}
	return r.GetStatus()
}

// timeline is the pageserver's view of ref, or an error while it is down.
func (s *procStack) timeline(ctx context.Context, ref *pb.TimelineRef) (*pb.TimelineInfo, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := s.mgmt.GetTimeline(cctx, &pb.GetTimelineRequest{Timeline: ref})
	if err != nil {
		return nil, err
	}
	return r.GetTimeline(), nil
}

// waitIngested waits until the pageserver's last_record_lsn reaches target.
func (s *procStack) waitIngested(ctx context.Context, ref *pb.TimelineRef, target lsn.LSN, timeout time.Duration) {
	s.t.Helper()
	var last lsn.LSN
	deadline := time.Now().Add(timeout)
	for {
		if info, err := s.timeline(ctx, ref); err == nil {
			last = lsn.LSN(info.GetLastRecordLsn())
			if last >= target {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("pageserver's last_record_lsn %s never reached %s within %s; bridge status %+v", last, target, timeout, s.status(ctx, ref))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fullbackup fetches GetBaseBackup(full) of ref at at.
func (s *procStack) fullbackup(ctx context.Context, ref *pb.TimelineRef, at lsn.LSN) []byte {
	s.t.Helper()
	stream, err := s.page.GetBaseBackup(ctx, &pb.GetBaseBackupRequest{Timeline: ref, Lsn: uint64(at), Full: true})
	require.NoError(s.t, err)
	var buf bytes.Buffer
	for first := true; ; first = false {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(s.t, err)
		if first {
			require.Equal(s.t, uint64(at), msg.GetLsn())
		}
		buf.Write(msg.GetChunk())
	}
	return buf.Bytes()
}

// bootBackup boots a fresh PostgreSQL on the fullbackup archive.
func bootBackup(t testing.TB, archive []byte) *pgtest.Server {
	t.Helper()
	dst := pgtest.Start(t, pgtest.Options{})
	dst.Stop(t)
	restoreInto(t, dst.DataDir, archive)
	dst.Restart(t)
	return dst
}

// restoreInto replaces dataDir's contents with the tar, keeping its
// postgresql.conf and pg_hba.conf (that server's port and socket) and its
// owner.
func restoreInto(t testing.TB, dataDir string, archive []byte) {
	t.Helper()
	st, err := os.Stat(dataDir)
	require.NoError(t, err)
	sys := st.Sys().(*syscall.Stat_t)
	keep := map[string][]byte{}
	for _, name := range []string{"postgresql.conf", "pg_hba.conf"} {
		keep[name], err = os.ReadFile(filepath.Join(dataDir, name))
		require.NoError(t, err)
	}
	entries, err := os.ReadDir(dataDir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(dataDir, e.Name())))
	}
	_, err = localstack.Untar(bytes.NewReader(archive), dataDir)
	require.NoError(t, err)
	for name, data := range keep {
		require.NoError(t, os.WriteFile(filepath.Join(dataDir, name), data, 0o600))
	}
	require.NoError(t, filepath.Walk(dataDir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(sys.Uid), int(sys.Gid))
	}))
}

// fingerprintSQL is the pgbench tables' row counts and ordered md5s.
const fingerprintSQL = `SELECT
 (SELECT count(*) || ':' || md5(string_agg(a::text, ',' ORDER BY aid)) FROM pgbench_accounts a),
 (SELECT count(*) || ':' || md5(string_agg(b::text, ',' ORDER BY bid)) FROM pgbench_branches b),
 (SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY tid)) FROM pgbench_tellers t),
 (SELECT count(*) || ':' || coalesce(md5(string_agg(h::text, ',' ORDER BY h::text)), '') FROM pgbench_history h)`

// lastLines returns the last n lines of text.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// slotSampler compares the slot's restart_lsn with the pageserver's
// persisted disk_consistent_lsn every 50 ms until stopped. restart_lsn is
// read first: disk_consistent_lsn only grows, so a later read can hide a
// violation but never invent one. It also checks that
// disk_consistent_lsn never goes backwards, across pageserver restarts.
type slotSampler struct {
	samples    int
	violations []string
	maxDCL     lsn.LSN
}

func sampleSlot(ctx context.Context, s *procStack, primary *pgtest.Server, ref *pb.TimelineRef, slot string) *slotSampler {
	out := &slotSampler{}
	var conn *pgconn.PgConn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		if conn == nil || conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := pgconn.Connect(cctx, primary.ConnString("postgres"))
			cancel()
			if err != nil {
				continue // primary down
			}
			conn = c
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		restart, err := queryLSN(qctx, conn, "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '"+slot+"'")
		cancel()
		if err != nil {
			_ = conn.Close(context.Background())
			conn = nil
			continue
		}
		info, err := s.timeline(ctx, ref)
		if err != nil {
			continue // pageserver down
		}
		dcl := lsn.LSN(info.GetDiskConsistentLsn())
		out.samples++
		if restart > dcl {
			out.violations = append(out.violations, fmt.Sprintf("restart_lsn %s > disk_consistent_lsn %s", restart, dcl))
		}
		if dcl < out.maxDCL {
			out.violations = append(out.violations, fmt.Sprintf("disk_consistent_lsn went back from %s to %s", out.maxDCL, dcl))
		}
		out.maxDCL = max(out.maxDCL, dcl)
	}
	return out
}
