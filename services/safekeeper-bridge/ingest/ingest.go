package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratadb/strata/internal/lsn"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/spool"
)

// Config configures a Sender.
type Config struct {
	TenantID, TimelineID string
	// Source names the bridge in the pageserver's logs.
	Source string
	// MinBackoff and MaxBackoff bound reconnect delays (100 ms, 5 s).
	MinBackoff, MaxBackoff time.Duration
	// KeepaliveInterval is how often an idle stream asks for progress
	// (default 1 s), so disk_consistent_lsn keeps flowing back.
	KeepaliveInterval time.Duration
}

// Stats are the sender's counters, safe to read concurrently.
type Stats struct {
	// SentLSN is the end of the WAL sent in the current or last session.
	SentLSN lsn.AtomicLSN
	// LastRecordLSN, DiskConsistentLSN and RemoteConsistentLSN are the
	// pageserver's last reported positions (never moving backwards here).
	LastRecordLSN, DiskConsistentLSN, RemoteConsistentLSN lsn.AtomicLSN
	// LastProgress is the Unix nanosecond time of the last progress message.
	LastProgress atomic.Int64
	// Reconnects counts sessions after the first.
	Reconnects atomic.Int64
	// Connected is true while a session is open.
	Connected atomic.Bool

	mu      sync.Mutex
	lastErr error
}

