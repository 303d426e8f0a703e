package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/safekeeper-bridge/spool"
)

// Config configures a Streamer.
type Config struct {
	// ConnString is the primary's libpq connection string (from config or
	// env, never argv). replication=true is forced.
	ConnString string
	// SlotName is the permanent physical slot to create or reuse.
	SlotName string
	// StartLSN is where to start an empty spool with a newly created slot
	// (e.g. a base backup's start LSN). Invalid means the slot's restart_lsn.
	StartLSN lsn.LSN
	// StatusInterval is the period of standby status updates (default 1 s).
	StatusInterval time.Duration
	// Received WAL is fsynced (group commit) when the stream has been
	// quiet for SyncDelay (default 2 ms), when the oldest unsynced byte is
	// MaxSyncDelay old (default 5 ms: a steady stream still becomes
	// durable, and reaches the pageserver, promptly; under pgbench -c 4
	// the lag measured p50 6.7–7.4 ms / p99 16–17 ms against 13–18 /
	// 30–38 ms with 20 ms, at the same backlog throughput), or when
	// SyncBytes are unsynced (default 4 MiB). Bursts thus pay one fsync per
	// MiB or more instead of one per received message. The pageserver gets only fsynced WAL, so SyncBytes
	// is also how far ahead of the pageserver a burst is received before
	// the pageserver can start on it: measured on a 64 MB backlog, 4 MiB
	// moved 255–272 MB/s into the pageserver, 16 MiB (a WAL segment, the
	// granularity pg_receivewal fsyncs at) 205–250 MB/s, and 1 MiB 218–224
	// MB/s (the fsyncs then slow down receiving).
	SyncDelay    time.Duration
	MaxSyncDelay time.Duration
	SyncBytes    int
	// MinBackoff and MaxBackoff bound reconnect delays (100 ms, 5 s).
	MinBackoff, MaxBackoff time.Duration
	// ApplicationName is sent to the primary (default "strata-bridge").
	ApplicationName string
}

