package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/localstack"
	bridgepb "github.com/stratadb/strata/proto/gen/strata/bridge/v1"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// fakePageserver implements a few ManagementService handlers and
// PageService.GetBaseBackup in memory, enough to drive the CLI.
type fakePageserver struct {
	pb.UnimplementedManagementServiceServer
	pb.UnimplementedPageServiceServer

	mu            sync.Mutex
	tenants       map[string]*pb.TenantInfo
	timelines     map[string][]*pb.TimelineInfo // by tenant, creation order
	backup        []byte                        // served by GetBaseBackup
	backupLSN     uint64
	lastBackupReq *pb.GetBaseBackupRequest
}

func newFakePageserver() *fakePageserver {
	return &fakePageserver{tenants: map[string]*pb.TenantInfo{}, timelines: map[string][]*pb.TimelineInfo{}}
}

func (f *fakePageserver) CreateTenant(ctx context.Context, req *pb.CreateTenantRequest) (*pb.CreateTenantResponse, error) {
	if err := auth.Authorize(ctx, ""); err != nil {
		return nil, auth.StatusError(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := req.GetTenantId()
	if id == "" {
		id = newID()
	}
	if f.tenants[id] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "tenant %s already exists", id)
	}
	t := &pb.TenantInfo{TenantId: id, State: "active", CreatedAt: timestamppb.New(fixedTime)}
	f.tenants[id] = t
	return &pb.CreateTenantResponse{Tenant: t}, nil
}

func (f *fakePageserver) ListTenants(ctx context.Context, _ *pb.ListTenantsRequest) (*pb.ListTenantsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*pb.TenantInfo
	for _, t := range f.tenants {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TenantId < out[j].TenantId })
	return &pb.ListTenantsResponse{Tenants: out}, nil
}

func (f *fakePageserver) tenant(id string) (*pb.TenantInfo, error) {
	t := f.tenants[id]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "tenant %s not found", id)
	}
	return t, nil
}

func (f *fakePageserver) GetTenant(_ context.Context, req *pb.GetTenantRequest) (*pb.GetTenantResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.tenant(req.GetTenantId())
	if err != nil {
		return nil, err
	}
	return &pb.GetTenantResponse{Tenant: t}, nil
}

func (f *fakePageserver) DeleteTenant(_ context.Context, req *pb.DeleteTenantRequest) (*pb.DeleteTenantResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.tenant(req.GetTenantId()); err != nil {
		return nil, err
	}
	delete(f.tenants, req.GetTenantId())
	delete(f.timelines, req.GetTenantId())
	return &pb.DeleteTenantResponse{}, nil
}

