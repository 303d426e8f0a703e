package server

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratadb/strata/internal/auth"
	bridgev1 "github.com/stratadb/strata/proto/gen/strata/bridge/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/timelines"
)

// backend is what the adapter needs from the bridge (timelines.Manager).
type backend interface {
	Attach(ctx context.Context, a timelines.Attachment) (timelines.Status, error)
	Detach(ctx context.Context, tenantID, timelineID string, dropSlot bool) error
	List() []timelines.Status
	Get(tenantID, timelineID string) (timelines.Status, error)
}

// Server implements bridgev1.BridgeServiceServer.
type Server struct {
	bridgev1.UnimplementedBridgeServiceServer
	b backend
}

// New returns the adapter over b.
func New(b backend) *Server { return &Server{b: b} }

// Register registers a new adapter over b on s.
func Register(s grpc.ServiceRegistrar, b backend) {
	bridgev1.RegisterBridgeServiceServer(s, New(b))
}

// Attach implements BridgeService.Attach.
func (s *Server) Attach(ctx context.Context, req *bridgev1.AttachRequest) (*bridgev1.AttachResponse, error) {
	if err := auth.AuthorizeScope(ctx, auth.ScopePageserverAPI); err != nil {
		return nil, err
	}
	st, err := s.b.Attach(ctx, timelines.Attachment{
		TenantID: req.GetTenantId(), TimelineID: req.GetTimelineId(), SlotName: req.GetSlotName(),
		PrimaryConnInfo: req.GetPrimaryConninfo(), Import: req.GetImport(),
	})
	if err != nil {
		return nil, statusError(err)
	}
	return &bridgev1.AttachResponse{Status: toProto(st)}, nil
}

// Detach implements BridgeService.Detach.
func (s *Server) Detach(ctx context.Context, req *bridgev1.DetachRequest) (*bridgev1.DetachResponse, error) {
	if err := auth.AuthorizeScope(ctx, auth.ScopePageserverAPI); err != nil {
		return nil, err
	}
	if err := s.b.Detach(ctx, req.GetTenantId(), req.GetTimelineId(), req.GetDropSlot()); err != nil {
		return nil, statusError(err)
	}
	return &bridgev1.DetachResponse{}, nil
}

// ListTimelines implements BridgeService.ListTimelines.
func (s *Server) ListTimelines(ctx context.Context, _ *bridgev1.ListTimelinesRequest) (*bridgev1.ListTimelinesResponse, error) {
	if err := auth.AuthorizeScope(ctx, auth.ScopePageserverAPI); err != nil {
		return nil, err
	}
	list := s.b.List()
	out := &bridgev1.ListTimelinesResponse{Timelines: make([]*bridgev1.TimelineStatus, 0, len(list))}
	for _, st := range list {
		out.Timelines = append(out.Timelines, toProto(st))
	}
	return out, nil
}

// GetStatus implements BridgeService.GetStatus.
func (s *Server) GetStatus(ctx context.Context, req *bridgev1.GetStatusRequest) (*bridgev1.GetStatusResponse, error) {
	if err := auth.AuthorizeScope(ctx, auth.ScopePageserverAPI); err != nil {
		return nil, err
	}
	st, err := s.b.Get(req.GetTenantId(), req.GetTimelineId())
	if err != nil {
		return nil, statusError(err)
	}
	return &bridgev1.GetStatusResponse{Status: toProto(st)}, nil
}

func toProto(st timelines.Status) *bridgev1.TimelineStatus {
	out := &bridgev1.TimelineStatus{
		TenantId: st.TenantID, TimelineId: st.TimelineID, SlotName: st.SlotName, State: st.State,
		ReceivedLsn: uint64(st.ReceivedLSN), SpooledLsn: uint64(st.SpooledLSN), SentLsn: uint64(st.SentLSN),
		LastRecordLsn: uint64(st.LastRecordLSN), DiskConsistentLsn: uint64(st.DiskConsistentLSN),
		PrimaryFlushLsn: uint64(st.PrimaryFlushLSN), LagBytes: st.LagBytes, SpoolStartLsn: uint64(st.SpoolStartLSN),
		Reconnects: uint64(max(st.Reconnects, 0)),
	}
	switch {
	case st.Err != nil:
		out.Error = st.Err.Error()
	case st.LastError != nil:
		out.Error = st.LastError.Error()
	}
	if !st.LastMessageAt.IsZero() {
		out.LastMessageAt = timestamppb.New(st.LastMessageAt.Truncate(time.Microsecond))
	}
	return out
}
