package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pageserver/tenantmgr"
)

func tenantInfo(ti tenantmgr.TenantInfo) *pb.TenantInfo {
	return &pb.TenantInfo{TenantId: ti.ID.String(), State: ti.State, BrokenReason: ti.BrokenReason, TimelineCount: uint32(ti.TimelineCount)}
}

func timelineInfo(ti tenantmgr.TimelineInfo) *pb.TimelineInfo {
	out := &pb.TimelineInfo{
		TenantId: ti.TenantID.String(), TimelineId: ti.TimelineID.String(),
		AncestorLsn: uint64(ti.AncestorLSN), LastRecordLsn: uint64(ti.LastRecordLSN),
		PrevRecordLsn: uint64(ti.PrevRecordLSN), DiskConsistentLsn: uint64(ti.DiskConsistentLSN),
		StartLsn: uint64(ti.StartLSN), GcCutoffLsn: uint64(ti.GCCutoffLSN), PgVersion: ti.PGVersion,
		State: ti.State, BrokenReason: ti.BrokenReason,
		LayerFileCount: uint64(ti.LayerFileCount), LayerFileBytes: uint64(ti.LayerFileBytes),
	}
	if !ti.AncestorTimelineID.IsZero() {
		out.AncestorTimelineId = ti.AncestorTimelineID.String()
	}
	if !ti.CreatedAt.IsZero() {
		out.CreatedAt = timestamppb.New(ti.CreatedAt)
	}
	return out
}

// CreateTenant implements ManagementService (scope pageserverapi).
func (s *Server) CreateTenant(ctx context.Context, req *pb.CreateTenantRequest) (*pb.CreateTenantResponse, error) {
	if err := auth.Authorize(ctx, ""); err != nil {
		return nil, err
	}
	var id ids.TenantID
	if req.GetTenantId() != "" {
		var err error
		if id, err = parseTenant(req.GetTenantId()); err != nil {
			return nil, toStatus(s.log, "CreateTenant", err)
		}
	}
	ti, err := s.m.CreateTenant(ctx, id)
	if err != nil {
		return nil, toStatus(s.log, "CreateTenant", err)
	}
	return &pb.CreateTenantResponse{Tenant: tenantInfo(ti)}, nil
}

// ListTenants implements ManagementService (scope pageserverapi).
func (s *Server) ListTenants(ctx context.Context, _ *pb.ListTenantsRequest) (*pb.ListTenantsResponse, error) {
	if err := auth.Authorize(ctx, ""); err != nil {
		return nil, err
	}
	resp := &pb.ListTenantsResponse{}
	for _, ti := range s.m.ListTenants() {
		resp.Tenants = append(resp.Tenants, tenantInfo(ti))
	}
	return resp, nil
}

