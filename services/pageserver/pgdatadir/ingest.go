package pgdatadir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/native"
	"github.com/stratadb/strata/services/pageserver/timeline"
	"github.com/stratadb/strata/services/pageserver/walingest"
)

// Native adapts services/pageserver/native to timeline.NativeApplier.
type Native struct{}

// Apply implements timeline.NativeApplier.
func (Native) Apply(key keyspace.Key, at lsn.LSN, subtype uint8, payload, page []byte) ([]byte, error) {
	if err := native.Apply(subtype, payload, page, key, at); err != nil {
		return nil, err
	}
	return page, nil
}

// store adapts one record's timeline.Modification to walingest.Store and
// walingest.PageReader. Outside a record (while walingest.New loads the
// checkpoint) it reads the timeline at last_record_lsn.
type store struct {
	tl  *timeline.Timeline
	mod *timeline.Modification
	end lsn.LSN
}

func (s *store) Latest(ctx context.Context, key keyspace.Key) ([]byte, error) {
	var (
		v   []byte
		err error
	)
	if s.mod != nil {
		v, err = s.mod.Get(ctx, key)
		v = append([]byte(nil), v...) // the modification reuses its buffer
	} else {
		v, err = s.tl.Get(ctx, key, s.tl.LastRecordLSN(), nil)
	}
	if errors.Is(err, timeline.ErrNotFound) || errors.Is(err, timeline.ErrLSNOutOfRange) {
		return nil, fmt.Errorf("%w: %s: %w", walingest.ErrNotFound, key.Describe(), err)
	}
	return v, err
}

func (s *store) Put(_ context.Context, key keyspace.Key, at lsn.LSN, encoded []byte) error {
	if s.mod == nil || at != s.end {
		return fmt.Errorf("pgdatadir: put of %s at %s outside the record ending at %s", key.Describe(), at, s.end)
	}
	return s.mod.Put(key, encoded)
}

func (s *store) PageAt(ctx context.Context, key keyspace.Key, at lsn.LSN) ([]byte, error) {
	if s.mod != nil {
		if at >= s.end {
			v, err := s.mod.Get(ctx, key)
			return append([]byte(nil), v...), err
		}
		// Records of the current batch up to at are stored but not yet
		// published: read them without waiting for last_record_lsn.
		return s.mod.GetAt(ctx, key, at)
	}
	return s.tl.Get(ctx, key, at, nil)
}

// Ingest decodes raw WAL and stores it on a timeline, in two steps that
// may run on two goroutines: Decode (the decoder's side, which owns
// NextLSN) and Store (the timeline's side). Feed does both in turn.
type Ingest struct {
	tl      *timeline.Timeline
	store   *store
	ing     *walingest.Ingester
	records atomic.Uint64

	// The decoding side.
	dec       *pgwal.StreamDecoder
	decodeErr error // sticky: no record after a corrupt one is ever decoded
	spans     []span
	fed       Decoded // Feed's: decoded, then stored, on the caller's goroutine
	one       [1][]byte

	// The storing side: the record Store is at, for apply.
	ctx     context.Context
	current *pgwal.DecodedRecord
	apply   func(m *timeline.Modification) error
}

// span is where a record's bytes are in Decoded.raw.
type span struct {
	start, end lsn.LSN
	off, n     int
}

// Decoded is the records of one chunk, decoded and copied out of the
// decoder's memory: it stays valid while the decoder goes on with later
// chunks, so that one goroutine can decode the next chunk while another
// stores this one. Decode fills it (reusing its memory), Store consumes
// it; the zero value is ready to use.
type Decoded struct {
	raw  []byte                // the records' bytes, back to back
	recs []pgwal.DecodedRecord // recs[:n] are valid; their slices alias raw
	n    int
	// err is why decoding stopped after recs[:n] (nil: the chunk ended);
	// Store returns it after storing recs[:n].
	err error
}

// Len returns the number of records decoded.
func (d *Decoded) Len() int { return d.n }

// Err returns the decoding error that ended the chunk's records, if any.
func (d *Decoded) Err() error { return d.err }

// NewIngest prepares to ingest WAL that starts at start into tl. start must
// be a record boundary — normally tl.LastRecordLSN(), the end of the last
// whole record stored, or an import's start LSN — and decoding begins right
// there. prev is the start of the record before it, checked against the
// next record's back link when known (it is unknown after an import).
func NewIngest(ctx context.Context, tl *timeline.Timeline, start, prev lsn.LSN, logger *slog.Logger) (*Ingest, error) {
	st := &store{tl: tl}
	ing, err := walingest.New(ctx, st, st, logger)
	if err != nil {
		return nil, err
	}
	// Always decode from start itself: without StartsAtRecord the decoder
	// would search for the next page header and silently skip the records
	// between start and it.
	dec, err := pgwal.NewStreamDecoder(start, pgwal.StartsAtRecord(prev))
	if err != nil {
		return nil, err
	}
	in := &Ingest{tl: tl, store: st, ing: ing, dec: dec}
	in.apply = in.applyCurrent // one closure per Ingest, not per record
	return in, nil
}

