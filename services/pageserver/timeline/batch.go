package timeline

import (
	"context"
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
)

// Batch stores consecutive WAL records under one hold of the ingest lock
// (see IngestBatch). It is valid only inside IngestBatch's callback.
type Batch struct {
	t     *Timeline
	m     Modification // reused by every record: one allocation per batch
	prev  lsn.LSN      // start of the last whole record stored
	last  lsn.LSN      // end of the last whole record stored
	count int
}

// LastRecordLSN is the end of the last whole record stored: the timeline's
// last_record_lsn before the batch, then the end of the batch's last
// record. Records ending at or before it must not be stored again.
func (b *Batch) LastRecordLSN() lsn.LSN { return b.last }

// Record runs fn to store the values of the WAL record [start, end), as
// IngestRecord does. m is valid only during fn. A failure breaks the
// timeline.
func (b *Batch) Record(start, end lsn.LSN, fn func(m *Modification) error) error {
	if end <= b.last {
		return fmt.Errorf("timeline: record %s..%s ends at or before last_record_lsn %s", start, end, b.last)
	}
	b.m = Modification{t: b.t, end: end, buf: b.m.buf[:0]}
	if err := fn(&b.m); err != nil {
		b.t.setBroken(fmt.Errorf("ingesting record at %s: %w", start, err))
		return err
	}
	b.prev, b.last = start, end
	b.count++
	return nil
}

// IngestBatch is IngestRecord for many records: fn stores records through
// b.Record, and when it returns, last_record_lsn advances once to the end
// of the last whole record stored (prev_record_lsn to its start) — also
// when fn fails after some records, unless a record's own failure broke the
// timeline. Readers never see half a record: a read at an LSN up to
// last_record_lsn ignores the newer values of records stored after it,
// and nothing waiting on last_record_lsn wakes before a record is whole.
//
// It saves, per record, the ingest lock, the seqwait advance and the
// freeze check; the callback should cover a bounded amount of WAL (one
// received chunk) so that last_record_lsn keeps moving.
func (t *Timeline) IngestBatch(ctx context.Context, fn func(b *Batch) error) error {
	t.ingestMu.Lock()
	defer t.ingestMu.Unlock()
	if err := t.brokenErr(); err != nil {
		return err
	}
	b := &Batch{t: t, last: t.lastRecord.Load()}
	err := fn(b)
	if b.count == 0 {
		return err
	}
	if berr := t.brokenErr(); berr != nil {
		// A record failed half-stored, or the timeline closed: nothing
		// more is published.
		if err == nil {
			err = berr
		}
		return err
	}
	t.prevRecord.Store(b.prev)
	if _, aerr := t.lastRecord.Advance(b.last); aerr != nil && err == nil {
		err = aerr
	}
	t.maybeFreezeLocked(false)
	return err
}
