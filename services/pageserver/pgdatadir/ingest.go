package pgdatadir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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

// Ingest decodes raw WAL and stores it on a timeline.
type Ingest struct {
	tl      *timeline.Timeline
	store   *store
	ing     *walingest.Ingester
	dec     *pgwal.StreamDecoder
	decoded pgwal.DecodedRecord
	records uint64
}

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
	return &Ingest{tl: tl, store: st, ing: ing, dec: dec}, nil
}

// NextLSN is where the next WAL byte must start (the decoder's fed end).
func (in *Ingest) NextLSN() lsn.LSN { return in.dec.FedEnd() }

// Records is the number of records ingested.
func (in *Ingest) Records() uint64 { return in.records }

// Feed ingests chunk, which must start at NextLSN, storing every whole
// record it completes. It returns the end of WAL as a *pgwal.EndOfWALError
// when the stream holds garbage after the last valid record. The records
// of one chunk are stored as one timeline batch: last_record_lsn advances
// once, to the end of the last whole record (also when a later record of
// the chunk is invalid).
func (in *Ingest) Feed(ctx context.Context, start lsn.LSN, chunk []byte) error {
	if err := in.dec.FeedAt(start, chunk); err != nil {
		return err
	}
	// One closure per chunk, not per record.
	var end lsn.LSN
	apply := func(m *timeline.Modification) error {
		in.store.mod, in.store.end = m, end
		defer func() { in.store.mod = nil }()
		return in.ing.Ingest(ctx, &in.decoded)
	}
	return in.tl.IngestBatch(ctx, func(b *timeline.Batch) error {
		for {
			rec, err := in.dec.Next()
			if errors.Is(err, pgwal.ErrNeedMore) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := rec.Decode(&in.decoded); err != nil {
				return err
			}
			if rec.EndLSN <= b.LastRecordLSN() {
				continue // already stored (WAL re-sent from before last_record_lsn)
			}
			end = rec.EndLSN
			if err := b.Record(rec.LSN, rec.EndLSN, apply); err != nil {
				return err
			}
			in.records++
		}
	})
}
