package ingesttest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// Options configures a fake.
type Options struct {
	// FlushBytes advances disk_consistent_lsn after this many bytes
	// (default 256 KiB). FlushInterval also advances it when time passes
	// (default 200 ms).
	FlushBytes    int
	FlushInterval time.Duration
	// ChunkDelay, if set, sleeps before processing each chunk (a slow
	// pageserver).
	ChunkDelay time.Duration
	// RawBytes skips decoding: the fake only checks that chunks are
	// contiguous and keeps every byte (see Data), treating each chunk end as
	// a record end. For tests that stream arbitrary bytes.
	RawBytes bool
	// StartsAtRecord says that start is a record boundary (a base
	// backup's start LSN), so decoding begins there instead of seeking to
	// the first record that starts on a later page.
	StartsAtRecord bool
}

// Fake is a fake IngestService.
type Fake struct {
	pb.UnimplementedIngestServiceServer
	opts Options

	session sync.Mutex // one stream at a time

	mu sync.Mutex
	// persisted state ("on disk")
	dcl          lsn.LSN // disk_consistent_lsn
	dclAtRecord  bool    // dcl is a record boundary (else: seek from it)
	dclPrev      lsn.LSN // start of the record ending at dcl
	dclRecords   int
	maxAckedDCL  lsn.LSN
	lastRecord   lsn.LSN
	records      int
	bytes        int64
	err          error
	streams      int
	chunkDelay   time.Duration
	lastSystemID uint64
	start        lsn.LSN
	data         []byte // RawBytes: the bytes from start to lastRecord
}

// New returns a fake that needs WAL from start (it behaves as if it had
// imported a base backup ending there).
func New(start lsn.LSN, opts Options) *Fake {
	if opts.FlushBytes <= 0 {
		opts.FlushBytes = 256 << 10
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 200 * time.Millisecond
	}
	return &Fake{opts: opts, dcl: start, dclAtRecord: opts.StartsAtRecord, maxAckedDCL: start, chunkDelay: opts.ChunkDelay, start: start}
}

// LastRecordLSN returns the end of the last whole record decoded.
func (f *Fake) LastRecordLSN() lsn.LSN { f.mu.Lock(); defer f.mu.Unlock(); return f.lastRecord }

// DiskConsistentLSN returns the simulated persisted position.
func (f *Fake) DiskConsistentLSN() lsn.LSN { f.mu.Lock(); defer f.mu.Unlock(); return f.dcl }

// MaxAckedDCL returns the largest disk_consistent_lsn ever sent.
func (f *Fake) MaxAckedDCL() lsn.LSN { f.mu.Lock(); defer f.mu.Unlock(); return f.maxAckedDCL }

// Records returns the number of records decoded (including re-ingested ones).
func (f *Fake) Records() int { f.mu.Lock(); defer f.mu.Unlock(); return f.records }

// Streams returns the number of Ingest streams opened.
func (f *Fake) Streams() int { f.mu.Lock(); defer f.mu.Unlock(); return f.streams }

// Err returns the first validation error (non-contiguous or undecodable
// WAL), or nil.
func (f *Fake) Err() error { f.mu.Lock(); defer f.mu.Unlock(); return f.err }

// Data returns a copy of the bytes received from the initial start up to
// LastRecordLSN (RawBytes mode only).
func (f *Fake) Data() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.data...)
}

// SetChunkDelay changes the per-chunk delay.
func (f *Fake) SetChunkDelay(d time.Duration) { f.mu.Lock(); f.chunkDelay = d; f.mu.Unlock() }

func (f *Fake) fail(err error) error {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	return status.Error(codes.DataLoss, err.Error())
}

func (f *Fake) progressLocked() *pb.IngestProgress {
	if f.dcl > f.maxAckedDCL {
		f.maxAckedDCL = f.dcl
	}
	return &pb.IngestProgress{LastRecordLsn: uint64(f.lastRecord), DiskConsistentLsn: uint64(f.dcl)}
}

// Ingest implements the IngestService.
func (f *Fake) Ingest(stream pb.IngestService_IngestServer) error {
	f.session.Lock()
	defer f.session.Unlock()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil || start.GetTimeline() == nil {
		return status.Error(codes.InvalidArgument, "first message must be IngestStart with a timeline")
	}

	f.mu.Lock()
	f.streams++
	f.lastSystemID = start.GetSystemId()
	from := f.dcl
	var opts []pgwal.Option
	if f.dclAtRecord {
		opts = append(opts, pgwal.StartsAtRecord(f.dclPrev))
	}
	// Forget what was not flushed, as a restarted pageserver would.
	f.lastRecord = f.dcl
	f.records = f.dclRecords
	if f.opts.RawBytes {
		f.data = f.data[:f.dcl-f.start]
	}
	sinceFlush := 0
	prevStart, lastEnd := f.dclPrev, f.dcl
	ready := &pb.IngestReady{StartLsn: uint64(from), Progress: f.progressLocked()}
	f.mu.Unlock()

	dec, err := pgwal.NewStreamDecoder(from, opts...)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if err := stream.Send(&pb.IngestResponse{Message: &pb.IngestResponse_Ready{Ready: ready}}); err != nil {
		return err
	}
	lastFlush := time.Now()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.Message.(type) {
		case *pb.IngestRequest_Keepalive:
		case *pb.IngestRequest_Wal:
			f.mu.Lock()
			delay := f.chunkDelay
			f.mu.Unlock()
			if delay > 0 {
				time.Sleep(delay)
			}
			at, data := lsn.LSN(m.Wal.GetStartLsn()), m.Wal.GetData()
			n := 0
			if f.opts.RawBytes {
				if at != lastEnd {
					return f.fail(fmt.Errorf("%w: chunk starts at %s, stream is at %s", pgwal.ErrNotContiguous, at, lastEnd))
				}
				f.mu.Lock()
				f.data = append(f.data, data...)
				f.mu.Unlock()
				prevStart, lastEnd = lastEnd, at+lsn.LSN(len(data))
				n = 1
			} else if err := dec.FeedAt(at, data); err != nil {
				return f.fail(err)
			}
			for !f.opts.RawBytes {
				rec, err := dec.Next()
				if errors.Is(err, pgwal.ErrNeedMore) {
					break
				}
				if err != nil {
					return f.fail(fmt.Errorf("decoding WAL after %s: %w", lastEnd, err))
				}
				var d pgwal.DecodedRecord
				if err := rec.Decode(&d); err != nil {
					return f.fail(fmt.Errorf("record at %s: %w", rec.LSN, err))
				}
				prevStart, lastEnd = rec.LSN, rec.EndLSN
				n++
			}
			sinceFlush += len(m.Wal.GetData())
			f.mu.Lock()
			f.bytes += int64(len(m.Wal.GetData()))
			f.records += n
			if n > 0 {
				f.lastRecord = lastEnd
			}
			f.mu.Unlock()
		default:
			return status.Error(codes.InvalidArgument, "unexpected message after IngestStart")
		}
		f.mu.Lock()
		if (sinceFlush >= f.opts.FlushBytes || time.Since(lastFlush) >= f.opts.FlushInterval) && f.lastRecord > f.dcl {
			f.dcl, f.dclAtRecord, f.dclPrev, f.dclRecords = lastEnd, true, prevStart, f.records
			sinceFlush, lastFlush = 0, time.Now()
		}
		p := f.progressLocked()
		f.mu.Unlock()
		if err := stream.Send(&pb.IngestResponse{Message: &pb.IngestResponse_Progress{Progress: p}}); err != nil {
			return err
		}
	}
}
