package pgproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/internal/pgtypes"
	pageserverv1 "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pgproxy/pagestream"
)

// Resource manager ids whose rm_mask the page comparison uses.
const (
	rmHeap  = 10
	rmBtree = 11
)

// primaryRel is one relation of the primary's database, as on its disk.
type primaryRel struct {
	name     string
	filenode uint32
	rmid     uint8
	// file is the main fork's content after the clean shutdown.
	file []byte
}

// realWorld is a real primary (cleanly stopped at the end of setup), the
// real pageserver holding its history up to at, and pgproxy in jwt mode.
type realWorld struct {
	keys     keys
	psAddr   string
	ref      *pageserverv1.TimelineRef
	otherRef *pageserverv1.TimelineRef // tenant A of the auth matrix
	at       lsn.LSN
	dbOid    uint32
	rels     []primaryRel
	// relFiles are the sizes of every relation file (all forks, all
	// segments) of the database directory, by file name.
	relFiles map[string]int64
	clog0    []byte
	// queries are checks of the data with the primary's answers.
	queries map[string]string
}

// TestRealPageserver: pgproxy in front of the real pageserver fed by a real
// primary (issue 8's acceptance): pagestream v2/v3 against the primary's
// files, `psql -c "fullbackup …" -o x.tar` booting vanilla PostgreSQL, and
// the auth matrix both through pgproxy and on the pageserver's gRPC.
func TestRealPageserver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := setupRealWorld(t, ctx)
	proxyAddr := startProxy(t, w.psAddr, auth.ModeJWT, w.keys)
	tenantTok := w.keys.token(t, auth.ScopeTenant, w.ref.TenantId)

	for _, v := range []pagestream.Version{pagestream.V2, pagestream.V3} {
		t.Run(fmt.Sprintf("pagestream v%d", v), func(t *testing.T) {
			c, err := pagestream.Connect(ctx, proxyConnString(proxyAddr, tenantTok), v, w.ref.TenantId, w.ref.TimelineId)
			require.NoError(t, err)
			defer c.Close()
			checkPagestream(t, ctx, c, w)
		})
	}

	t.Run("psql fullbackup boots", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "x.tar")
		msg, err := psqlAt(proxyAddr.Port, tenantTok, fmt.Sprintf("fullbackup %s %s %s", w.ref.TenantId, w.ref.TimelineId, w.at), "-o", out)
		require.NoError(t, err, msg)
		archive, err := os.ReadFile(out)
		require.NoError(t, err)
		dst := pgtest.Start(t, pgtest.Options{})
		dst.Stop(t)
		restoreInto(t, dst.DataDir, archive)
		dst.Restart(t)
		for q, want := range w.queries {
			require.Equal(t, want, dst.Query(t, "postgres", q), q)
		}
	})

	t.Run("auth matrix through pgproxy", func(t *testing.T) {
		authMatrixProxy(t, ctx, w, proxyAddr)
	})
	t.Run("auth matrix on the pageserver's gRPC", func(t *testing.T) {
		authMatrixGRPC(t, ctx, w)
	})
}

