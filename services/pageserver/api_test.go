package pageserver

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

const (
	pgClassRelfilenode = 1259 // pg_class, mapped: its relfilenode is its oid
	postgresDB         = 5    // the "postgres" database of a fresh initdb
	templateDB         = 1
)

func mainRel(db, rel uint32) *pb.RelTag {
	return &pb.RelTag{SpcOid: 1663, DbOid: db, RelNumber: rel}
}

func latest() *pb.ReadLsn { return &pb.ReadLsn{RequestLsn: math.MaxUint64} }

// bootstrapped starts a pageserver in jwt mode with one bootstrapped
// tenant/timeline and returns clients with a pageserverapi token.
type fixture struct {
	ps     *running
	token  func(auth.Scope, string) string
	api    clients
	tenant string
	tl     *pb.TimelineInfo
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	cfg := testConfig(t)
	token := withJWT(t, &cfg)
	if mutate != nil {
		mutate(&cfg)
	}
	f := &fixture{ps: startPageserver(t, cfg), token: token}
	f.api = newClients(dialToken(t, cfg.ListenAddr, token(auth.ScopePageserverAPI, "")))
	ctx := context.Background()
	tr, err := f.api.mgmt.CreateTenant(ctx, &pb.CreateTenantRequest{})
	require.NoError(t, err)
	f.tenant = tr.Tenant.TenantId
	resp, err := f.api.mgmt.CreateTimeline(ctx, &pb.CreateTimelineRequest{TenantId: f.tenant, Mode: &pb.CreateTimelineRequest_Bootstrap_{Bootstrap: &pb.CreateTimelineRequest_Bootstrap{}}})
	require.NoError(t, err)
	f.tl = resp.Timeline
	return f
}

func (f *fixture) ref() *pb.TimelineRef {
	return &pb.TimelineRef{TenantId: f.tenant, TimelineId: f.tl.TimelineId}
}