func (c *Config) setDefaults() {
	if c.StatusInterval <= 0 {
		c.StatusInterval = time.Second
	}
	if c.SyncDelay <= 0 {
		c.SyncDelay = 2 * time.Millisecond
	}
	if c.MaxSyncDelay <= 0 {
		c.MaxSyncDelay = max(5*time.Millisecond, c.SyncDelay)
	}
	if c.SyncBytes <= 0 {
		c.SyncBytes = 4 << 20
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.ApplicationName == "" {
		c.ApplicationName = "strata-bridge"
	}
}

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Stats are the streamer's counters, safe to read concurrently.
type Stats struct {
	// ReceivedLSN is the end of the WAL received from the primary.
	ReceivedLSN lsn.AtomicLSN
	// PrimaryFlushLSN is the primary's WAL end as last reported by it.
	PrimaryFlushLSN lsn.AtomicLSN
	// ReportedFlushLSN is the flush position last sent to the primary.
	ReportedFlushLSN lsn.AtomicLSN
	// Reconnects counts connection attempts after the first.
	Reconnects atomic.Int64
	// Connected is true while a replication stream is open.
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

// Streamer streams one timeline's WAL from a primary into a spool.
type Streamer struct {
	cfg   Config
	spool *spool.Spool
	// diskConsistentLSN returns the pageserver's persisted LSN (Invalid if
	// unknown); the slot is never confirmed past it.
	diskConsistentLSN func() lsn.LSN
	log               *slog.Logger
	stats             Stats
}

// New returns a Streamer writing into sp. diskConsistentLSN reports the
// pageserver's persisted position; it is called from Run's goroutine.
func New(cfg Config, sp *spool.Spool, diskConsistentLSN func() lsn.LSN, log *slog.Logger) (*Streamer, error) {
	cfg.setDefaults()
	if !slotNameRE.MatchString(cfg.SlotName) {
		return nil, fmt.Errorf("%w: slot name %q must be 1-63 characters of a-z, 0-9 and _", ErrConfig, cfg.SlotName)
	}
	if cfg.ConnString == "" {
		return nil, fmt.Errorf("%w: empty connection string", ErrConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Streamer{cfg: cfg, spool: sp, diskConsistentLSN: diskConsistentLSN, log: log}, nil
}

// Stats returns the live counters.
func (s *Streamer) Stats() *Stats { return &s.stats }

// Run streams until ctx is cancelled (returning nil) or a permanent error
// occurs (returned, and kept in Stats). Transient failures reconnect with
// exponential backoff.
func (s *Streamer) Run(ctx context.Context) error {
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
		if permanent(err) || errors.Is(err, spool.ErrIdentity) || errors.Is(err, spool.ErrCorrupt) || errors.Is(err, spool.ErrClosed) {
			s.log.Error("replication stopped", "slot", s.cfg.SlotName, "err", err)
			return err
		}
		if time.Since(started) > 10*s.cfg.MaxBackoff {
			backoff = s.cfg.MinBackoff
		}
		s.log.Warn("replication connection failed; reconnecting", "slot", s.cfg.SlotName, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

func (s *Streamer) connect(ctx context.Context) (*pgconn.PgConn, error) {
	return Connect(ctx, s.cfg.ConnString, s.cfg.ApplicationName)
}

// slotInfo is READ_REPLICATION_SLOT's answer (PostgreSQL 15).
type slotInfo struct {
	exists     bool
	physical   bool
	restartLSN lsn.LSN
}

func readSlot(ctx context.Context, conn *pgconn.PgConn, name string) (slotInfo, error) {
	res, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+name).ReadAll()
	if err != nil {
		return slotInfo{}, fmt.Errorf("replication: READ_REPLICATION_SLOT %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 2 {
		return slotInfo{}, fmt.Errorf("replication: READ_REPLICATION_SLOT %s: unexpected result shape", name)
	}
	row := res[0].Rows[0]
	if row[0] == nil {
		return slotInfo{}, nil
	}
	info := slotInfo{exists: true, physical: string(row[0]) == "physical"}
	if row[1] != nil {
		l, err := lsn.Parse(string(row[1]))
		if err != nil {
			return slotInfo{}, fmt.Errorf("replication: slot %s restart_lsn: %w", name, err)
		}
		info.restartLSN = l
	}
	return info, nil
}

// session runs one connection: identify, slot, start, stream.
func (s *Streamer) session(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()

	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return fmt.Errorf("replication: IDENTIFY_SYSTEM: %w", err)
	}
	systemID, err := strconv.ParseUint(sys.SystemID, 10, 64)
	if err != nil {
		return fmt.Errorf("replication: IDENTIFY_SYSTEM returned system id %q: %w", sys.SystemID, err)
	}
	// A primary on a newer timeline than the spooled WAL (a promoted
	// standby, a failover): follow it only if the spooled WAL is part of
	// the new timeline's history.
	if _, from := s.spool.Identity(); from != 0 && uint32(sys.Timeline) > from {
		if spooled := s.spool.WrittenLSN(); spooled.IsValid() {
			end, err := checkTimelineSwitch(ctx, conn, from, uint32(sys.Timeline), spooled)
			if err != nil {
				return err
			}
			s.log.Info("following the primary's timeline switch", "slot", s.cfg.SlotName, "from_timeline", from, "to_timeline", sys.Timeline, "switch_lsn", end, "spooled", spooled)
		}
	}
	if err := s.spool.SetIdentity(systemID, uint32(sys.Timeline)); err != nil {
		return err
	}

	slot, err := readSlot(ctx, conn, s.cfg.SlotName)
	if err != nil {
		return err
	}
	spooled := s.spool.WrittenLSN()
	switch {
	case slot.exists && !slot.physical:
		return fmt.Errorf("%w: slot %s exists but is not a physical slot", ErrConfig, s.cfg.SlotName)
	case !slot.exists && spooled.IsValid():
		return fmt.Errorf("%w: slot %s does not exist on the primary but the spool holds WAL up to %s; WAL after it may have been removed (recreate the slot only after checking, or re-import the timeline)", ErrSlotMissing, s.cfg.SlotName, spooled)
	case !slot.exists:
		if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.cfg.SlotName, "", pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.PhysicalReplication, SnapshotAction: "RESERVE_WAL"}); err != nil {
			return fmt.Errorf("replication: creating slot %s: %w", s.cfg.SlotName, err)
		}
		if slot, err = readSlot(ctx, conn, s.cfg.SlotName); err != nil {
			return err
		}
		s.log.Info("created replication slot", "slot", s.cfg.SlotName, "restart_lsn", slot.restartLSN)
	}

	start := spooled
	if !start.IsValid() {
		start = slot.restartLSN
		if s.cfg.StartLSN.IsValid() {
			start = s.cfg.StartLSN
		}
	}
	if slot.restartLSN.IsValid() && slot.restartLSN > start {
		return fmt.Errorf("%w: slot %s has restart_lsn %s but the spool needs WAL from %s; the primary may have removed it", ErrWALGap, s.cfg.SlotName, slot.restartLSN, start)
	}
	if !start.IsValid() {
		return fmt.Errorf("%w: no start position: slot %s has no restart_lsn and the spool is empty", ErrConfig, s.cfg.SlotName)
	}

	err = pglogrepl.StartReplication(ctx, conn, s.cfg.SlotName, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{Timeline: sys.Timeline, Mode: pglogrepl.PhysicalReplication})
	if err != nil {
		return classify(fmt.Errorf("replication: START_REPLICATION SLOT %s PHYSICAL %s TIMELINE %d: %w", s.cfg.SlotName, start, sys.Timeline, err))
	}
	s.log.Info("streaming", "slot", s.cfg.SlotName, "start", start, "timeline", sys.Timeline, "system_id", systemID)
	s.stats.Connected.Store(true)
	if !s.stats.ReceivedLSN.Load().IsValid() || s.stats.ReceivedLSN.Load() < start {
		s.stats.ReceivedLSN.Store(start)
	}
	return classify(s.stream(ctx, conn, start))
}

// classify turns the primary's "already removed" error into ErrWALRemoved.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "has already been removed") {
		return fmt.Errorf("%w: %w", ErrWALRemoved, err)
	}
	return err
}

// stream receives CopyData until an error; pos is where the next WAL byte
// must start.
func (s *Streamer) stream(ctx context.Context, conn *pgconn.PgConn, pos lsn.LSN) error {
	unsynced := 0
	// syncDeadline: quiet-period deadline, pushed on by every append but
	// never past oldestDeadline (MaxSyncDelay after the first unsynced byte).
	var syncDeadline, oldestDeadline time.Time
	nextStatus := time.Now()
	for {
		now := time.Now()
		if unsynced > 0 && (unsynced >= s.cfg.SyncBytes || !now.Before(syncDeadline)) {
			if _, err := s.spool.Sync(); err != nil {
				return err
			}
			unsynced = 0
		}
		if !now.Before(nextStatus) {
			if err := s.sendStatus(conn, false); err != nil {
				return err
			}
			nextStatus = now.Add(s.cfg.StatusInterval)
		}
		deadline := nextStatus
		if unsynced > 0 && syncDeadline.Before(deadline) {
			deadline = syncDeadline
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("replication: receiving: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("replication: %w", err)
				}
				start := lsn.LSN(x.WALStart)
				if start != pos {
					return fmt.Errorf("%w: primary sent WAL at %s but the spool ends at %s", ErrWALGap, start, pos)
				}
				if len(x.WALData) == 0 {
					continue
				}
				if err := s.spool.Append(start, x.WALData); err != nil {
					return err
				}
				now := time.Now()
				if unsynced == 0 {
					oldestDeadline = now.Add(s.cfg.MaxSyncDelay)
				}
				syncDeadline = now.Add(s.cfg.SyncDelay)
				if syncDeadline.After(oldestDeadline) {
					syncDeadline = oldestDeadline
				}
				unsynced += len(x.WALData)
				pos = start + lsn.LSN(len(x.WALData))
				s.stats.ReceivedLSN.Store(pos)
				s.stats.PrimaryFlushLSN.Store(lsn.LSN(x.ServerWALEnd))
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("replication: %w", err)
				}
				s.stats.PrimaryFlushLSN.Store(lsn.LSN(k.ServerWALEnd))
				if k.ReplyRequested {
					if unsynced > 0 {
						if _, err := s.spool.Sync(); err != nil {
							return err
						}
						unsynced = 0
					}
					if err := s.sendStatus(conn, false); err != nil {
						return err
					}
					nextStatus = time.Now().Add(s.cfg.StatusInterval)
				}
			}
		case *pgproto3.CopyDone:
			// The primary ended the timeline (it was a standby that got
			// promoted, or is shutting down): reconnect and follow.
			return fmt.Errorf("replication: primary ended the stream at %s (timeline switch or shutdown)", pos)
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		}
	}
}

