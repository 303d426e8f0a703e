package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/importer"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
	"github.com/stratadb/strata/services/pageserver/tenantmgr"
	"github.com/stratadb/strata/services/pageserver/timeline"
)

type ingestService struct {
	pb.UnimplementedIngestServiceServer
	s *Server
}

func progress(rt *timeline.Timeline) *pb.IngestProgress {
	return &pb.IngestProgress{
		LastRecordLsn:     uint64(rt.LastRecordLSN()),
		DiskConsistentLsn: uint64(rt.DiskConsistentLSN()),
		ReplyTime:         timestamppb.Now(),
	}
}

// Ingest implements IngestService; see the package doc.
func (is *ingestService) Ingest(stream pb.IngestService_IngestServer) error {
	s := is.s
	if err := auth.AuthorizeScope(stream.Context(), auth.ScopeSafekeeperData, auth.ScopePageserverAPI); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "Ingest: the first message must be IngestStart")
	}
	tl, err := s.timeline(start.GetTimeline())
	if err != nil {
		return toStatus(s.log, "Ingest", err)
	}
	rt := tl.Runtime()
	if !rt.LastRecordLSN().IsValid() {
		return status.Errorf(codes.FailedPrecondition, "Ingest: timeline %s has no base image yet (import or bootstrap it first)", tl.ID())
	}
	if err := checkSystemID(stream.Context(), tl, start.GetSystemId()); err != nil {
		return toStatus(s.log, "Ingest", err)
	}
	ctx, release, err := tl.AcquireIngest(stream.Context())
	if err != nil {
		return toStatus(s.log, "Ingest", err)
	}
	defer release()
	log := s.log.With("tenant_id", tl.TenantID(), "timeline_id", tl.ID(), "source", start.GetSource())

	// WAL is needed from last_record_lsn, a record boundary (after an
	// import: the backup's start LSN).
	in, err := importer.NewIngest(ctx, rt, log)
	if err != nil {
		return toStatus(s.log, "Ingest", err)
	}
	next := in.NextLSN()
	if err := stream.Send(&pb.IngestResponse{Message: &pb.IngestResponse_Ready{Ready: &pb.IngestReady{StartLsn: uint64(next), Progress: progress(rt)}}}); err != nil {
		return err
	}
	log.Info("ingest stream open", "start_lsn", next)

	// The receiver goroutine only hands messages over; all sends and all
	// feeding happen on this goroutine. It may read a few messages ahead,
	// so that it does not park and wake for every one.
	msgs := make(chan *pb.IngestRequest, 4)
	recvErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-done:
				return
			}
		}
	}()

	tick := time.NewTicker(min(s.opts.ProgressInterval, 200*time.Millisecond))
	defer tick.Stop()
	reported := rt.DiskConsistentLSN()
	lastSent := time.Now()
	send := func() error {
		p := progress(rt)
		reported = lsn.LSN(p.DiskConsistentLsn)
		lastSent = time.Now()
		return stream.Send(&pb.IngestResponse{Message: &pb.IngestResponse_Progress{Progress: p}})
	}
	for {
		select {
		case <-ctx.Done():
			cause := context.Cause(ctx)
			if errors.Is(cause, tenantmgr.ErrIngestReplaced) {
				log.Info("ingest stream replaced by a newer one")
			}
			if stream.Context().Err() != nil {
				return status.FromContextError(stream.Context().Err()).Err()
			}
			return toStatus(s.log, "Ingest", cause)
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-tick.C:
			if rt.DiskConsistentLSN() != reported || time.Since(lastSent) >= s.opts.ProgressInterval {
				if err := send(); err != nil {
					return err
				}
			}
		case m := <-msgs:
			switch msg := m.GetMessage().(type) {
			case *pb.IngestRequest_Wal:
				if err := feed(ctx, in, msg.Wal); err != nil {
					log.Error("ingest failed", "err", err)
					return ingestStatus(s, err)
				}
				if rt.DiskConsistentLSN() != reported {
					if err := send(); err != nil {
						return err
					}
				}
			case *pb.IngestRequest_Keepalive:
				if msg.Keepalive.GetReplyRequested() {
					if err := send(); err != nil {
						return err
					}
				}
			default:
				return status.Error(codes.InvalidArgument, "Ingest: only WAL chunks and keepalives may follow IngestStart")
			}
		}
	}
}

// feed gives chunk to in, dropping any prefix in already has (WAL is
// re-sent from the requested start, which may be below what was fed).
func feed(ctx context.Context, in *pgdatadir.Ingest, chunk *pb.WalChunk) error {
	start, data := lsn.LSN(chunk.GetStartLsn()), chunk.GetData()
	next := in.NextLSN()
	if start < next {
		skip := uint64(next - start)
		if skip >= uint64(len(data)) {
			return nil
		}
		start, data = next, data[skip:]
	}
	if start > next {
		return fmt.Errorf("%w: WAL chunk starts at %s, the timeline needs WAL from %s", pgwal.ErrNotContiguous, start, next)
	}
	return in.Feed(ctx, start, data)
}

func ingestStatus(s *Server, err error) error {
	switch {
	case errors.Is(err, pgwal.ErrNotContiguous):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, pgwal.ErrEndOfWAL), errors.Is(err, pgwal.ErrCorrupt):
		return status.Error(codes.DataLoss, err.Error())
	}
	return toStatus(s.log, "Ingest", err)
}

// checkSystemID refuses WAL of another cluster: systemID (0 skips the
// check) must match the timeline's stored control file.
func checkSystemID(ctx context.Context, tl *tenantmgr.Timeline, systemID uint64) error {
	if systemID == 0 {
		return nil
	}
	control, err := tl.Reader().ControlFile(ctx, tl.Runtime().LastRecordLSN())
	if err != nil {
		if errors.Is(err, timeline.ErrNotFound) {
			return nil
		}
		return err
	}
	ci, err := basebackup.ParseControlFile(control)
	if err != nil {
		return err
	}
	if ci.SystemID != systemID {
		return status.Errorf(codes.FailedPrecondition, "Ingest: WAL of system %d cannot go into timeline %s, which holds system %d", systemID, tl.ID(), ci.SystemID)
	}
	return nil
}
