package pageserver

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	bridge "github.com/stratadb/strata/services/safekeeper-bridge"
	"github.com/stratadb/strata/services/walredo/pgext"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/process"
)

const (
	rmHeap  = 10
	rmBtree = 11
)

// TestEndToEndWithBridge: a real PG15 primary; its base backup imported
// through ManagementService.ImportBaseBackup; later WAL streamed by the
// safekeeper-bridge through IngestService; pages, sizes and a bootable
// fullbackup compared with the primary.
func TestEndToEndWithBridge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	primary := pgtest.Start(t, pgtest.Options{})
	const slot = "strata_e2e"
	primary.Query(t, "postgres", fmt.Sprintf("SELECT lsn FROM pg_create_physical_replication_slot('%s', true)", slot))
	primary.Exec(t, "postgres", `CREATE TABLE before_backup (id int PRIMARY KEY, v text);
INSERT INTO before_backup SELECT g, md5(g::text) FROM generate_series(1, 5000) g;`)

	// pg_basebackup -Ft into a directory the cluster's OS user owns.
	backupDir := filepath.Join(filepath.Dir(primary.DataDir), "backup")
	out, err := primary.Run(ctx, "pg_basebackup", "-h", primary.Host, "-p", strconv.Itoa(primary.Port), "-U", primary.User,
		"-D", backupDir, "-Ft", "-X", "none", "--no-manifest", "-c", "fast")
	require.NoError(t, err, "pg_basebackup: %s", out)
	baseTar, err := os.ReadFile(filepath.Join(backupDir, "base.tar"))
	require.NoError(t, err)

	cfg := testConfig(t)
	token := withJWT(t, &cfg)
	ps := startPageserver(t, cfg)
	api := newClients(dialToken(t, cfg.ListenAddr, token(auth.ScopePageserverAPI, "")))
	tr, err := api.mgmt.CreateTenant(ctx, &pb.CreateTenantRequest{})
	require.NoError(t, err)
	tenantID := tr.Tenant.TenantId
	timelineID := ids.NewTimelineID().String()

	imp, err := api.mgmt.ImportBaseBackup(ctx)
	require.NoError(t, err)
	require.NoError(t, imp.Send(&pb.ImportBaseBackupRequest{Part: &pb.ImportBaseBackupRequest_Header{Header: &pb.ImportBaseBackupRequest_ImportHeader{TenantId: tenantID, TimelineId: timelineID}}}))
	for chunk := range slices(baseTar, 256<<10) {
		require.NoError(t, imp.Send(&pb.ImportBaseBackupRequest{Part: &pb.ImportBaseBackupRequest_BaseTarChunk{BaseTarChunk: chunk}}))
	}
	impResp, err := imp.CloseAndRecv()
	require.NoError(t, err)
	require.NotZero(t, impResp.Timeline.StartLsn)
	t.Logf("imported at %s", lsn.LSN(impResp.Timeline.StartLsn))
	ref := &pb.TimelineRef{TenantId: tenantID, TimelineId: timelineID}

	// The bridge streams the primary's WAL from the slot.
	t.Setenv("STRATA_E2E_PRIMARY", primary.ReplicationConnString())
	t.Setenv(bridge.TokenEnv, token(auth.ScopeSafekeeperData, ""))
	bcfg := bridge.DefaultConfig()
	bcfg.SpoolDir = t.TempDir()
	bcfg.PageserverAddr = cfg.ListenAddr
	bcfg.MetricsAddr = ""
	bcfg.Timelines = []bridge.TimelineConfig{{TenantID: tenantID, TimelineID: timelineID, PrimaryConnEnv: "STRATA_E2E_PRIMARY", SlotName: slot}}
	b, err := bridge.New(bcfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	bctx, bcancel := context.WithCancel(ctx)
	bdone := make(chan struct{})
	go func() { defer close(bdone); _ = b.Run(bctx) }()
	defer func() { bcancel(); <-bdone }()

	primary.Exec(t, "postgres", `CREATE TABLE after_backup (id int PRIMARY KEY, v text, n numeric);
INSERT INTO after_backup SELECT g, repeat(md5(g::text), 3), g * 1.5 FROM generate_series(1, 20000) g;
UPDATE before_backup SET v = 'updated' WHERE id % 7 = 0;
DELETE FROM after_backup WHERE id % 11 = 0;
CREATE INDEX after_backup_v ON after_backup (v);
VACUUM after_backup;`)
	primary.Checkpoint(t)
	target := primary.CurrentWALLSN(t)

	var info *pb.TimelineInfo
	require.Eventually(t, func() bool {
		r, err := api.mgmt.GetTimeline(ctx, &pb.GetTimelineRequest{Timeline: ref})
		require.NoError(t, err)
		info = r.Timeline
		return lsn.LSN(info.LastRecordLsn) >= target
	}, 3*time.Minute, 100*time.Millisecond, "the bridge must deliver WAL up to %s; status %+v", target, b.Status())
	at := target

	// A second ingest stream replaces the bridge's one (which reconnects).
	t.Run("second ingest stream replaces the first", func(t *testing.T) {
		st, err := api.ing.Ingest(ctx)
		require.NoError(t, err)
		require.NoError(t, st.Send(&pb.IngestRequest{Message: &pb.IngestRequest_Start{Start: &pb.IngestStart{Timeline: ref, Source: "test"}}}))
		r, err := st.Recv()
		require.NoError(t, err)
		require.NotNil(t, r.GetReady())
		require.LessOrEqual(t, r.GetReady().StartLsn, r.GetReady().Progress.LastRecordLsn)
		require.NoError(t, st.CloseSend())
		for err == nil {
			_, err = st.Recv()
		}
		require.ErrorIs(t, err, io.EOF)
	})

	// Pages equal the primary's data files (after its checkpoint), masked.
	redo := newMaskPool(t)
	tid, err := ids.ParseTenantID(tenantID)
	require.NoError(t, err)
	dbOid := uint32(mustUint(t, primary.Query(t, "postgres", "SELECT oid FROM pg_database WHERE datname = 'postgres'")))
	for _, rel := range []struct {
		name string
		rmid uint8
	}{{"before_backup", rmHeap}, {"after_backup", rmHeap}, {"after_backup_v", rmBtree}, {"before_backup_pkey", rmBtree}} {
		t.Run("pages of "+rel.name, func(t *testing.T) {
			filenode := uint32(mustUint(t, primary.Query(t, "postgres", fmt.Sprintf("SELECT relfilenode FROM pg_class WHERE relname = '%s'", rel.name))))
			nblocks := mustUint(t, primary.Query(t, "postgres", fmt.Sprintf("SELECT pg_relation_size('%s') / 8192", rel.name)))
			size, err := api.page.GetRelSize(ctx, &pb.GetRelSizeRequest{Timeline: ref, ReadLsn: &pb.ReadLsn{RequestLsn: uint64(at)}, Rel: mainRel(dbOid, filenode)})
			require.NoError(t, err)
			require.Equal(t, nblocks, uint64(size.NumBlocks))
			file, err := os.ReadFile(filepath.Join(primary.DataDir, "base", strconv.Itoa(int(dbOid)), strconv.Itoa(int(filenode))))
			require.NoError(t, err)
			var blocks []uint32
			for blk := uint32(0); blk < size.NumBlocks; blk += max(1, size.NumBlocks/12) {
				blocks = append(blocks, blk)
			}
			blocks = append(blocks, size.NumBlocks-1)
			st, err := api.page.GetPages(ctx)
			require.NoError(t, err)
			require.NoError(t, st.Send(&pb.GetPagesRequest{RequestId: 1, Timeline: ref, ReadLsn: &pb.ReadLsn{RequestLsn: uint64(at)}, Rel: mainRel(dbOid, filenode), BlockNumbers: blocks}))
			resp, err := st.Recv()
			require.NoError(t, err)
			require.Equal(t, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK, resp.StatusCode, resp.Reason)
			require.NoError(t, st.CloseSend())
			for i, p := range resp.Pages {
				blk := blocks[i]
				want := file[int(blk)*8192 : int(blk+1)*8192]
				gotM, wantM := make([]byte, 8192), make([]byte, 8192)
				require.NoError(t, redo.Mask(ctx, tid, rel.rmid, blk, p.Image, gotM))
				require.NoError(t, redo.Mask(ctx, tid, rel.rmid, blk, want, wantM))
				require.True(t, bytes.Equal(wantM, gotM), "%s block %d differs from the primary's (masked)", rel.name, blk)
			}
		})
	}

	t.Run("fullbackup boots", func(t *testing.T) {
		bk, err := recvBackup(ctx, api.page, &pb.GetBaseBackupRequest{Timeline: ref, Lsn: uint64(at), Full: true})
		require.NoError(t, err)
		require.Equal(t, uint64(at), bk.lsn)
		dst := pgtest.Start(t, pgtest.Options{})
		dst.Stop(t)
		restore(t, dst.DataDir, bk.data)
		dst.Restart(t)
		require.Equal(t, primary.Query(t, "postgres", "SELECT count(*), sum(n), md5(string_agg(v, ',' ORDER BY id)) FROM after_backup"),
			dst.Query(t, "postgres", "SELECT count(*), sum(n), md5(string_agg(v, ',' ORDER BY id)) FROM after_backup"))
		require.Equal(t, primary.Query(t, "postgres", "SELECT count(*) FILTER (WHERE v = 'updated') FROM before_backup"),
			dst.Query(t, "postgres", "SELECT count(*) FILTER (WHERE v = 'updated') FROM before_backup"))
	})

	t.Run("branch at the import LSN", func(t *testing.T) {
		_, err := api.mgmt.CreateTimeline(ctx, &pb.CreateTimelineRequest{TenantId: tenantID, Mode: &pb.CreateTimelineRequest_Branch_{
			Branch: &pb.CreateTimelineRequest_Branch{AncestorTimelineId: timelineID, AncestorLsn: uint64(at) + 1<<30}}})
		requireCode(t, codes.OutOfRange, err)
	})
	_ = ps
}

func slices(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	require.NoError(t, err, "%q", s)
	return v
}

// newMaskPool is a walredo pool used only for rm_mask.
func newMaskPool(t *testing.T) *pool.Pool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = pgext.LibraryName
	tmpl, err := process.PrepareTemplate(ctx, process.Config{ExtensionPath: walredoExtension(t), WorkDir: sharedWalredoDir(t)})
	require.NoError(t, err)
	p, err := pool.New(tmpl, pool.Config{MaxChildren: 1, MaxChildrenPerTenant: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// restore replaces dataDir's contents with the tar, keeping its
// postgresql.conf and pg_hba.conf (that server's port and socket) and its
// owner.
func restore(t *testing.T, dataDir string, archive []byte) {
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
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		target := filepath.Join(dataDir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(target, 0o700))
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(target, data, 0o600))
		}
	}
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