func TestManagementAPI(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	m := f.api.mgmt

	require.Equal(t, "active", f.tl.State)
	require.NotZero(t, f.tl.StartLsn)
	require.GreaterOrEqual(t, f.tl.LastRecordLsn, f.tl.StartLsn)
	require.Equal(t, uint32(15), f.tl.PgVersion)
	require.NotNil(t, f.tl.CreatedAt)

	t.Run("tenants", func(t *testing.T) {
		_, err := m.CreateTenant(ctx, &pb.CreateTenantRequest{TenantId: f.tenant})
		requireCode(t, codes.AlreadyExists, err)
		_, err = m.CreateTenant(ctx, &pb.CreateTenantRequest{TenantId: "XYZ"})
		requireCode(t, codes.InvalidArgument, err)
		other := ids.NewTenantID().String()
		_, err = m.CreateTenant(ctx, &pb.CreateTenantRequest{TenantId: other})
		require.NoError(t, err)
		list, err := m.ListTenants(ctx, &pb.ListTenantsRequest{})
		require.NoError(t, err)
		require.Len(t, list.Tenants, 2)
		require.Less(t, list.Tenants[0].TenantId, list.Tenants[1].TenantId)
		got, err := m.GetTenant(ctx, &pb.GetTenantRequest{TenantId: f.tenant})
		require.NoError(t, err)
		require.Equal(t, uint32(1), got.Tenant.TimelineCount)
		_, err = m.DeleteTenant(ctx, &pb.DeleteTenantRequest{TenantId: other})
		require.NoError(t, err)
		_, err = m.GetTenant(ctx, &pb.GetTenantRequest{TenantId: other})
		requireCode(t, codes.NotFound, err)
	})

	t.Run("branches", func(t *testing.T) {
		branch := func(anc string, at uint64) (*pb.CreateTimelineResponse, error) {
			return m.CreateTimeline(ctx, &pb.CreateTimelineRequest{TenantId: f.tenant, Mode: &pb.CreateTimelineRequest_Branch_{
				Branch: &pb.CreateTimelineRequest_Branch{AncestorTimelineId: anc, AncestorLsn: at}}})
		}
		_, err := branch(ids.NewTimelineID().String(), 0)
		requireCode(t, codes.NotFound, err)
		_, err = branch(f.tl.TimelineId, f.tl.LastRecordLsn+8)
		requireCode(t, codes.OutOfRange, err)
		require.Contains(t, err.Error(), lsn.LSN(f.tl.LastRecordLsn).String(), "the message states the range")
		_, err = branch(f.tl.TimelineId, f.tl.StartLsn-8)
		requireCode(t, codes.OutOfRange, err)
		b, err := branch(f.tl.TimelineId, 0)
		require.NoError(t, err)
		require.Equal(t, f.tl.TimelineId, b.Timeline.AncestorTimelineId)
		require.Equal(t, f.tl.LastRecordLsn, b.Timeline.AncestorLsn)
		require.Equal(t, f.tl.LastRecordLsn, b.Timeline.LastRecordLsn)

		list, err := m.ListTimelines(ctx, &pb.ListTimelinesRequest{TenantId: f.tenant})
		require.NoError(t, err)
		require.Len(t, list.Timelines, 2)
		require.Equal(t, f.tl.TimelineId, list.Timelines[0].TimelineId, "ancestors first")

		// The branch reads its ancestor's pages.
		n, err := f.api.page.GetRelSize(ctx, &pb.GetRelSizeRequest{Timeline: &pb.TimelineRef{TenantId: f.tenant, TimelineId: b.Timeline.TimelineId},
			ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode)})
		require.NoError(t, err)
		require.NotZero(t, n.NumBlocks)

		_, err = m.DeleteTimeline(ctx, &pb.DeleteTimelineRequest{Timeline: f.ref()})
		requireCode(t, codes.FailedPrecondition, err)
		require.Contains(t, err.Error(), b.Timeline.TimelineId)
		_, err = m.DeleteTimeline(ctx, &pb.DeleteTimelineRequest{Timeline: &pb.TimelineRef{TenantId: f.tenant, TimelineId: b.Timeline.TimelineId}})
		require.NoError(t, err)
		_, err = m.GetTimeline(ctx, &pb.GetTimelineRequest{Timeline: &pb.TimelineRef{TenantId: f.tenant, TimelineId: b.Timeline.TimelineId}})
		requireCode(t, codes.NotFound, err)
	})

	t.Run("checkpoint", func(t *testing.T) {
		resp, err := m.Checkpoint(ctx, &pb.CheckpointRequest{Timeline: f.ref()})
		require.NoError(t, err)
		require.Equal(t, f.tl.LastRecordLsn, resp.DiskConsistentLsn)
		c, err := m.Compact(ctx, &pb.CompactRequest{Timeline: f.ref()})
		require.NoError(t, err)
		require.Equal(t, resp.DiskConsistentLsn, c.ImageLsn)
		if f.tl.LastRecordLsn == f.tl.StartLsn {
			require.NotEmpty(t, c.SkippedReason, "the import's image is at the same LSN")
		} else {
			require.NotZero(t, c.LayersCreated)
			require.NotZero(t, c.ImageKeys)
		}
		again, err := m.Compact(ctx, &pb.CompactRequest{Timeline: f.ref()})
		require.NoError(t, err)
		require.Zero(t, again.LayersCreated)
		require.Contains(t, again.SkippedReason, "image layer at or above")
		_, err = m.Compact(ctx, &pb.CompactRequest{Timeline: &pb.TimelineRef{TenantId: f.tenant, TimelineId: ids.NewTimelineID().String()}})
		requireCode(t, codes.NotFound, err)

		// GC keeping 1 byte of history: the cutoff rises to
		// last_record_lsn - 1 (the image at last_record_lsn is above it,
		// so nothing can go yet; the model and e2e tests remove layers).
		before, err := m.GetTimeline(ctx, &pb.GetTimelineRequest{Timeline: f.ref()})
		require.NoError(t, err)
		gc, err := m.RunGc(ctx, &pb.RunGcRequest{Timeline: f.ref(), GcHorizonBytes: 1})
		require.NoError(t, err)
		require.Equal(t, resp.DiskConsistentLsn-1, gc.GcCutoffLsn)
		require.Equal(t, before.Timeline.LayerFileCount, gc.LayersKept+gc.LayersRemoved)
		after, err := m.GetTimeline(ctx, &pb.GetTimelineRequest{Timeline: f.ref()})
		require.NoError(t, err)
		require.Equal(t, gc.GcCutoffLsn, after.Timeline.GcCutoffLsn)
		require.Equal(t, gc.LayersKept, after.Timeline.LayerFileCount)
		// Reads at the cutoff still work; below it they are refused, and
		// so are branch points.
		rel := mainRel(postgresDB, pgClassRelfilenode)
		n, err := f.api.page.GetRelSize(ctx, &pb.GetRelSizeRequest{Timeline: f.ref(), ReadLsn: &pb.ReadLsn{RequestLsn: gc.GcCutoffLsn}, Rel: rel})
		require.NoError(t, err)
		require.NotZero(t, n.NumBlocks)
		if gc.GcCutoffLsn > f.tl.StartLsn {
			_, err = f.api.page.GetRelSize(ctx, &pb.GetRelSizeRequest{Timeline: f.ref(), ReadLsn: &pb.ReadLsn{RequestLsn: f.tl.StartLsn}, Rel: rel})
			requireCode(t, codes.OutOfRange, err)
			require.Contains(t, err.Error(), "GC cutoff")
			_, err = m.CreateTimeline(ctx, &pb.CreateTimelineRequest{TenantId: f.tenant, Mode: &pb.CreateTimelineRequest_Branch_{
				Branch: &pb.CreateTimelineRequest_Branch{AncestorTimelineId: f.tl.TimelineId, AncestorLsn: f.tl.StartLsn}}})
			requireCode(t, codes.OutOfRange, err)
		}
		again2, err := m.RunGc(ctx, &pb.RunGcRequest{Timeline: f.ref(), GcHorizonBytes: 1})
		require.NoError(t, err)
		require.Zero(t, again2.LayersRemoved)
		_, err = m.RunGc(ctx, &pb.RunGcRequest{Timeline: &pb.TimelineRef{TenantId: f.tenant, TimelineId: ids.NewTimelineID().String()}})
		requireCode(t, codes.NotFound, err)
	})
}

