// Package fakeps is an in-process stand-in for the pageserver's PageService
// and ManagementService, behind the real gRPC interfaces and the real
// authentication interceptors (internal/grpcserver + internal/auth), so
// pgproxy's tests exercise the token forwarding and the pageserver-side
// checks (defence in depth) without a pageserver. Tests only.
//
// Data model: every relation has RelBlocks blocks at every LSN, except
// relation MissingRel, which does not exist, NotFoundRel, for which
// GetPages answers NOT_FOUND, and BreakRel, which fails the GetPages stream. Page images are Page(rel, blk). WAL is
// "ingested" up to LastRecordLSN; a not_modified_since beyond it gets
// LSN_TIMEOUT at once. Backups are what SetBackup set, streamed in 64 KiB chunks.
//
// Concurrency: safe for concurrent use; counters are atomic.
package fakeps

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/ids"
	pageserverv1 "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// Fake data constants.
const (
	RelBlocks   = 1000
	MissingRel  = 999
	NotFoundRel = 998
	// BreakRel makes GetPages fail the whole stream (UNAVAILABLE).
	BreakRel      = 997
	LastRecordLSN = 0x2000000
	DbSizeBytes   = 7 * 8192
)

// Page returns the deterministic image of block blk of relation rel.
func Page(rel *pageserverv1.RelTag, blk uint32) []byte {
	p := make([]byte, 8192)
	if blk >= RelBlocks {
		return p
	}
	seed := uint64(rel.GetSpcOid())<<40 ^ uint64(rel.GetDbOid())<<24 ^ uint64(rel.GetRelNumber())<<8 ^ uint64(rel.GetForkNumber()) ^ uint64(blk)<<48
	for i := 0; i < len(p); i += 8 {
		seed = seed*6364136223846793005 + 1442695040888963407
		binary.LittleEndian.PutUint64(p[i:], seed)
	}
	return p
}

// SlruSegment returns the deterministic segment for (kind, segno): segno%4+1 pages.
func SlruSegment(kind pageserverv1.SlruKind, segno uint32) []byte {
	n := int(segno%4) + 1
	return bytes.Repeat([]byte{byte(kind)<<4 | byte(segno)}, n*8192)
}

// Server is the fake.
type Server struct {
	pageserverv1.UnimplementedPageServiceServer
	pageserverv1.UnimplementedManagementServiceServer

	// GetPagesRequests and GetPagesBlocks count what the GetPages streams
	// received.
	GetPagesRequests atomic.Int64
	GetPagesBlocks   atomic.Int64
	// getPagesDelay delays every GetPages response (SetGetPagesDelay).
	getPagesDelay atomic.Int64

	mu        sync.Mutex
	backup    []byte
	tenants   map[string]*pageserverv1.TenantInfo
	timelines map[string][]*pageserverv1.TimelineInfo
}

// New returns a fake with no tenants.
func New() *Server {
	return &Server{tenants: map[string]*pageserverv1.TenantInfo{}, timelines: map[string][]*pageserverv1.TimelineInfo{}}
}

// Start serves s on a free loopback port with authenticator a until the
// test ends, and returns the address.
func Start(t testing.TB, s *Server, a *auth.Authenticator) string {
	t.Helper()
	srv, err := grpcserver.New(grpcserver.Options{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Auth: a, ShutdownTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pageserverv1.RegisterPageServiceServer(srv.Server, s)
	pageserverv1.RegisterManagementServiceServer(srv.Server, s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fake pageserver: %v", err)
		}
	})
	return lis.Addr().String()
}

// SetBackup sets what GetBaseBackup streams. (Tests set it while the
// servers run; the race detector does not see ordering through sockets.)
func (s *Server) SetBackup(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backup = b
}

// SetGetPagesDelay delays every GetPages response by d (pipelining tests).
func (s *Server) SetGetPagesDelay(d time.Duration) { s.getPagesDelay.Store(int64(d)) }

// AddTimeline creates tenant (if needed) and a root timeline.
func (s *Server) AddTimeline(tenant, timeline string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tenants[tenant]; !ok {
		s.tenants[tenant] = &pageserverv1.TenantInfo{TenantId: tenant, State: "active", CreatedAt: timestamppb.New(time.Unix(1700000000, 0))}
	}
	s.tenants[tenant].TimelineCount++
	s.timelines[tenant] = append(s.timelines[tenant], &pageserverv1.TimelineInfo{
		TenantId: tenant, TimelineId: timeline, LastRecordLsn: LastRecordLSN, DiskConsistentLsn: LastRecordLSN, State: "active", PgVersion: 15,
	})
}