// setupRealWorld builds the world of TestRealPageserver.
func setupRealWorld(t *testing.T, ctx context.Context) *realWorld {
	// No autovacuum: nothing may change the primary (pages, CLOG) between
	// the final LSN and the clean shutdown.
	primary := pgtest.Start(t, pgtest.Options{Conf: map[string]string{"autovacuum": "off"}})
	const slot = "strata_pgproxy_e2e"
	primary.Query(t, "postgres", fmt.Sprintf("SELECT lsn FROM pg_create_physical_replication_slot('%s', true)", slot))
	primary.Exec(t, "postgres", `CREATE TABLE before_backup (id int PRIMARY KEY, v text);
INSERT INTO before_backup SELECT g, md5(g::text) FROM generate_series(1, 5000) g;`)

	w := &realWorld{keys: newKeys(t)}
	w.psAddr = startRealPageserver(t, auth.ModeJWT, w.keys)
	admin := dialGRPC(t, w.psAddr, w.keys.token(t, auth.ScopePageserverAPI, ""))
	mgmt := pageserverv1.NewManagementServiceClient(admin)
	w.ref, _ = importBaseBackup(t, ctx, primary, mgmt, "e2e")
	other, err := mgmt.CreateTenant(ctx, &pageserverv1.CreateTenantRequest{})
	require.NoError(t, err)
	w.otherRef = &pageserverv1.TimelineRef{TenantId: other.Tenant.TenantId, TimelineId: ids.NewTimelineID().String()}
	stopBridge, bridgeStatus := streamWAL(t, ctx, primary, w.psAddr, slot, w.keys.token(t, auth.ScopeSafekeeperData, ""), w.ref)

	// WAL after the import: pages the pageserver must reconstruct with
	// walredo, a new relation, an index, deletes, a VACUUM, aborted and
	// committed transactions in the CLOG.
	primary.Exec(t, "postgres", `CREATE TABLE after_backup (id int PRIMARY KEY, v text, n numeric);
INSERT INTO after_backup SELECT g, repeat(md5(g::text), 3), g * 1.5 FROM generate_series(1, 20000) g;
UPDATE before_backup SET v = 'updated' WHERE id % 7 = 0;
DELETE FROM after_backup WHERE id % 11 = 0;
CREATE INDEX after_backup_v ON after_backup (v);
VACUUM after_backup;
BEGIN; INSERT INTO before_backup VALUES (-1, 'aborted'); ROLLBACK;`)
	for i := 0; i < 50; i++ {
		primary.Exec(t, "postgres", fmt.Sprintf("INSERT INTO before_backup VALUES (%d, 'tx')", 100000+i))
	}
	w.queries = map[string]string{}
	for _, q := range []string{
		"SELECT count(*), sum(n), md5(string_agg(v, ',' ORDER BY id)) FROM after_backup",
		"SELECT count(*) FILTER (WHERE v = 'updated'), count(*) FILTER (WHERE v = 'tx'), count(*) FILTER (WHERE v = 'aborted') FROM before_backup",
	} {
		w.queries[q] = primary.Query(t, "postgres", q)
	}
	w.dbOid = uint32(mustUint(t, primary.Query(t, "postgres", "SELECT oid FROM pg_database WHERE datname = 'postgres'")))
	// Every permanent heap or btree relation of the database (catalogs
	// included), with its file node (mapped catalogs resolved).
	list := primary.Query(t, "postgres", `SELECT c.relname, pg_relation_filenode(c.oid), a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
WHERE c.relpersistence = 'p' AND c.reltablespace = 0 AND a.amname IN ('heap', 'btree') AND pg_relation_filenode(c.oid) IS NOT NULL ORDER BY 1`)
	for _, line := range strings.Split(list, "\n") {
		f := strings.Split(line, "|")
		require.Len(t, f, 3, line)
		r := primaryRel{name: f[0], filenode: uint32(mustUint(t, f[1])), rmid: rmHeap}
		if f[2] == "btree" {
			r.rmid = rmBtree
		}
		w.rels = append(w.rels, r)
	}
	require.Greater(t, len(w.rels), 50, "catalogs and user relations")

	// A clean shutdown writes every dirty page and the CLOG, and its
	// checkpoint record is the last WAL the walsender sends: the final LSN
	// is the end of that record, so the pageserver's view at w.at and the
	// primary's files describe the same state (reads before the shutdown
	// may still have WAL-logged page pruning).
	primary.Stop(t)
	out, err := primary.Run(ctx, "pg_controldata", "-D", primary.DataDir)
	require.NoError(t, err, "%s", out)
	var checkpointLSN lsn.LSN
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Latest checkpoint location:"); ok {
			checkpointLSN, err = lsn.Parse(strings.TrimSpace(v))
			require.NoError(t, err, line)
		}
	}
	require.NotZero(t, checkpointLSN, "pg_controldata: %s", out)
	waitIngested(t, ctx, mgmt, w.ref, checkpointLSN+1, bridgeStatus)
	stopBridge()
	tl, err := mgmt.GetTimeline(ctx, &pageserverv1.GetTimelineRequest{Timeline: w.ref})
	require.NoError(t, err)
	w.at = lsn.LSN(tl.Timeline.LastRecordLsn)
	t.Logf("shutdown checkpoint at %s, pageserver at %s", checkpointLSN, w.at)
	dbDir := filepath.Join(primary.DataDir, "base", strconv.Itoa(int(w.dbOid)))
	for i := range w.rels {
		w.rels[i].file, err = os.ReadFile(filepath.Join(dbDir, strconv.Itoa(int(w.rels[i].filenode))))
		require.NoError(t, err, w.rels[i].name)
	}
	entries, err := os.ReadDir(dbDir)
	require.NoError(t, err)
	w.relFiles = map[string]int64{}
	for _, e := range entries {
		if e.Name() == "" || e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue // PG_VERSION, pg_filenode.map, pg_internal.init
		}
		info, err := e.Info()
		require.NoError(t, err)
		w.relFiles[e.Name()] = info.Size()
	}
	w.clog0, err = os.ReadFile(filepath.Join(primary.DataDir, "pg_xact", "0000"))
	require.NoError(t, err)
	return w
}