func TestGetPages(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WaitLSNTimeout = config.Duration(300 * time.Millisecond); c.GetPagesMaxInflight = 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	size, err := f.api.page.GetRelSize(ctx, &pb.GetRelSizeRequest{Timeline: f.ref(), ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode)})
	require.NoError(t, err)
	require.Greater(t, size.NumBlocks, uint32(1))
	last := f.tl.LastRecordLsn

	otherTenant := ids.NewTenantID().String()
	wrongTenant := newClients(dialToken(t, f.ps.cfg.ListenAddr, f.token(auth.ScopeTenant, otherTenant)))
	_ = wrongTenant
	cases := []struct {
		name   string
		req    *pb.GetPagesRequest
		want   pb.GetPagesStatusCode
		reason string
	}{
		{"latest", &pb.GetPagesRequest{ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{0, 1}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK, ""},
		{"at last_record_lsn", &pb.GetPagesRequest{ReadLsn: &pb.ReadLsn{RequestLsn: last}, Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{0}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK, ""},
		{"beyond the end", &pb.GetPagesRequest{ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{size.NumBlocks + 10}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK, ""},
		{"missing relation", &pb.GetPagesRequest{ReadLsn: latest(), Rel: mainRel(postgresDB, 999999), BlockNumbers: []uint32{0}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_NOT_FOUND, "not found"},
		{"lsn 0", &pb.GetPagesRequest{ReadLsn: &pb.ReadLsn{}, Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{0}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INVALID_REQUEST, "request_lsn 0"},
		{"not_modified_since above request", &pb.GetPagesRequest{ReadLsn: &pb.ReadLsn{RequestLsn: last, NotModifiedSinceLsn: last + 8}, Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{0}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INVALID_REQUEST, "not_modified_since"},
		{"no blocks", &pb.GetPagesRequest{ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode)}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INVALID_REQUEST, "block_numbers"},
		{"before start", &pb.GetPagesRequest{ReadLsn: &pb.ReadLsn{RequestLsn: f.tl.StartLsn - 8}, Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{0}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INVALID_REQUEST, "start"},
		{"future LSN times out", &pb.GetPagesRequest{ReadLsn: &pb.ReadLsn{RequestLsn: last + 1<<20}, Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{0}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_LSN_TIMEOUT, "last_record_lsn " + lsn.LSN(last).String()},
		{"unknown timeline", &pb.GetPagesRequest{Timeline: &pb.TimelineRef{TenantId: f.tenant, TimelineId: ids.NewTimelineID().String()}, ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{0}}, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_NOT_FOUND, "timeline"},
	}
	stream, err := f.api.page.GetPages(ctx)
	require.NoError(t, err)
	// Everything is sent before anything is read: responses must come back
	// in request order although they finish out of order (the timeout one
	// is slowest).
	for i, tc := range cases {
		req := tc.req
		req.RequestId = uint64(100 + i)
		if req.Timeline == nil {
			req.Timeline = f.ref()
		}
		require.NoError(t, stream.Send(req))
	}
	var ok [][]byte
	for i, tc := range cases {
		resp, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, uint64(100+i), resp.RequestId, tc.name)
		require.Equal(t, tc.want.String(), resp.StatusCode.String(), "%s: %s", tc.name, resp.Reason)
		require.Contains(t, resp.Reason, tc.reason, tc.name)
		if tc.want == pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK {
			require.Len(t, resp.Pages, len(tc.req.BlockNumbers), tc.name)
			require.Equal(t, last, resp.EffectiveLsn, tc.name)
			for j, p := range resp.Pages {
				require.Equal(t, tc.req.BlockNumbers[j], p.BlockNumber)
				require.Len(t, p.Image, 8192)
				ok = append(ok, p.Image)
			}
		}
	}
	require.Equal(t, ok[0], ok[2], "the same block at the same LSN")
	require.NotEqual(t, ok[0], ok[1])
	require.Equal(t, make([]byte, 8192), ok[3], "a block beyond the end reads as zeros")

	// Many pipelined requests (more than the in-flight bound) keep order.
	const n = 200
	go func() {
		for i := range n {
			_ = stream.Send(&pb.GetPagesRequest{RequestId: uint64(i), Timeline: f.ref(), ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{uint32(i) % size.NumBlocks}})
		}
		_ = stream.CloseSend()
	}()
	for i := range n {
		resp, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, uint64(i), resp.RequestId)
		require.Equal(t, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK, resp.StatusCode, resp.Reason)
	}
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF)

	// A tenant token for another tenant: PERMISSION_DENIED per request,
	// the stream stays open.
	ws, err := wrongTenant.page.GetPages(ctx)
	require.NoError(t, err)
	for i := range 2 {
		require.NoError(t, ws.Send(&pb.GetPagesRequest{RequestId: uint64(i), Timeline: f.ref(), ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode), BlockNumbers: []uint32{0}}))
		resp, err := ws.Recv()
		require.NoError(t, err)
		require.Equal(t, pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_PERMISSION_DENIED, resp.StatusCode)
		require.Empty(t, resp.Pages)
	}
	require.NoError(t, ws.CloseSend())

	t.Run("GetRelSize allow_missing", func(t *testing.T) {
		_, err := f.api.page.GetRelSize(ctx, &pb.GetRelSizeRequest{Timeline: f.ref(), ReadLsn: latest(), Rel: mainRel(postgresDB, 999999)})
		requireCode(t, codes.NotFound, err)
		resp, err := f.api.page.GetRelSize(ctx, &pb.GetRelSizeRequest{Timeline: f.ref(), ReadLsn: latest(), Rel: mainRel(postgresDB, 999999), AllowMissing: true})
		require.NoError(t, err)
		require.True(t, resp.Missing)
	})
	t.Run("GetDbSize and GetSlruSegment", func(t *testing.T) {
		db, err := f.api.page.GetDbSize(ctx, &pb.GetDbSizeRequest{Timeline: f.ref(), ReadLsn: latest(), DbOid: postgresDB})
		require.NoError(t, err)
		require.Greater(t, db.NumBytes, uint64(1<<20))
		require.Zero(t, db.NumBytes%8192)
		seg, err := f.api.page.GetSlruSegment(ctx, &pb.GetSlruSegmentRequest{Timeline: f.ref(), ReadLsn: latest(), Kind: pb.SlruKind_SLRU_KIND_CLOG, Segno: 0})
		require.NoError(t, err)
		require.NotEmpty(t, seg.Segment)
		require.Zero(t, len(seg.Segment)%8192)
		_, err = f.api.page.GetSlruSegment(ctx, &pb.GetSlruSegmentRequest{Timeline: f.ref(), ReadLsn: latest()})
		requireCode(t, codes.InvalidArgument, err)
	})
	t.Run("GetBaseBackup", func(t *testing.T) {
		_, err := recvBackup(ctx, f.api.page, &pb.GetBaseBackupRequest{Timeline: f.ref(), Lsn: last + 8})
		requireCode(t, codes.OutOfRange, err)
		require.Contains(t, err.Error(), lsn.LSN(last).String())
		_, err = recvBackup(ctx, f.api.page, &pb.GetBaseBackupRequest{Timeline: f.ref(), Lsn: f.tl.StartLsn - 8})
		requireCode(t, codes.OutOfRange, err)

		b, err := recvBackup(ctx, f.api.page, &pb.GetBaseBackupRequest{Timeline: f.ref(), Full: true})
		require.NoError(t, err)
		require.Equal(t, last, b.lsn)
		require.Greater(t, b.chunks, 1, "a fullbackup of a fresh cluster is several MiB")
		names := tarNames(t, b.data)
		require.Equal(t, "global/pg_control", names[len(names)-1])
		require.Contains(t, names, "base/5/1259")

		// A client that goes away mid-stream stops the backup.
		cctx, ccancel := context.WithCancel(ctx)
		st, err := f.api.page.GetBaseBackup(cctx, &pb.GetBaseBackupRequest{Timeline: f.ref(), Full: true})
		require.NoError(t, err)
		_, err = st.Recv()
		require.NoError(t, err)
		ccancel()
		for err == nil {
			_, err = st.Recv()
		}
		requireCode(t, codes.Canceled, err)
	})
}

type backup struct {
	lsn    uint64
	data   []byte
	chunks int
}

func recvBackup(ctx context.Context, c pb.PageServiceClient, req *pb.GetBaseBackupRequest) (backup, error) {
	var b backup
	st, err := c.GetBaseBackup(ctx, req)
	if err != nil {
		return b, err
	}
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if b.chunks == 0 {
			b.lsn = m.Lsn
		}
		if len(m.Chunk) > 1<<20 {
			return b, errors.New("chunk above 1 MiB")
		}
		b.chunks++
		b.data = append(b.data, m.Chunk...)
	}
}

func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		require.NoError(t, err)
		names = append(names, strings.TrimSuffix(h.Name, "/"))
	}
}