func (s *Server) timeline(ref *pageserverv1.TimelineRef) (*pageserverv1.TimelineInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tl := range s.timelines[ref.GetTenantId()] {
		if tl.TimelineId == ref.GetTimelineId() {
			return tl, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "timeline %s/%s not found", ref.GetTenantId(), ref.GetTimelineId())
}

func checkRead(ctx context.Context, ref *pageserverv1.TimelineRef, rl *pageserverv1.ReadLsn) error {
	if err := auth.Authorize(ctx, ref.GetTenantId()); err != nil {
		return err
	}
	if rl.GetRequestLsn() == 0 {
		return status.Error(codes.InvalidArgument, "invalid LSN(0) in request")
	}
	if rl.GetNotModifiedSinceLsn() > LastRecordLSN {
		return status.Errorf(codes.DeadlineExceeded, "LSN timeout: waiting for WAL at %X, last_record_lsn %X", rl.GetNotModifiedSinceLsn(), LastRecordLSN)
	}
	return nil
}

// GetPages implements the bidi stream: responses in request order.
func (s *Server) GetPages(stream pageserverv1.PageService_GetPagesServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.GetPagesRequests.Add(1)
		if req.GetRel().GetRelNumber() == BreakRel {
			return status.Error(codes.Unavailable, "fake: stream broken on purpose")
		}
		s.GetPagesBlocks.Add(int64(len(req.GetBlockNumbers())))
		if d := time.Duration(s.getPagesDelay.Load()); d > 0 {
			time.Sleep(d)
		}
		resp := &pageserverv1.GetPagesResponse{RequestId: req.GetRequestId(), Rel: req.GetRel(), EffectiveLsn: req.GetReadLsn().GetRequestLsn()}
		if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
			resp.StatusCode = pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_PERMISSION_DENIED
			resp.Reason = status.Convert(err).Message()
		} else if _, err := s.timeline(req.GetTimeline()); err != nil {
			resp.StatusCode = pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_NOT_FOUND
			resp.Reason = status.Convert(err).Message()
		} else if req.GetReadLsn().GetNotModifiedSinceLsn() > LastRecordLSN {
			resp.StatusCode = pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_LSN_TIMEOUT
			resp.Reason = fmt.Sprintf("LSN timeout: waiting for WAL at %X, last_record_lsn %X", req.GetReadLsn().GetNotModifiedSinceLsn(), LastRecordLSN)
		} else if req.GetRel().GetRelNumber() == NotFoundRel {
			resp.StatusCode = pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_NOT_FOUND
			resp.Reason = fmt.Sprintf("relation %d not found", NotFoundRel)
		} else {
			resp.StatusCode = pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK
			for _, blk := range req.GetBlockNumbers() {
				resp.Pages = append(resp.Pages, &pageserverv1.Page{BlockNumber: blk, Image: Page(req.GetRel(), blk)})
			}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// GetRelSize implements PageService.
func (s *Server) GetRelSize(ctx context.Context, req *pageserverv1.GetRelSizeRequest) (*pageserverv1.GetRelSizeResponse, error) {
	if err := checkRead(ctx, req.GetTimeline(), req.GetReadLsn()); err != nil {
		return nil, err
	}
	if _, err := s.timeline(req.GetTimeline()); err != nil {
		return nil, err
	}
	if req.GetRel().GetRelNumber() == MissingRel {
		if req.GetAllowMissing() {
			return &pageserverv1.GetRelSizeResponse{Missing: true}, nil
		}
		return nil, status.Errorf(codes.NotFound, "relation %d does not exist", MissingRel)
	}
	return &pageserverv1.GetRelSizeResponse{NumBlocks: RelBlocks}, nil
}

// GetDbSize implements PageService.
func (s *Server) GetDbSize(ctx context.Context, req *pageserverv1.GetDbSizeRequest) (*pageserverv1.GetDbSizeResponse, error) {
	if err := checkRead(ctx, req.GetTimeline(), req.GetReadLsn()); err != nil {
		return nil, err
	}
	return &pageserverv1.GetDbSizeResponse{NumBytes: DbSizeBytes + uint64(req.GetDbOid())*8192}, nil
}

// GetSlruSegment implements PageService.
func (s *Server) GetSlruSegment(ctx context.Context, req *pageserverv1.GetSlruSegmentRequest) (*pageserverv1.GetSlruSegmentResponse, error) {
	if err := checkRead(ctx, req.GetTimeline(), req.GetReadLsn()); err != nil {
		return nil, err
	}
	if req.GetKind() == pageserverv1.SlruKind_SLRU_KIND_UNSPECIFIED {
		return nil, status.Error(codes.InvalidArgument, "SLRU kind unspecified")
	}
	return &pageserverv1.GetSlruSegmentResponse{Segment: SlruSegment(req.GetKind(), req.GetSegno())}, nil
}

// GetBaseBackup streams Backup.
func (s *Server) GetBaseBackup(req *pageserverv1.GetBaseBackupRequest, stream pageserverv1.PageService_GetBaseBackupServer) error {
	if err := auth.Authorize(stream.Context(), req.GetTimeline().GetTenantId()); err != nil {
		return err
	}
	tl, err := s.timeline(req.GetTimeline())
	if err != nil {
		return err
	}
	if req.GetLsn() > tl.LastRecordLsn {
		return status.Errorf(codes.InvalidArgument, "LSN %X is beyond last_record_lsn %X", req.GetLsn(), tl.LastRecordLsn)
	}
	s.mu.Lock()
	data := s.backup
	s.mu.Unlock()
	if req.GetCompression() == pageserverv1.BaseBackupCompression_BASE_BACKUP_COMPRESSION_GZIP {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(data)
		_ = zw.Close()
		data = buf.Bytes()
	}
	first := true
	for len(data) > 0 || first {
		n := min(len(data), 64<<10)
		msg := &pageserverv1.GetBaseBackupResponse{Chunk: data[:n]}
		if first {
			msg.Lsn = tl.LastRecordLsn
			first = false
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// CreateTenant implements ManagementService.
func (s *Server) CreateTenant(ctx context.Context, req *pageserverv1.CreateTenantRequest) (*pageserverv1.CreateTenantResponse, error) {
	if err := auth.Authorize(ctx, ""); err != nil {
		return nil, err
	}
	id := req.GetTenantId()
	if id == "" {
		id = ids.NewTenantID().String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tenants[id]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "tenant %s already exists", id)
	}
	t := &pageserverv1.TenantInfo{TenantId: id, State: "active", CreatedAt: timestamppb.New(time.Unix(1700000000, 0))}
	s.tenants[id] = t
	return &pageserverv1.CreateTenantResponse{Tenant: t}, nil
}

// ListTenants implements ManagementService.
func (s *Server) ListTenants(ctx context.Context, _ *pageserverv1.ListTenantsRequest) (*pageserverv1.ListTenantsResponse, error) {
	if err := auth.Authorize(ctx, ""); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &pageserverv1.ListTenantsResponse{}
	for _, t := range s.tenants {
		resp.Tenants = append(resp.Tenants, t)
	}
	sort.Slice(resp.Tenants, func(i, j int) bool { return resp.Tenants[i].TenantId < resp.Tenants[j].TenantId })
	return resp, nil
}

// CreateTimeline implements ManagementService (branches only).
func (s *Server) CreateTimeline(ctx context.Context, req *pageserverv1.CreateTimelineRequest) (*pageserverv1.CreateTimelineResponse, error) {
	if err := auth.Authorize(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	br := req.GetBranch()
	if br == nil {
		return nil, status.Error(codes.Unimplemented, "fake: only branches")
	}
	anc, err := s.timeline(&pageserverv1.TimelineRef{TenantId: req.GetTenantId(), TimelineId: br.GetAncestorTimelineId()})
	if err != nil {
		return nil, err
	}
	at := br.GetAncestorLsn()
	if at == 0 {
		at = anc.LastRecordLsn
	}
	if at > anc.LastRecordLsn {
		return nil, status.Errorf(codes.InvalidArgument, "ancestor LSN %X is beyond the ancestor's last_record_lsn %X", at, anc.LastRecordLsn)
	}
	id := req.GetTimelineId()
	if id == "" {
		id = ids.NewTimelineID().String()
	}
	tl := &pageserverv1.TimelineInfo{TenantId: req.GetTenantId(), TimelineId: id, AncestorTimelineId: anc.TimelineId, AncestorLsn: at,
		LastRecordLsn: at, DiskConsistentLsn: at, State: "active", PgVersion: 15}
	s.mu.Lock()
	s.timelines[req.GetTenantId()] = append(s.timelines[req.GetTenantId()], tl)
	if t, ok := s.tenants[req.GetTenantId()]; ok {
		t.TimelineCount++
	}
	s.mu.Unlock()
	return &pageserverv1.CreateTimelineResponse{Timeline: tl}, nil
}

// ListTimelines implements ManagementService.
func (s *Server) ListTimelines(ctx context.Context, req *pageserverv1.ListTimelinesRequest) (*pageserverv1.ListTimelinesResponse, error) {
	if err := auth.Authorize(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tenants[req.GetTenantId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "tenant %s not found", req.GetTenantId())
	}
	return &pageserverv1.ListTimelinesResponse{Timelines: append([]*pageserverv1.TimelineInfo(nil), s.timelines[req.GetTenantId()]...)}, nil
}

// GetTimeline implements ManagementService.
func (s *Server) GetTimeline(ctx context.Context, req *pageserverv1.GetTimelineRequest) (*pageserverv1.GetTimelineResponse, error) {
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tl, err := s.timeline(req.GetTimeline())
	if err != nil {
		return nil, err
	}
	return &pageserverv1.GetTimelineResponse{Timeline: tl}, nil
}