func (f *fakePageserver) findTimeline(tenant, id string) (*pb.TimelineInfo, error) {
	if _, err := f.tenant(tenant); err != nil {
		return nil, err
	}
	for _, tl := range f.timelines[tenant] {
		if tl.TimelineId == id {
			return tl, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "timeline %s not found in tenant %s", id, tenant)
}

func (f *fakePageserver) CreateTimeline(_ context.Context, req *pb.CreateTimelineRequest) (*pb.CreateTimelineResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.tenant(req.GetTenantId())
	if err != nil {
		return nil, err
	}
	id := req.GetTimelineId()
	if id == "" {
		id = newID()
	}
	tl := &pb.TimelineInfo{TenantId: t.TenantId, TimelineId: id, State: "active", PgVersion: 15,
		StartLsn: 0x1000028, LastRecordLsn: 0x3000060, DiskConsistentLsn: 0x2000000}
	if br := req.GetBranch(); br != nil {
		anc, err := f.findTimeline(t.TenantId, br.GetAncestorTimelineId())
		if err != nil {
			return nil, err
		}
		at := br.GetAncestorLsn()
		if at == 0 {
			at = anc.LastRecordLsn
		}
		if at > anc.LastRecordLsn {
			return nil, status.Errorf(codes.InvalidArgument, "ancestor_lsn %X is beyond the ancestor's last_record_lsn %X", at, anc.LastRecordLsn)
		}
		tl.AncestorTimelineId, tl.AncestorLsn, tl.StartLsn, tl.LastRecordLsn, tl.DiskConsistentLsn = anc.TimelineId, at, at, at, at
	}
	f.timelines[t.TenantId] = append(f.timelines[t.TenantId], tl)
	t.TimelineCount++
	return &pb.CreateTimelineResponse{Timeline: tl}, nil
}

func (f *fakePageserver) ListTimelines(_ context.Context, req *pb.ListTimelinesRequest) (*pb.ListTimelinesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.tenant(req.GetTenantId()); err != nil {
		return nil, err
	}
	return &pb.ListTimelinesResponse{Timelines: f.timelines[req.GetTenantId()]}, nil
}

func (f *fakePageserver) GetTimeline(_ context.Context, req *pb.GetTimelineRequest) (*pb.GetTimelineResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tl, err := f.findTimeline(req.GetTimeline().GetTenantId(), req.GetTimeline().GetTimelineId())
	if err != nil {
		return nil, err
	}
	return &pb.GetTimelineResponse{Timeline: tl}, nil
}

func (f *fakePageserver) DeleteTimeline(_ context.Context, req *pb.DeleteTimelineRequest) (*pb.DeleteTimelineResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ref := req.GetTimeline()
	if _, err := f.findTimeline(ref.GetTenantId(), ref.GetTimelineId()); err != nil {
		return nil, err
	}
	list := f.timelines[ref.GetTenantId()]
	for _, tl := range list {
		if tl.AncestorTimelineId == ref.GetTimelineId() {
			return nil, status.Errorf(codes.FailedPrecondition, "timeline %s has branches (%s)", ref.GetTimelineId(), tl.TimelineId)
		}
	}
	for i, tl := range list {
		if tl.TimelineId == ref.GetTimelineId() {
			f.timelines[ref.GetTenantId()] = append(list[:i:i], list[i+1:]...)
			f.tenants[ref.GetTenantId()].TimelineCount--
			break
		}
	}
	return &pb.DeleteTimelineResponse{}, nil
}

func (f *fakePageserver) GetBaseBackup(req *pb.GetBaseBackupRequest, stream grpc.ServerStreamingServer[pb.GetBaseBackupResponse]) error {
	f.mu.Lock()
	f.lastBackupReq = req
	data, at := f.backup, f.backupLSN
	_, err := f.findTimeline(req.GetTimeline().GetTenantId(), req.GetTimeline().GetTimelineId())
	f.mu.Unlock()
	if err != nil {
		return err
	}
	const chunk = 64 << 10
	for off := 0; off == 0 || off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		msg := &pb.GetBaseBackupResponse{Chunk: data[off:end]}
		if off == 0 {
			msg.Lsn = at
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

// fakeBridge records Attach requests.
type fakeBridge struct {
	bridgepb.UnimplementedBridgeServiceServer
	mu       sync.Mutex
	attaches []*bridgepb.AttachRequest
}

func (f *fakeBridge) Attach(_ context.Context, req *bridgepb.AttachRequest) (*bridgepb.AttachResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attaches = append(f.attaches, req)
	if req.GetPrimaryConninfo() == "" {
		return nil, status.Error(codes.InvalidArgument, "primary_conninfo is empty")
	}
	return &bridgepb.AttachResponse{Status: &bridgepb.TimelineStatus{
		TenantId: req.GetTenantId(), TimelineId: req.GetTimelineId(), SlotName: "strata_" + req.GetTimelineId()[:8],
		State: "streaming", ReceivedLsn: 0x3000100, LastRecordLsn: 0x3000100, DiskConsistentLsn: 0x3000000,
	}}, nil
}

// serveFake serves the registered fakes at addr (taken from a stack's
// config) with jwt auth against the stack's public key, as the real
// services do, until the test ends.
func serveFake(t *testing.T, stack *localstack.Stack, addr string, register func(*grpc.Server)) {
	t.Helper()
	keys, err := auth.LoadPublicKeys(stack.PublicKeyPath())
	require.NoError(t, err)
	verifier, err := auth.NewVerifier(keys)
	require.NoError(t, err)
	a, err := auth.NewAuthenticator(auth.ModeJWT, verifier)
	require.NoError(t, err)
	srv, err := grpcserver.New(grpcserver.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(), Auth: a,
	})
	require.NoError(t, err)
	register(srv.Server)
	lis, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		err := <-done
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("fake server: %v", err)
		}
	})
}
