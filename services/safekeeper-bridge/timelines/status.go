package timelines

import (
	"sync"
	"time"

	"github.com/stratadb/strata/internal/lsn"
)

// States of a timeline (TimelineStatus.state in the BridgeService API).
const (
	StateImporting  = "importing"  // taking and streaming the base backup
	StateConnecting = "connecting" // running; the primary or the pageserver stream is not open
	StateStreaming  = "streaming"  // both streams open
	StateStopped    = "stopped"    // not running (bridge starting or shutting down)
	StateError      = "error"      // stopped by a permanent error (Err)
)

// Status is the state of one attached timeline. It never holds the
// primary's connection string.
type Status struct {
	TenantID, TimelineID, SlotName string
	State                          string
	// Import and Imported tell whether the timeline was created from a
	// base backup and whether that finished.
	Import, Imported bool
	// FromConfig marks a [[timeline]] table of the config file.
	FromConfig bool
	// SpooledLSN is the spool's durable end; SpoolStartLSN its oldest byte.
	SpooledLSN, SpoolStartLSN lsn.LSN
	// ReceivedLSN is the end of WAL received from the primary;
	// PrimaryFlushLSN the primary's WAL end as it last said.
	ReceivedLSN, PrimaryFlushLSN lsn.LSN
	// SentLSN is the end of WAL sent to the pageserver; LastRecordLSN and
	// DiskConsistentLSN are the pageserver's acknowledgements.
	SentLSN, LastRecordLSN, DiskConsistentLSN lsn.LSN
	// ReportedFlushLSN is the flush position last confirmed to the slot.
	ReportedFlushLSN                      lsn.LSN
	PrimaryConnected, PageserverConnected bool
	// LagBytes is PrimaryFlushLSN − LastRecordLSN (0 when caught up).
	LagBytes uint64
	// Lag is the age of the oldest WAL the primary had flushed that the
	// pageserver has not ingested yet: now minus the moment the bridge
	// first learned that the primary's flush LSN had passed the pageserver's
	// current last_record_lsn. 0 when the pageserver has everything the
	// primary reported. Resolution: Options.LagSampleInterval plus the
	// primary's reporting period (every WAL message, keepalives at least
	// every wal_sender_timeout/2).
	Lag time.Duration
	// Reconnects counts reconnects to the primary and to the pageserver.
	Reconnects int64
	// LastMessageAt is when the pageserver last reported progress (zero if
	// never).
	LastMessageAt time.Time
	// Err is the permanent error that stopped the timeline (a WAL gap, a
	// missing slot, a failed import ...), or nil while it runs.
	Err error
	// LastError is the error that ended the last connection to the
	// primary or the pageserver, or the last failed import attempt; it is
	// informative while the timeline retries.
	LastError error
}

func (tl *timeline) status(now time.Time) Status {
	tl.mu.Lock()
	a, state, err, importErr, streamer, sender := tl.att, tl.state, tl.err, tl.importErr, tl.streamer, tl.sender
	tl.mu.Unlock()
	st := Status{
		TenantID: a.TenantID, TimelineID: a.TimelineID, SlotName: a.SlotName,
		State: state, Import: a.Import, Imported: a.Imported, FromConfig: a.FromConfig,
		SpooledLSN: tl.spool.FlushLSN(), SpoolStartLSN: tl.spool.StartLSN(),
		Err: err, LastError: importErr,
	}
	if streamer != nil && sender != nil {
		rs, is := streamer.Stats(), sender.Stats()
		st.ReceivedLSN, st.PrimaryFlushLSN = rs.ReceivedLSN.Load(), rs.PrimaryFlushLSN.Load()
		st.SentLSN, st.LastRecordLSN, st.DiskConsistentLSN = is.SentLSN.Load(), is.LastRecordLSN.Load(), is.DiskConsistentLSN.Load()
		st.ReportedFlushLSN = rs.ReportedFlushLSN.Load()
		st.PrimaryConnected, st.PageserverConnected = rs.Connected.Load(), is.Connected.Load()
		st.Reconnects = rs.Reconnects.Load() + is.Reconnects.Load()
		if ns := is.LastProgress.Load(); ns != 0 {
			st.LastMessageAt = time.Unix(0, ns)
		}
		if st.State == StateConnecting || st.State == StateStreaming {
			if st.PrimaryConnected && st.PageserverConnected {
				st.State = StateStreaming
			} else {
				st.State = StateConnecting
				if e := rs.LastError(); e != nil && !st.PrimaryConnected {
					st.LastError = e
				} else if e := is.LastError(); e != nil && !st.PageserverConnected {
					st.LastError = e
				}
			}
		}
		st.LagBytes = st.PrimaryFlushLSN.Sub(st.LastRecordLSN)
		st.Lag = tl.lag.lag(st.LastRecordLSN, now)
	}
	return st
}

// lagTracker measures the lag in seconds. It keeps a FIFO of (primary flush
// LSN, first time seen) samples with increasing LSNs; a sample leaves the
// queue once the pageserver's last_record_lsn reaches it, so the head is the
// oldest WAL the pageserver still lacks. Memory is bounded by
// maxLagSamples: when full, the newest sample absorbs new LSNs and keeps its
// older time, which can only overstate the lag, never hide it.
type lagTracker struct {
	mu      sync.Mutex
	samples []lagSample
}

type lagSample struct {
	lsn lsn.LSN
	at  time.Time
}

const maxLagSamples = 4096

func (l *lagTracker) observe(primaryFlush, lastRecord lsn.LSN, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.popLocked(lastRecord)
	if primaryFlush <= lastRecord {
		return
	}
	n := len(l.samples)
	switch {
	case n > 0 && primaryFlush <= l.samples[n-1].lsn:
	case n >= maxLagSamples:
		l.samples[n-1].lsn = primaryFlush
	default:
		l.samples = append(l.samples, lagSample{lsn: primaryFlush, at: now})
	}
}

func (l *lagTracker) popLocked(lastRecord lsn.LSN) {
	i := 0
	for i < len(l.samples) && l.samples[i].lsn <= lastRecord {
		i++
	}
	if i > 0 {
		l.samples = append(l.samples[:0], l.samples[i:]...)
	}
}

// lag returns the lag at now for the pageserver's lastRecord.
func (l *lagTracker) lag(lastRecord lsn.LSN, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.samples {
		if s.lsn > lastRecord {
			return max(now.Sub(s.at), 0)
		}
	}
	return 0
}