// checkPagestream drives every request type at w.at and compares with the
// primary.
func checkPagestream(t *testing.T, ctx context.Context, c *pagestream.Client, w *realWorld) {
	mask := newMaskPool(t)
	tid, err := ids.ParseTenantID(w.ref.TenantId)
	require.NoError(t, err)
	var reqID uint64
	req := func(r pagestream.Request) pagestream.Request {
		reqID++
		r.ReqID, r.RequestLSN, r.NotModifiedSince = reqID, w.at, w.at
		return r
	}
	relTag := func(filenode uint32, fork pgtypes.ForkNumber) pgtypes.RelTag {
		return pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: pgtypes.Oid(w.dbOid), RelNode: pgtypes.Oid(filenode), ForkNum: fork}
	}
	do := func(r pagestream.Request) pagestream.Response {
		t.Helper()
		resp, err := c.Do(&r)
		require.NoError(t, err, "%s", r.Tag)
		if c.Version() == pagestream.V3 {
			require.Equal(t, r, resp.Req, "the V3 echo")
		}
		return resp
	}

	var pages, relBytes int
	for _, rel := range w.rels {
		tag := relTag(rel.filenode, pgtypes.MainForkNum)
		resp := do(req(pagestream.Request{Tag: pagestream.TagExists, Rel: tag}))
		require.Equal(t, pagestream.TagExistsResponse, resp.Tag, resp.Message)
		require.True(t, resp.Exists, rel.name)
		resp = do(req(pagestream.Request{Tag: pagestream.TagNblocks, Rel: tag}))
		require.Equal(t, pagestream.TagNblocksResponse, resp.Tag, resp.Message)
		require.Equal(t, uint32(len(rel.file)/pgtypes.BLCKSZ), resp.NBlocks, "Nblocks of %s = pg_relation_size/8192", rel.name)

		// Every block, pipelined 32 at a time, masked like the walredo
		// tests do (hint bits, LSNs, checksums and free space differ
		// legitimately).
		n := resp.NBlocks
		for first := uint32(0); first < n; first += 32 {
			last := min(first+32, n)
			var sent []pagestream.Request
			for blk := first; blk < last; blk++ {
				r := req(pagestream.Request{Tag: pagestream.TagGetPage, Rel: tag, BlockNo: blk})
				require.NoError(t, c.Send(&r))
				sent = append(sent, r)
			}
			require.NoError(t, c.Flush())
			for _, r := range sent {
				resp, err := c.Receive()
				require.NoError(t, err)
				require.Equal(t, pagestream.TagGetPageResponse, resp.Tag, "%s blk %d: %s", rel.name, r.BlockNo, resp.Message)
				if c.Version() == pagestream.V3 {
					require.Equal(t, r, resp.Req)
				}
				want := rel.file[int(r.BlockNo)*pgtypes.BLCKSZ : int(r.BlockNo+1)*pgtypes.BLCKSZ]
				gotM, wantM := make([]byte, pgtypes.BLCKSZ), make([]byte, pgtypes.BLCKSZ)
				require.NoError(t, mask.Mask(ctx, tid, rel.rmid, r.BlockNo, resp.Page, gotM))
				require.NoError(t, mask.Mask(ctx, tid, rel.rmid, r.BlockNo, want, wantM))
				require.True(t, bytes.Equal(wantM, gotM), "%s block %d differs from the primary's (masked)", rel.name, r.BlockNo)
				pages++
			}
		}
	}
	t.Logf("%d relations, %d pages equal the primary's (masked)", len(w.rels), pages)

	// Exists of a relation that never existed, and of a fork never created.
	resp := do(req(pagestream.Request{Tag: pagestream.TagExists, Rel: relTag(999999, pgtypes.MainForkNum)}))
	require.Equal(t, pagestream.TagExistsResponse, resp.Tag, resp.Message)
	require.False(t, resp.Exists)

	// DbSize is Neon's: the blocks of every relation fork the pageserver
	// knows in the database × 8192. It must equal the sum of the
	// primary's relation files of all forks whose fork exists on the
	// pageserver, where the main forks were already checked block for
	// block. (FSM forks are not WAL-logged by a vanilla primary, so one
	// created after the import is unknown to the pageserver and the
	// primary's file is not counted; a fork that exists is compared by
	// Nblocks.)
	var wantDb, primaryAll int64
	for name, size := range w.relFiles {
		primaryAll += size
		base, segment, _ := strings.Cut(name, ".")
		if segment != "" {
			continue // segments beyond 1 GB: counted through Nblocks below
		}
		node, forkName, _ := strings.Cut(base, "_")
		fork := map[string]pgtypes.ForkNumber{"": pgtypes.MainForkNum, "fsm": pgtypes.FSMForkNum, "vm": pgtypes.VisibilityMapForkNum, "init": pgtypes.InitForkNum}[forkName]
		tag := relTag(uint32(mustUint(t, node)), fork)
		resp := do(req(pagestream.Request{Tag: pagestream.TagExists, Rel: tag}))
		require.Equal(t, pagestream.TagExistsResponse, resp.Tag, resp.Message)
		if !resp.Exists {
			require.Equal(t, pgtypes.FSMForkNum, fork, "only FSM forks may be unknown to the pageserver: %s", name)
			continue
		}
		resp = do(req(pagestream.Request{Tag: pagestream.TagNblocks, Rel: tag}))
		require.Equal(t, pagestream.TagNblocksResponse, resp.Tag, resp.Message)
		if fork == pgtypes.MainForkNum {
			require.Equal(t, size/pgtypes.BLCKSZ, int64(resp.NBlocks), name)
		}
		wantDb += int64(resp.NBlocks) * pgtypes.BLCKSZ
		relBytes += int(size)
	}
	resp = do(req(pagestream.Request{Tag: pagestream.TagDbSize, DbNode: pgtypes.Oid(w.dbOid)}))
	require.Equal(t, pagestream.TagDbSizeResponse, resp.Tag, resp.Message)
	require.Equal(t, wantDb, resp.DbSize, "DbSize = Σ Nblocks × 8192 over the database's relation forks")
	require.Equal(t, int64(relBytes), resp.DbSize, "DbSize = the primary's relation files of the forks the pageserver knows")
	t.Logf("DbSize %d; primary's relation files %d (those the pageserver knows: %d)", resp.DbSize, primaryAll, relBytes)

	// CLOG segment 0 equals the primary's pg_xact/0000 after its clean
	// shutdown.
	resp = do(req(pagestream.Request{Tag: pagestream.TagGetSlruSegment, Kind: pagestream.SlruClog, SegNo: 0}))
	require.Equal(t, pagestream.TagGetSlruSegmentResponse, resp.Tag, resp.Message)
	require.Equal(t, len(w.clog0), len(resp.Segment))
	require.True(t, bytes.Equal(w.clog0, resp.Segment), "CLOG segment 0 differs from pg_xact/0000")

	// An LSN before the timeline's start is a per-request error that
	// leaves the stream open.
	bad := req(pagestream.Request{Tag: pagestream.TagNblocks, Rel: relTag(w.rels[0].filenode, pgtypes.MainForkNum)})
	bad.RequestLSN, bad.NotModifiedSince = 0x10, 0x10
	resp, err = c.Do(&bad)
	require.ErrorIs(t, err, pagestream.ErrServer)
	require.Equal(t, pagestream.TagErrorResponse, resp.Tag)
	resp = do(req(pagestream.Request{Tag: pagestream.TagExists, Rel: relTag(w.rels[0].filenode, pgtypes.MainForkNum)}))
	require.True(t, resp.Exists, "the stream survives a per-request error")
}

