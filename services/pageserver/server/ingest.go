package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
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

	// Two goroutines, so that decoding a chunk overlaps with storing the
	// one before (pgdatadir's Decode/Store split). The receiver receives
	// each message as gRPC's receive buffers (rawIngestRequest), decodes
	// the WAL straight from them, frees them and hands the records over;
	// this goroutine stores them and does every Send. The receiver stays
	// at most pipelineDepth decoded chunks ahead.
	items := make(chan ingestItem, pipelineDepth)
	free := make(chan *pgdatadir.Decoded, pipelineDepth+2)
	for range pipelineDepth + 2 {
		free <- new(pgdatadir.Decoded)
	}
	done := make(chan struct{})
	defer close(done)
	go receiveAndDecode(stream, in, items, free, done)

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
		case it := <-items:
			switch {
			case errors.Is(it.err, io.EOF):
				return nil
			case errors.Is(it.err, errMalformed), errors.Is(it.err, errUnexpectedMessage):
				return status.Error(codes.InvalidArgument, it.err.Error())
			case errors.Is(it.err, errDecodePanic):
				log.Error("ingest failed", "err", it.err)
				return status.Error(codes.Internal, "Ingest: internal error while decoding WAL (panic recovered; see server log)")
			case errors.Is(it.err, pgwal.ErrNotContiguous):
				log.Error("ingest failed", "err", it.err)
				return ingestStatus(s, it.err)
			case it.err != nil:
				return it.err // the stream's own error
			case it.keepalive != nil:
				if it.keepalive.GetReplyRequested() {
					if err := send(); err != nil {
						return err
					}
				}
				continue
			}
			err := in.Store(ctx, it.wal)
			free <- it.wal
			if err != nil {
				log.Error("ingest failed", "err", err)
				return ingestStatus(s, err)
			}
			if rt.DiskConsistentLSN() != reported {
				if err := send(); err != nil {
					return err
				}
			}
		}
	}
}

// pipelineDepth is how many decoded chunks (up to 1 MiB of WAL each) the
// receiver of an Ingest stream may be ahead of storing.
const pipelineDepth = 4

// errMalformed marks a request that is not a valid IngestRequest;
// errUnexpectedMessage one that may not follow IngestStart.
var (
	errMalformed         = errors.New("ingest: malformed request")
	errUnexpectedMessage = errors.New("ingest: only WAL chunks and keepalives may follow IngestStart")
	// errDecodePanic marks a panic recovered on the receive goroutine.
	errDecodePanic = errors.New("ingest: internal error")
)

// ingestItem is what the receiver hands to the storing goroutine: decoded
// WAL, a keepalive, or the error that ends the stream (io.EOF: the client
// closed it).
type ingestItem struct {
	wal       *pgdatadir.Decoded
	keepalive *pb.IngestKeepalive
	err       error
}

// receiveAndDecode receives the requests after IngestStart and decodes
// their WAL (the decoding side of in), until the stream ends or done is
// closed. The last item it sends carries an error.
func receiveAndDecode(stream pb.IngestService_IngestServer, in *pgdatadir.Ingest, items chan<- ingestItem, free chan *pgdatadir.Decoded, done <-chan struct{}) {
	hand := func(it ingestItem) bool {
		select {
		case items <- it:
			return true
		case <-done:
			if it.wal != nil {
				free <- it.wal
			}
			return false
		}
	}
	// Parsing and decoding run here, outside the handler: a panic on some
	// input must fail this stream, as the recovery interceptor does for
	// the handler, not the process.
	defer func() {
		if p := recover(); p != nil {
			hand(ingestItem{err: fmt.Errorf("%w: panic while decoding: %v\n%s", errDecodePanic, p, debug.Stack())})
		}
	}()
	r := &rawIngestRequest{}
	for {
		if err := stream.RecvMsg(r); err != nil {
			hand(ingestItem{err: err})
			return
		}
		wal, m, err := r.decode()
		if err != nil {
			r.free()
			hand(ingestItem{err: fmt.Errorf("%w: %v", errMalformed, err)})
			return
		}
		if wal == nil {
			r.free()
			if m.GetKeepalive() == nil {
				hand(ingestItem{err: errUnexpectedMessage})
				return
			}
			if !hand(ingestItem{keepalive: m.GetKeepalive()}) {
				return
			}
			continue
		}
		var d *pgdatadir.Decoded
		select {
		case d = <-free:
		case <-done:
			r.free()
			return
		}
		stored, err := decodeChunk(in, lsn.LSN(wal.startLSN), wal.data, d)
		r.free()
		if err != nil {
			free <- d
			hand(ingestItem{err: err})
			return
		}
		if !stored {
			free <- d // all of it was ingested before
			continue
		}
		if !hand(ingestItem{wal: d}) {
			return
		}
	}
}

// decodeChunk decodes the WAL at start (consecutive pieces) into d,
// dropping any prefix in already has (WAL is re-sent from the requested
// start, which may be below what was fed). It reports false when nothing
// was left to decode.
func decodeChunk(in *pgdatadir.Ingest, start lsn.LSN, data [][]byte, d *pgdatadir.Decoded) (bool, error) {
	next := in.NextLSN()
	for start < next && len(data) > 0 {
		skip := min(uint64(next-start), uint64(len(data[0])))
		start = start.Add(skip)
		if data[0] = data[0][skip:]; len(data[0]) == 0 {
			data = data[1:]
		}
	}
	if start > next {
		return false, fmt.Errorf("%w: WAL chunk starts at %s, the timeline needs WAL from %s", pgwal.ErrNotContiguous, start, next)
	}
	if len(data) == 0 {
		return false, nil
	}
	return true, in.DecodeChunks(start, data, d)
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