// GetTenant implements ManagementService.
func (s *Server) GetTenant(ctx context.Context, req *pb.GetTenantRequest) (*pb.GetTenantResponse, error) {
	if err := auth.Authorize(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	id, err := parseTenant(req.GetTenantId())
	if err != nil {
		return nil, toStatus(s.log, "GetTenant", err)
	}
	ti, err := s.m.GetTenant(id)
	if err != nil {
		return nil, toStatus(s.log, "GetTenant", err)
	}
	return &pb.GetTenantResponse{Tenant: tenantInfo(ti)}, nil
}

// DeleteTenant implements ManagementService. Deleting a whole tenant is a
// global operation (scope pageserverapi), as in Neon: a tenant token cannot
// delete its own tenant.
func (s *Server) DeleteTenant(ctx context.Context, req *pb.DeleteTenantRequest) (*pb.DeleteTenantResponse, error) {
	if err := auth.Authorize(ctx, ""); err != nil {
		return nil, err
	}
	id, err := parseTenant(req.GetTenantId())
	if err != nil {
		return nil, toStatus(s.log, "DeleteTenant", err)
	}
	if err := s.m.DeleteTenant(ctx, id); err != nil {
		return nil, toStatus(s.log, "DeleteTenant", err)
	}
	return &pb.DeleteTenantResponse{}, nil
}

// CreateTimeline implements ManagementService: a branch (metadata only) or
// an initdb bootstrap.
func (s *Server) CreateTimeline(ctx context.Context, req *pb.CreateTimelineRequest) (*pb.CreateTimelineResponse, error) {
	if err := auth.Authorize(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	tid, err := parseTenant(req.GetTenantId())
	if err != nil {
		return nil, toStatus(s.log, "CreateTimeline", err)
	}
	id, err := optionalTimeline(req.GetTimelineId())
	if err != nil {
		return nil, toStatus(s.log, "CreateTimeline", err)
	}
	var tl *tenantmgr.Timeline
	switch mode := req.GetMode().(type) {
	case *pb.CreateTimelineRequest_Branch_:
		anc, err := parseTimeline(mode.Branch.GetAncestorTimelineId())
		if err != nil {
			return nil, toStatus(s.log, "CreateTimeline", fmt.Errorf("ancestor_%w", err))
		}
		tl, err = s.m.Branch(ctx, tid, id, anc, lsn.LSN(mode.Branch.GetAncestorLsn()))
		if err != nil {
			return nil, toStatus(s.log, "CreateTimeline", err)
		}
	case *pb.CreateTimelineRequest_Bootstrap_:
		if v := mode.Bootstrap.GetPgVersion(); v != 0 && v != tenantmgr.PGVersion {
			return nil, status.Errorf(codes.InvalidArgument, "pg_version %d: only PostgreSQL %d is supported", v, tenantmgr.PGVersion)
		}
		tl, err = s.bootstrap(ctx, tid, id)
		if err != nil {
			return nil, toStatus(s.log, "CreateTimeline", err)
		}
	default:
		return nil, status.Error(codes.InvalidArgument, "mode: one of bootstrap or branch is required")
	}
	return &pb.CreateTimelineResponse{Timeline: timelineInfo(tl.Info())}, nil
}

// ListTimelines implements ManagementService.
func (s *Server) ListTimelines(ctx context.Context, req *pb.ListTimelinesRequest) (*pb.ListTimelinesResponse, error) {
	if err := auth.Authorize(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	tid, err := parseTenant(req.GetTenantId())
	if err != nil {
		return nil, toStatus(s.log, "ListTimelines", err)
	}
	tls, err := s.m.ListTimelines(tid)
	if err != nil {
		return nil, toStatus(s.log, "ListTimelines", err)
	}
	resp := &pb.ListTimelinesResponse{}
	for _, ti := range tls {
		resp.Timelines = append(resp.Timelines, timelineInfo(ti))
	}
	return resp, nil
}

func (s *Server) refIDs(ref *pb.TimelineRef) (ids.TenantID, ids.TimelineID, error) {
	tid, err := parseTenant(ref.GetTenantId())
	if err != nil {
		return tid, ids.TimelineID{}, err
	}
	tlid, err := parseTimeline(ref.GetTimelineId())
	return tid, tlid, err
}

// GetTimeline implements ManagementService.
func (s *Server) GetTimeline(ctx context.Context, req *pb.GetTimelineRequest) (*pb.GetTimelineResponse, error) {
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tid, tlid, err := s.refIDs(req.GetTimeline())
	if err != nil {
		return nil, toStatus(s.log, "GetTimeline", err)
	}
	ti, err := s.m.GetTimeline(tid, tlid)
	if err != nil {
		return nil, toStatus(s.log, "GetTimeline", err)
	}
	return &pb.GetTimelineResponse{Timeline: timelineInfo(ti)}, nil
}

// DeleteTimeline implements ManagementService.
func (s *Server) DeleteTimeline(ctx context.Context, req *pb.DeleteTimelineRequest) (*pb.DeleteTimelineResponse, error) {
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tid, tlid, err := s.refIDs(req.GetTimeline())
	if err != nil {
		return nil, toStatus(s.log, "DeleteTimeline", err)
	}
	if err := s.m.DeleteTimeline(ctx, tid, tlid); err != nil {
		return nil, toStatus(s.log, "DeleteTimeline", err)
	}
	return &pb.DeleteTimelineResponse{}, nil
}

// Checkpoint implements ManagementService.
func (s *Server) Checkpoint(ctx context.Context, req *pb.CheckpointRequest) (*pb.CheckpointResponse, error) {
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tid, tlid, err := s.refIDs(req.GetTimeline())
	if err != nil {
		return nil, toStatus(s.log, "Checkpoint", err)
	}
	dcl, err := s.m.Checkpoint(ctx, tid, tlid)
	if err != nil {
		return nil, toStatus(s.log, "Checkpoint", err)
	}
	return &pb.CheckpointResponse{DiskConsistentLsn: uint64(dcl)}, nil
}

// Compact implements ManagementService: flush, then image layers of the
// whole keyspace at disk_consistent_lsn.
func (s *Server) Compact(ctx context.Context, req *pb.CompactRequest) (*pb.CompactResponse, error) {
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tid, tlid, err := s.refIDs(req.GetTimeline())
	if err != nil {
		return nil, toStatus(s.log, "Compact", err)
	}
	res, err := s.m.Compact(ctx, tid, tlid)
	if err != nil {
		return nil, toStatus(s.log, "Compact", err)
	}
	return &pb.CompactResponse{
		LayersCreated: uint64(res.LayersCreated), ImageLsn: uint64(res.ImageLSN),
		ImageKeys: res.Keys, ImageBytes: uint64(res.Bytes),
		SkippedReason: res.Skipped, DurationMs: uint64(res.Duration.Milliseconds()),
	}, nil
}

// RunGc implements ManagementService: raise the GC cutoff and remove the
// layer files nothing above it (nor any branch point) can need.
func (s *Server) RunGc(ctx context.Context, req *pb.RunGcRequest) (*pb.RunGcResponse, error) {
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tid, tlid, err := s.refIDs(req.GetTimeline())
	if err != nil {
		return nil, toStatus(s.log, "RunGc", err)
	}
	res, err := s.m.RunGC(ctx, tid, tlid, req.GetGcHorizonBytes())
	if err != nil {
		return nil, toStatus(s.log, "RunGc", err)
	}
	return &pb.RunGcResponse{
		LayersRemoved: uint64(res.LayersRemoved), GcCutoffLsn: uint64(res.Cutoff),
		BytesRemoved: uint64(res.BytesRemoved), LayersKept: uint64(res.LayersKept), DurationMs: uint64(res.Duration.Milliseconds()),
	}, nil
}