// TestAuthMatrix checks the scopes over gRPC.
func TestAuthMatrix(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	addr := f.ps.cfg.ListenAddr
	other := ids.NewTenantID().String()
	own := newClients(dialToken(t, addr, f.token(auth.ScopeTenant, f.tenant)))
	foreign := newClients(dialToken(t, addr, f.token(auth.ScopeTenant, other)))
	sk := newClients(dialToken(t, addr, f.token(auth.ScopeSafekeeperData, "")))
	none := newClients(dialToken(t, addr, ""))
	relReq := &pb.GetRelSizeRequest{Timeline: f.ref(), ReadLsn: latest(), Rel: mainRel(postgresDB, pgClassRelfilenode)}

	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"tenant token reads its tenant", func() error { _, err := own.page.GetRelSize(ctx, relReq); return err }, codes.OK},
		{"tenant token gets its timeline", func() error {
			_, err := own.mgmt.GetTimeline(ctx, &pb.GetTimelineRequest{Timeline: f.ref()})
			return err
		}, codes.OK},
		{"tenant token on another tenant", func() error { _, err := foreign.page.GetRelSize(ctx, relReq); return err }, codes.PermissionDenied},
		{"tenant token lists tenants", func() error { _, err := own.mgmt.ListTenants(ctx, &pb.ListTenantsRequest{}); return err }, codes.PermissionDenied},
		{"tenant token deletes its tenant", func() error {
			_, err := own.mgmt.DeleteTenant(ctx, &pb.DeleteTenantRequest{TenantId: f.tenant})
			return err
		}, codes.PermissionDenied},
		{"safekeeperdata on management", func() error { _, err := sk.mgmt.ListTenants(ctx, &pb.ListTenantsRequest{}); return err }, codes.PermissionDenied},
		{"safekeeperdata on a tenant", func() error {
			_, err := sk.mgmt.GetTenant(ctx, &pb.GetTenantRequest{TenantId: f.tenant})
			return err
		}, codes.PermissionDenied},
		{"safekeeperdata on pages", func() error { _, err := sk.page.GetRelSize(ctx, relReq); return err }, codes.PermissionDenied},
		{"no token", func() error { _, err := none.mgmt.ListTenants(ctx, &pb.ListTenantsRequest{}); return err }, codes.Unauthenticated},
		{"no token on pages", func() error { _, err := none.page.GetRelSize(ctx, relReq); return err }, codes.Unauthenticated},
		{"tenant token on ingest", func() error { return ingestStart(ctx, own.ing, f.ref()) }, codes.PermissionDenied},
		{"no token on ingest", func() error { return ingestStart(ctx, none.ing, f.ref()) }, codes.Unauthenticated},
		{"safekeeperdata on ingest", func() error { return ingestStart(ctx, sk.ing, f.ref()) }, codes.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.want == codes.OK {
				require.NoError(t, err)
				return
			}
			requireCode(t, tc.want, err)
		})
	}
}