// psqlAt runs the real psql against pgproxy on port with token as password.
func psqlAt(port int, token, command string, extra ...string) (string, error) {
	bin, err := pgtest.BinDir()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"-X", "-w", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "compute", "-d", "postgres"}, extra...)
	args = append(args, "-c", command)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "psql"), args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+token, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// restoreInto replaces dataDir's content with the tar, keeping that
// cluster's postgresql.conf and pg_hba.conf (its port and socket) and
// owner.
func restoreInto(t *testing.T, dataDir string, archive []byte) {
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
	untar(t, archive, dataDir, int(sys.Uid), int(sys.Gid))
	for name, data := range keep {
		path := filepath.Join(dataDir, name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		if os.Geteuid() == 0 {
			require.NoError(t, os.Lchown(path, int(sys.Uid), int(sys.Gid)))
		}
	}
}

// credential is one row of the auth matrix.
type credential struct {
	name     string
	password string
	// want is the SQLSTATE per command through pgproxy ("" = success).
	want [4]string
}

var matrixCommands = []string{"pagestream", "fullbackup", "tenant_create", "branch_create"}

func matrixRows(t *testing.T, w *realWorld) []credential {
	expired, err := auth.Issue(w.keys.priv, &auth.Claims{Scope: auth.ScopePageserverAPI,
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour))}})
	require.NoError(t, err)
	const ok = ""
	return []credential{
		{"no password", "", [4]string{"28P01", "28P01", "28P01", "28P01"}},
		{"garbage", "not-a-jwt", [4]string{"28P01", "28P01", "28P01", "28P01"}},
		{"wrong key", wrongKeyToken(t), [4]string{"28P01", "28P01", "28P01", "28P01"}},
		{"expired", expired, [4]string{"28P01", "28P01", "28P01", "28P01"}},
		{"tenant A on B", w.keys.token(t, auth.ScopeTenant, w.otherRef.TenantId), [4]string{"28000", "28000", "28000", "28000"}},
		{"tenant B on B", w.keys.token(t, auth.ScopeTenant, w.ref.TenantId), [4]string{ok, ok, "28000", ok}},
		{"pageserverapi", w.keys.token(t, auth.ScopePageserverAPI, ""), [4]string{ok, ok, ok, ok}},
		{"safekeeperdata", w.keys.token(t, auth.ScopeSafekeeperData, ""), [4]string{"28000", "28000", "28000", "28000"}},
	}
}