// sendStatus sends a standby status update (see doc.go for the positions).
// pglogrepl.SendStandbyStatusUpdate is not used because it replaces a 0/0
// flush position with the write position, which would confirm WAL the
// pageserver has not persisted.
func (s *Streamer) sendStatus(conn *pgconn.PgConn, replyRequested bool) error {
	spooled := s.spool.FlushLSN()
	confirmed := lsn.Invalid
	if dcl := s.diskConsistentLSN(); dcl.IsValid() && spooled.IsValid() {
		confirmed = min(dcl, spooled)
	}
	buf := make([]byte, 0, 40)
	buf = append(buf, 'd', 0, 0, 0, 0, pglogrepl.StandbyStatusUpdateByteID)
	buf = binary.BigEndian.AppendUint64(buf, uint64(spooled))
	buf = binary.BigEndian.AppendUint64(buf, uint64(confirmed))
	buf = binary.BigEndian.AppendUint64(buf, uint64(confirmed))
	buf = binary.BigEndian.AppendUint64(buf, uint64(time.Now().UnixMicro()-pgEpochMicros))
	if replyRequested {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	binary.BigEndian.PutUint32(buf[1:], uint32(len(buf)-1))
	if err := conn.Frontend().SendUnbufferedEncodedCopyData(buf); err != nil {
		return fmt.Errorf("replication: sending status update: %w", err)
	}
	s.stats.ReportedFlushLSN.Store(confirmed)
	return nil
}

// pgEpochMicros is 2000-01-01 00:00:00 UTC in Unix microseconds.
const pgEpochMicros = 946684800 * 1_000_000