// ingestStart opens an ingest stream, waits for IngestReady and closes it.
func ingestStart(ctx context.Context, c pb.IngestServiceClient, ref *pb.TimelineRef) error {
	st, err := c.Ingest(ctx)
	if err != nil {
		return err
	}
	// Send reports io.EOF when the server has already ended the stream
	// (e.g. refused the token); Recv then returns the status.
	if err := st.Send(&pb.IngestRequest{Message: &pb.IngestRequest_Start{Start: &pb.IngestStart{Timeline: ref}}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	r, err := st.Recv()
	if err != nil {
		return err
	}
	if r.GetReady() == nil {
		return errors.New("first reply is not IngestReady")
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for err == nil {
		_, err = st.Recv()
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// rawCodec sends a *[]byte as the message's bytes, for requests no
// generated client would send.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(*[]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
	}
	return encoding.GetCodecV2(grpcproto.Name).Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(grpcproto.Name).Unmarshal(data, v)
}

func (rawCodec) Name() string { return grpcproto.Name }

// TestIngestStreamErrors: what may follow IngestStart, and the status of
// each mistake; WAL the timeline already has is skipped, and a keepalive
// is answered after it.
func TestIngestStreamErrors(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	sk := newClients(dialToken(t, f.ps.cfg.ListenAddr, f.token(auth.ScopeSafekeeperData, "")))
	open := func(t *testing.T) (pb.IngestService_IngestClient, *pb.IngestReady) {
		t.Helper()
		st, err := sk.ing.Ingest(ctx, grpc.ForceCodecV2(rawCodec{}))
		require.NoError(t, err)
		require.NoError(t, st.Send(&pb.IngestRequest{Message: &pb.IngestRequest_Start{Start: &pb.IngestStart{Timeline: f.ref(), Source: "test"}}}))
		r, err := st.Recv()
		require.NoError(t, err)
		require.NotNil(t, r.GetReady())
		return st, r.GetReady()
	}
	// finish reads until the stream ends and returns its status.
	finish := func(st pb.IngestService_IngestClient) error {
		for {
			if _, err := st.Recv(); err != nil {
				return err
			}
		}
	}
	wal := func(start uint64, data []byte) *pb.IngestRequest {
		return &pb.IngestRequest{Message: &pb.IngestRequest_Wal{Wal: &pb.WalChunk{StartLsn: start, Data: data}}}
	}

	t.Run("second start", func(t *testing.T) {
		st, _ := open(t)
		require.NoError(t, st.Send(&pb.IngestRequest{Message: &pb.IngestRequest_Start{Start: &pb.IngestStart{Timeline: f.ref()}}}))
		err := finish(st)
		requireCode(t, codes.InvalidArgument, err)
		require.ErrorContains(t, err, "only WAL chunks and keepalives may follow IngestStart")
	})
	t.Run("garbage", func(t *testing.T) {
		st, _ := open(t)
		garbage := []byte{0x12, 0x7f, 0x01}
		require.NoError(t, st.SendMsg(&garbage))
		err := finish(st)
		requireCode(t, codes.InvalidArgument, err)
		require.ErrorContains(t, err, "ingest: malformed request")
	})
	for _, n := range []int{100, 0} {
		t.Run(fmt.Sprintf("gap, chunk of %d bytes", n), func(t *testing.T) {
			st, ready := open(t)
			require.NoError(t, st.Send(wal(ready.GetStartLsn()+8192, make([]byte, n))))
			err := finish(st)
			requireCode(t, codes.FailedPrecondition, err)
			require.ErrorContains(t, err, fmt.Sprintf("the timeline needs WAL from %s", lsn.LSN(ready.GetStartLsn())))
		})
	}
	t.Run("re-sent WAL is skipped, keepalive answered", func(t *testing.T) {
		st, ready := open(t)
		// Bytes that end at the start LSN: already ingested, never decoded.
		require.NoError(t, st.Send(wal(ready.GetStartLsn()-100, bytes.Repeat([]byte{0xff}, 100))))
		require.NoError(t, st.Send(&pb.IngestRequest{Message: &pb.IngestRequest_Keepalive{Keepalive: &pb.IngestKeepalive{ReplyRequested: true}}}))
		r, err := st.Recv()
		require.NoError(t, err)
		require.Equal(t, ready.GetProgress().GetLastRecordLsn(), r.GetProgress().GetLastRecordLsn())
		require.NoError(t, st.CloseSend())
		require.ErrorIs(t, finish(st), io.EOF)
	})
	t.Run("corrupt WAL", func(t *testing.T) {
		st, ready := open(t)
		require.NoError(t, st.Send(wal(ready.GetStartLsn(), bytes.Repeat([]byte{0xff}, 100))))
		requireCode(t, codes.DataLoss, finish(st))
	})
}
