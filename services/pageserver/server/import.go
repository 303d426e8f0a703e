package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pageserver/importer"
	"github.com/stratadb/strata/services/pageserver/tenantmgr"
	"github.com/stratadb/strata/services/pageserver/timeline"
)

// bootstrap creates a timeline from a fresh initdb (importer.Bootstrap).
func (s *Server) bootstrap(ctx context.Context, tid ids.TenantID, id ids.TimelineID) (*tenantmgr.Timeline, error) {
	if s.opts.PGBinDir == "" || s.opts.ScratchDir == "" {
		return nil, fmt.Errorf("%w: CreateTimeline{bootstrap}: no PostgreSQL bin directory or scratch directory configured", tenantmgr.ErrUnsupported)
	}
	return s.m.CreateRootTimeline(ctx, tid, id, func(ctx context.Context, rt *timeline.Timeline) error {
		res, err := importer.Bootstrap(ctx, rt, s.opts.PGBinDir, s.opts.ScratchDir, importer.BootstrapOptions{RunAs: s.opts.BootstrapRunAs, Logger: s.log})
		if err == nil {
			s.log.Info("timeline bootstrapped", "tenant_id", tid, "timeline_id", rt.ID(), "at", res.At, "last_record_lsn", rt.LastRecordLSN())
		}
		return err
	})
}

// ImportBaseBackup implements ManagementService: the header, then the base
// tar, then optionally a WAL tar (WAL from start_lsn to end_lsn). The tar
// bytes stream through pipes into the importer: nothing is buffered whole.
func (s *Server) ImportBaseBackup(stream pb.ManagementService_ImportBaseBackupServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return status.Error(codes.InvalidArgument, "ImportBaseBackup: the first message must carry the header")
	}
	// The safekeeper-bridge imports a primary's base backup with its
	// safekeeperdata token (the same scope it ingests WAL with); anyone
	// else needs rights on the tenant.
	if err := auth.Authorize(stream.Context(), hdr.GetTenantId()); err != nil {
		if auth.AuthorizeScope(stream.Context(), auth.ScopeSafekeeperData) != nil {
			return err
		}
	}
	if v := hdr.GetPgVersion(); v != 0 && v != tenantmgr.PGVersion {
		return status.Errorf(codes.InvalidArgument, "ImportBaseBackup: pg_version %d: only PostgreSQL %d is supported", v, tenantmgr.PGVersion)
	}
	tid, err := parseTenant(hdr.GetTenantId())
	if err != nil {
		return toStatus(s.log, "ImportBaseBackup", err)
	}
	id, err := optionalTimeline(hdr.GetTimelineId())
	if err != nil {
		return toStatus(s.log, "ImportBaseBackup", err)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	basePR, basePW := io.Pipe()
	walPR, walPW := io.Pipe()
	var hasWAL atomic.Bool
	go func() { // ends when the stream or the pipes end
		inWAL := false
		fail := func(err error) {
			basePW.CloseWithError(err)
			walPW.CloseWithError(err)
		}
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				basePW.Close()
				walPW.Close()
				return
			}
			if err != nil {
				fail(err)
				return
			}
			switch part := m.GetPart().(type) {
			case *pb.ImportBaseBackupRequest_BaseTarChunk:
				if inWAL {
					fail(status.Error(codes.InvalidArgument, "ImportBaseBackup: base tar bytes after WAL tar bytes"))
					return
				}
				if _, err := basePW.Write(part.BaseTarChunk); err != nil {
					walPW.CloseWithError(err)
					return
				}
			case *pb.ImportBaseBackupRequest_WalTarChunk:
				if !inWAL {
					inWAL = true
					hasWAL.Store(true)
					basePW.Close()
				}
				if _, err := walPW.Write(part.WalTarChunk); err != nil {
					return
				}
			default:
				fail(status.Error(codes.InvalidArgument, "ImportBaseBackup: only the first message may carry a header"))
				return
			}
		}
	}()
	tl, err := s.m.CreateRootTimeline(ctx, tid, id, func(ctx context.Context, rt *timeline.Timeline) error {
		res, err := importer.ImportBaseBackup(ctx, rt, basePR, importer.Options{At: lsn.LSN(hdr.GetStartLsn()), Logger: s.log})
		if err != nil {
			return err
		}
		// The tar's end-of-archive padding may be left unread.
		if _, err := io.Copy(io.Discard, basePR); err != nil {
			return err
		}
		s.log.Info("base backup imported", "tenant_id", tid, "timeline_id", rt.ID(), "at", res.At, "blocks", res.Blocks, "relations", res.Relations)
		if !hasWAL.Load() {
			return nil // WAL comes through IngestService
		}
		ing, err := importer.NewIngest(ctx, rt, s.log)
		if err != nil {
			return err
		}
		wr, err := importer.ImportWAL(ctx, ing, walPR, lsn.LSN(hdr.GetEndLsn()))
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, walPR)
		s.log.Info("WAL imported", "tenant_id", tid, "timeline_id", rt.ID(), "fed_to", wr.FedTo, "last_record_lsn", rt.LastRecordLSN())
		return err
	})
	cancel()
	basePR.CloseWithError(context.Canceled)
	walPR.CloseWithError(context.Canceled)
	if err != nil {
		return importStatus(s, err)
	}
	return stream.SendAndClose(&pb.ImportBaseBackupResponse{Timeline: timelineInfo(tl.Info())})
}

func importStatus(s *Server, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, importer.ErrUnsupported):
		return status.Error(codes.Unimplemented, err.Error())
	case errors.Is(err, importer.ErrCorrupt), errors.Is(err, importer.ErrNoImportLSN):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, importer.ErrIncomplete):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return toStatus(s.log, "ImportBaseBackup", err)
}