// authMatrixProxy: every cell through pgproxy, all naming tenant B (the
// imported timeline).
func authMatrixProxy(t *testing.T, ctx context.Context, w *realWorld, proxyAddr *net.TCPAddr) {
	conn := func(password string) string { return proxyConnString(proxyAddr, password) }
	run := func(ctx context.Context, password, command string) error {
		if command == "pagestream" {
			c, err := pagestream.Connect(ctx, conn(password), pagestream.V3, w.ref.TenantId, w.ref.TimelineId)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Do(&pagestream.Request{Tag: pagestream.TagDbSize, ReqID: 1, RequestLSN: w.at, NotModifiedSince: w.at, DbNode: pgtypes.Oid(w.dbOid)})
			return err
		}
		pc, err := pgconn.Connect(ctx, conn(password))
		if err != nil {
			return err
		}
		defer pc.Close(ctx)
		switch command {
		case "fullbackup":
			_, err = pc.CopyTo(ctx, io.Discard, fmt.Sprintf("fullbackup %s %s %s", w.ref.TenantId, w.ref.TimelineId, w.at))
		case "tenant_create":
			_, err = pc.Exec(ctx, "tenant_create").ReadAll()
		case "branch_create":
			_, err = pc.Exec(ctx, fmt.Sprintf("branch_create %s auto %s %s", w.ref.TenantId, w.ref.TimelineId, w.at)).ReadAll()
		}
		return err
	}
	for _, row := range matrixRows(t, w) {
		for i, command := range matrixCommands {
			t.Run(row.name+"/"+command, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				err := run(ctx, row.password, command)
				if row.want[i] == "" {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				require.Equal(t, row.want[i], pgCode(err), "error: %v", err)
			})
		}
	}
}