// LastError returns the error that ended the last session (nil if none).
func (s *Stats) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *Stats) setError(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// Sender streams a timeline's spooled WAL to the pageserver.
type Sender struct {
	cfg    Config
	client pb.IngestServiceClient
	spool  *spool.Spool
	log    *slog.Logger
	stats  Stats
}

// New returns a Sender. The client carries the safekeeperdata token as
// per-RPC credentials.
func New(cfg Config, client pb.IngestServiceClient, sp *spool.Spool, log *slog.Logger) *Sender {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Sender{cfg: cfg, client: client, spool: sp, log: log}
}

// Stats returns the live counters.
func (s *Sender) Stats() *Stats { return &s.stats }

// DiskConsistentLSN returns the pageserver's last reported
// disk_consistent_lsn, or Invalid before the first report.
func (s *Sender) DiskConsistentLSN() lsn.LSN { return s.stats.DiskConsistentLSN.Load() }

// Run streams until ctx is cancelled (nil) or a permanent error.
func (s *Sender) Run(ctx context.Context) error {
	backoff := s.cfg.MinBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.stats.Reconnects.Add(1)
		}
		started := time.Now()
		err := s.session(ctx)
		s.stats.Connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		s.stats.setError(err)
		if errors.Is(err, ErrWALGap) || errors.Is(err, spool.ErrCorrupt) || errors.Is(err, spool.ErrClosed) {
			s.log.Error("ingest stopped", "timeline", s.cfg.TimelineID, "err", err)
			return err
		}
		if time.Since(started) > 10*s.cfg.MaxBackoff {
			backoff = s.cfg.MinBackoff
		}
		s.log.Warn("ingest stream failed; reconnecting", "timeline", s.cfg.TimelineID, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

func (s *Sender) progress(p *pb.IngestProgress) {
	if p == nil {
		return
	}
	s.stats.LastRecordLSN.FetchMax(lsn.LSN(p.GetLastRecordLsn()))
	s.stats.RemoteConsistentLSN.FetchMax(lsn.LSN(p.GetRemoteConsistentLsn()))
	s.stats.LastProgress.Store(time.Now().UnixNano())
	dcl := lsn.LSN(p.GetDiskConsistentLsn())
	if s.stats.DiskConsistentLSN.FetchMax(dcl) < dcl {
		if n, err := s.spool.TrimBelow(dcl); err != nil {
			s.log.Warn("trimming spool", "below", dcl, "err", err)
		} else if n > 0 {
			s.log.Debug("trimmed spool", "below", dcl, "segments", n)
		}
	}
}

func (s *Sender) session(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := s.client.Ingest(ctx)
	if err != nil {
		return fmt.Errorf("ingest: opening stream: %w", err)
	}
	systemID, tli := s.spool.Identity()
	err = stream.Send(&pb.IngestRequest{Message: &pb.IngestRequest_Start{Start: &pb.IngestStart{
		Timeline:     &pb.TimelineRef{TenantId: s.cfg.TenantID, TimelineId: s.cfg.TimelineID},
		SystemId:     systemID,
		PgTimelineId: tli,
		Source:       s.cfg.Source,
	}}})
	if err != nil {
		return fmt.Errorf("ingest: sending start: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("ingest: waiting for ready: %w", err)
	}
	ready := first.GetReady()
	if ready == nil {
		return fmt.Errorf("%w: first reply is not IngestReady", ErrProtocol)
	}
	s.progress(ready.GetProgress())
	start := lsn.LSN(ready.GetStartLsn())
	if spoolStart := s.spool.StartLSN(); spoolStart.IsValid() && start < spoolStart {
		return fmt.Errorf("%w: pageserver needs WAL from %s, spool starts at %s", ErrWALGap, start, spoolStart)
	}
	rd, err := s.spool.NewReader(start)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWALGap, err)
	}
	defer rd.Close()
	s.stats.Connected.Store(true)
	s.stats.SentLSN.Store(start)
	s.log.Info("ingest stream open", "timeline", s.cfg.TimelineID, "start", start)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	wg.Go(func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				cancel(fmt.Errorf("ingest: receiving progress: %w", err))
				return
			}
			if p := msg.GetProgress(); p != nil {
				s.progress(p)
			} else {
				cancel(fmt.Errorf("%w: unexpected reply after ready", ErrProtocol))
				return
			}
		}
	})

	var batch []byte // reused: Send has serialized the message when it returns
	for {
		wctx, wcancel := context.WithTimeout(ctx, s.cfg.KeepaliveInterval)
		c, err := rd.Next(wctx)
		wcancel()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				err = stream.Send(&pb.IngestRequest{Message: &pb.IngestRequest_Keepalive{Keepalive: &pb.IngestKeepalive{ReplyRequested: true}}})
				if err != nil {
					return s.sendErr(ctx, err)
				}
				continue
			}
			if errors.Is(err, spool.ErrTrimmed) {
				return fmt.Errorf("%w: %w", ErrWALGap, err)
			}
			return err
		}
		start, data := c.LSN, c.Data
		if s.spool.FlushLSN() > c.End() {
			// A backlog: send up to maxMessageBytes of WAL at once (frames
			// are at most 128 KiB, as the walsender sent them), so that
			// both ends pay their per-message costs less often.
			batch = append(batch[:0], c.Data...)
			for len(batch) < maxMessageBytes && s.spool.FlushLSN() > start.Add(uint64(len(batch))) {
				more, err := rd.Next(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return context.Cause(ctx)
					}
					if errors.Is(err, spool.ErrTrimmed) {
						return fmt.Errorf("%w: %w", ErrWALGap, err)
					}
					return err
				}
				batch = append(batch, more.Data...)
			}
			data = batch
		}
		err = stream.Send(&pb.IngestRequest{Message: &pb.IngestRequest_Wal{Wal: &pb.WalChunk{
			StartLsn:       uint64(start),
			Data:           data,
			SenderFlushLsn: uint64(s.spool.FlushLSN()),
			SentAt:         timestamppb.Now(),
		}}})
		if err != nil {
			return s.sendErr(ctx, err)
		}
		s.stats.SentLSN.Store(start.Add(uint64(len(data))))
	}
}

// maxMessageBytes bounds the WAL of one WalChunk message when frames are
// batched (the pageserver accepts messages of 16 MiB).
const maxMessageBytes = 1 << 20

// sendErr prefers the receive side's error, which carries the server's
// status, over Send's io.EOF.
func (s *Sender) sendErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
		return cause
	}
	return fmt.Errorf("ingest: sending WAL: %w", err)
}