// NextLSN is where the next WAL byte must start (the decoder's fed end).
// It belongs to the decoding side.
func (in *Ingest) NextLSN() lsn.LSN { return in.dec.FedEnd() }

// Records is the number of records stored. Safe to call from any
// goroutine.
func (in *Ingest) Records() uint64 { return in.records.Load() }

// Feed ingests chunk, which must start at NextLSN, storing every whole
// record it completes: Decode, then Store. It returns the end of WAL as a
// *pgwal.EndOfWALError when the stream holds garbage after the last valid
// record. The records of one chunk are stored as one timeline batch:
// last_record_lsn advances once, to the end of the last whole record (also
// when a later record of the chunk is invalid).
func (in *Ingest) Feed(ctx context.Context, start lsn.LSN, chunk []byte) error {
	in.one[0] = chunk
	defer func() { in.one[0] = nil }()
	return in.FeedChunks(ctx, start, in.one[:])
}

// FeedChunks is Feed for WAL given as consecutive pieces (the receive
// buffers of one message): they are stored as one batch.
func (in *Ingest) FeedChunks(ctx context.Context, start lsn.LSN, chunks [][]byte) error {
	if err := in.DecodeChunks(start, chunks, &in.fed); err != nil {
		return err
	}
	return in.Store(ctx, &in.fed)
}

// Decode feeds chunk, which must start at NextLSN, to the decoder and
// fills into with the records it completes. It fails at once only when
// chunk does not continue the stream; a decoding error (end of WAL,
// corruption) is kept in into, after the records before it, for Store to
// return once they are stored, and every later Decode fails with it.
// Decode and NextLSN must be called from one goroutine at a time; into
// must not be in use by Store.
func (in *Ingest) Decode(start lsn.LSN, chunk []byte, into *Decoded) error {
	in.one[0] = chunk
	defer func() { in.one[0] = nil }()
	return in.DecodeChunks(start, in.one[:], into)
}

// DecodeChunks is Decode for WAL given as consecutive pieces.
func (in *Ingest) DecodeChunks(start lsn.LSN, chunks [][]byte, into *Decoded) error {
	into.raw, into.n, into.err = into.raw[:0], 0, nil
	if in.decodeErr != nil {
		into.err = in.decodeErr
		return nil
	}
	for _, chunk := range chunks {
		if err := in.dec.FeedAt(start, chunk); err != nil {
			return err
		}
		start = start.Add(uint64(len(chunk)))
	}
	// First copy every record out of the decoder (a record's Raw is valid
	// only until the next call to Next), then decode them in place: the
	// decoded slices alias into.raw, which must no longer grow.
	spans := in.spans[:0]
	var stop error
	for {
		rec, err := in.dec.Next()
		if errors.Is(err, pgwal.ErrNeedMore) {
			break
		}
		if err != nil {
			stop = err
			break
		}
		spans = append(spans, span{start: rec.LSN, end: rec.EndLSN, off: len(into.raw), n: len(rec.Raw)})
		into.raw = append(into.raw, rec.Raw...)
	}
	in.spans = spans
	if cap(into.recs) < len(spans) {
		into.recs = append(into.recs[:cap(into.recs)], make([]pgwal.DecodedRecord, len(spans)-cap(into.recs))...)
	}
	into.recs = into.recs[:cap(into.recs)]
	for i, sp := range spans {
		rec := pgwal.Record{LSN: sp.start, EndLSN: sp.end, Raw: into.raw[sp.off : sp.off+sp.n : sp.off+sp.n]}
		if err := rec.Decode(&into.recs[i]); err != nil {
			stop = err
			break
		}
		into.n++
	}
	if stop != nil {
		in.decodeErr, into.err = stop, stop
	}
	return nil
}

// Store stores the records of d, as one timeline batch (see Feed), then
// returns d's decoding error if it has one. Records that end at or before
// last_record_lsn are skipped (WAL re-sent from before it). Store must be
// called from one goroutine at a time, in the order Decode filled the
// Decodeds; d may be reused once Store returns.
func (in *Ingest) Store(ctx context.Context, d *Decoded) error {
	if d.n == 0 {
		return d.err
	}
	in.ctx = ctx
	defer func() { in.ctx, in.current = nil, nil }()
	var stored uint64
	defer func() { in.records.Add(stored) }()
	return in.tl.IngestBatch(ctx, func(b *timeline.Batch) error {
		for i := range d.recs[:d.n] {
			rec := &d.recs[i]
			if rec.EndLSN <= b.LastRecordLSN() {
				continue // already stored
			}
			in.current = rec
			if err := b.Record(rec.LSN, rec.EndLSN, in.apply); err != nil {
				return err
			}
			stored++
		}
		return d.err
	})
}

// applyCurrent stores in.current through the record's modification.
func (in *Ingest) applyCurrent(m *timeline.Modification) error {
	in.store.mod, in.store.end = m, in.current.EndLSN
	defer func() { in.store.mod = nil }()
	return in.ing.Ingest(in.ctx, in.current)
}