// grpcCodeFor maps pgproxy's SQLSTATE of a matrix cell to the gRPC code the
// pageserver itself must return for the same call.
func grpcCodeFor(sqlstate string) codes.Code {
	switch sqlstate {
	case "28P01":
		return codes.Unauthenticated
	case "28000":
		return codes.PermissionDenied
	}
	return codes.OK
}

// authMatrixGRPC: the same matrix on the pageserver's gRPC directly, with
// the credential as bearer token (defence in depth: pgproxy is not the
// only check).
func authMatrixGRPC(t *testing.T, ctx context.Context, w *realWorld) {
	run := func(ctx context.Context, page pageserverv1.PageServiceClient, mgmt pageserverv1.ManagementServiceClient, command string) error {
		switch command {
		case "pagestream":
			st, err := page.GetPages(ctx)
			if err != nil {
				return err
			}
			err = st.Send(&pageserverv1.GetPagesRequest{RequestId: 1, Timeline: w.ref, ReadLsn: &pageserverv1.ReadLsn{RequestLsn: uint64(w.at)},
				Rel: protoRel(pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: pgtypes.Oid(w.dbOid), RelNode: pgtypes.Oid(w.rels[0].filenode)}), BlockNumbers: []uint32{0}})
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			resp, err := st.Recv()
			if err != nil {
				return err
			}
			_ = st.CloseSend()
			switch resp.StatusCode {
			case pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK:
				return nil
			case pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_PERMISSION_DENIED:
				// Per-request status of the stream (the stream itself is
				// authenticated): a refusal of the tenant.
				return status.Error(codes.PermissionDenied, resp.Reason)
			}
			return fmt.Errorf("GetPages status %s: %s", resp.StatusCode, resp.Reason)
		case "fullbackup":
			st, err := page.GetBaseBackup(ctx, &pageserverv1.GetBaseBackupRequest{Timeline: w.ref, Lsn: uint64(w.at), Full: true})
			if err != nil {
				return err
			}
			for {
				_, err := st.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
			}
		case "tenant_create":
			_, err := mgmt.CreateTenant(ctx, &pageserverv1.CreateTenantRequest{})
			return err
		case "branch_create":
			_, err := mgmt.CreateTimeline(ctx, &pageserverv1.CreateTimelineRequest{TenantId: w.ref.TenantId, Mode: &pageserverv1.CreateTimelineRequest_Branch_{
				Branch: &pageserverv1.CreateTimelineRequest_Branch{AncestorTimelineId: w.ref.TimelineId, AncestorLsn: uint64(w.at)}}})
			return err
		}
		return errors.New("unknown command " + command)
	}
	for _, row := range matrixRows(t, w) {
		cc := dialGRPC(t, w.psAddr, row.password)
		page, mgmt := pageserverv1.NewPageServiceClient(cc), pageserverv1.NewManagementServiceClient(cc)
		for i, command := range matrixCommands {
			t.Run(row.name+"/"+command, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				err := run(ctx, page, mgmt, command)
				want := grpcCodeFor(row.want[i])
				if want == codes.OK {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				require.Equal(t, want.String(), status.Code(err).String(), "error: %v", err)
			})
		}
	}
}
