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

	// Two stages on two goroutines, so that decoding and storing use two
	// cores: the receiver goroutine receives each message and decodes its
	// WAL (the decoder and NextLSN are its own from here on); this one
	// stores the decoded records, in order, and does all sending. Keepalives
	// travel in the same queue, so a reply reports the WAL before them.
	// Decoded chunks are recycled through free, so that a steady stream
	// allocates none.
	const depth = 4
	msgs := make(chan received, depth)
	free := make(chan *pgdatadir.Decoded, depth+2)
	for range depth + 2 {
		free <- new(pgdatadir.Decoded)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			r := receive(stream, in, free, done)
			last := r.last() // before the handover: r.decoded is then the other goroutine's
			select {
			case msgs <- r:
			case <-done:
				return
			}
			if last {
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
		case <-tick.C:
			if rt.DiskConsistentLSN() != reported || time.Since(lastSent) >= s.opts.ProgressInterval {
				if err := send(); err != nil {
					return err
				}
			}
		case r := <-msgs:
			switch {
			case r.decoded != nil:
				err := in.Store(ctx, r.decoded)
				free <- r.decoded
				if err != nil {
					log.Error("ingest failed", "err", err)
					return ingestStatus(s, err)
				}
				if rt.DiskConsistentLSN() != reported {
					if err := send(); err != nil {
						return err
					}
				}
			case r.replyRequested:
				if err := send(); err != nil {
					return err
				}
			case r.feedErr != nil:
				log.Error("ingest failed", "err", r.feedErr)
				return ingestStatus(s, r.feedErr)
			case r.err != nil:
				if errors.Is(r.err, io.EOF) {
					return nil
				}
				return r.err
			}
		}
	}
}

// received is what the receiver goroutine hands over for one message:
// decoded WAL, a keepalive that asks for a reply, or why it stopped.
type received struct {
	decoded        *pgdatadir.Decoded // WAL, to store and then return to free
	replyRequested bool
	feedErr        error // the WAL did not continue the stream
	err            error // from Recv, or a protocol violation (a status)
}

// last reports whether r is the last thing the receiver hands over.
func (r received) last() bool {
	return r.err != nil || r.feedErr != nil || (r.decoded != nil && r.decoded.Err() != nil)
}

// receive reads messages until one needs the storing goroutine's
// attention, decoding WAL into a Decoded taken from free (waiting for one
// while all are in the queue; done ends the wait).
func receive(stream pb.IngestService_IngestServer, in *pgdatadir.Ingest, free chan *pgdatadir.Decoded, done <-chan struct{}) received {
	for {
		m, err := stream.Recv()
		if err != nil {
			return received{err: err}
		}
		switch msg := m.GetMessage().(type) {
		case *pb.IngestRequest_Wal:
			var d *pgdatadir.Decoded
			select {
			case d = <-free:
			case <-done:
				return received{err: context.Canceled}
			}
			if err := decode(in, msg.Wal, d); err != nil {
				free <- d
				return received{feedErr: err}
			}
			if d.Len() == 0 && d.Err() == nil {
				free <- d // a partial record or WAL already fed: nothing to store yet
				continue
			}
			return received{decoded: d}
		case *pb.IngestRequest_Keepalive:
			if msg.Keepalive.GetReplyRequested() {
				return received{replyRequested: true}
			}
		default:
			return received{err: status.Error(codes.InvalidArgument, "Ingest: only WAL chunks and keepalives may follow IngestStart")}
		}
	}
}

// decode gives chunk to in's decoder, dropping any prefix in already has
// (WAL is re-sent from the requested start, which may be below what was
// fed), and fills into with the records it completes.
func decode(in *pgdatadir.Ingest, chunk *pb.WalChunk, into *pgdatadir.Decoded) error {
	start, data := lsn.LSN(chunk.GetStartLsn()), chunk.GetData()
	next := in.NextLSN()
	if start < next {
		skip := uint64(next - start)
		if skip >= uint64(len(data)) {
			data = nil
		} else {
			data = data[skip:]
		}
		start = next
	}
	if start > next {
		return fmt.Errorf("%w: WAL chunk starts at %s, the timeline needs WAL from %s", pgwal.ErrNotContiguous, start, next)
	}
	return in.Decode(start, data, into)
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
