package timeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/seqwait"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/inmemory"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/layer"
	"github.com/stratadb/strata/services/pageserver/value"
	"github.com/stratadb/strata/services/walredo/redo"
)

// WaitForLSN waits until last_record_lsn ≥ at, bounded by WaitLSNTimeout
// and ctx. The error states the LSNs a user needs.
func (t *Timeline) WaitForLSN(ctx context.Context, at lsn.LSN) error {
	if err := t.brokenErr(); err != nil {
		return err
	}
	if t.lastRecord.Load() >= at {
		return nil
	}
	err := t.lastRecord.WaitFor(ctx, at, t.cfg.WaitLSNTimeout)
	if err == nil {
		return nil
	}
	if errors.Is(err, seqwait.ErrTimeout) {
		return fmt.Errorf("%w: waiting for WAL at LSN %s for %s: last_record_lsn %s, disk_consistent_lsn %s",
			ErrWaitLSNTimeout, at, t.cfg.WaitLSNTimeout, t.LastRecordLSN(), t.DiskConsistentLSN())
	}
	return fmt.Errorf("timeline: waiting for WAL at LSN %s (last_record_lsn %s): %w", at, t.LastRecordLSN(), err)
}

// CheckReadable reports whether reads at at are served, as an error
// wrapping ErrLSNOutOfRange that names the bound: at must not be below this
// timeline's GC cutoff; below a branch point the read is the ancestor's at
// that LSN, so the ancestor's GC cutoff applies (GC keeps exact branch
// points only), up to the root's start LSN. It does not look at
// last_record_lsn (reads above it wait).
func (t *Timeline) CheckReadable(at lsn.LSN) error {
	if !at.IsValid() {
		return fmt.Errorf("%w: invalid LSN 0", ErrLSNOutOfRange)
	}
	if cut := t.gcCutoff.Load(); at < cut {
		return fmt.Errorf("%w: %s is below the GC cutoff %s: that history was garbage-collected", ErrLSNOutOfRange, at, cut)
	}
	tl := t
	for tl.ancestor != nil && at < tl.ancestorLSN {
		if cut := tl.ancestor.gcCutoff.Load(); at < cut {
			return fmt.Errorf("%w: %s is below the branch point %s and below ancestor %s's GC cutoff %s: that history was garbage-collected",
				ErrLSNOutOfRange, at, tl.ancestorLSN, tl.ancestor.id, cut)
		}
		tl = tl.ancestor
	}
	if start := tl.startLSN.Load(); tl.ancestor == nil && at < start {
		if tl != t {
			return fmt.Errorf("%w: %s is before the start LSN %s of ancestor %s", ErrLSNOutOfRange, at, start, tl.id)
		}
		return fmt.Errorf("%w: %s is before the timeline's start LSN %s", ErrLSNOutOfRange, at, start)
	}
	return nil
}

// Get returns the value of key at LSN at, waiting for WAL up to at first.
// The result is appended to dst[:0].
func (t *Timeline) Get(ctx context.Context, key keyspace.Key, at lsn.LSN, dst []byte) ([]byte, error) {
	if err := t.CheckReadable(at); err != nil {
		return dst[:0], err
	}
	if err := t.WaitForLSN(ctx, at); err != nil {
		return dst[:0], err
	}
	out, err := t.reconstruct(ctx, key, at, dst, true)
	if err != nil {
		if cut := t.gcCutoff.Load(); at < cut {
			// GC raised the cutoff above at while the read ran and removed
			// layers it was reading.
			return dst[:0], fmt.Errorf("%w: %s fell below the GC cutoff %s while it was read: %w", ErrLSNOutOfRange, at, cut, err)
		}
	}
	return out, err
}

// found is one value collected by the walk, newest first.
type found struct {
	at  lsn.LSN
	val []byte // owned copy
}

// walk state shared by the layer visitors.
type walk struct {
	key       keyspace.Key
	cachedLSN lsn.LSN // a materialized version at this LSN is the base
	useCached bool
	values    []found
	complete  bool // an image or will-init value ended the walk
	hitCache  bool // the walk reached the cached version
}

// visit records one value (newest first) and reports whether to stop.
func (w *walk) visit(at lsn.LSN, val []byte) bool {
	if w.useCached && at <= w.cachedLSN {
		w.hitCache = true
		return true
	}
	w.values = append(w.values, found{at: at, val: append([]byte(nil), val...)})
	if value.WillInit(val) {
		w.complete = true
		return true
	}
	return false
}

func (w *walk) done() bool { return w.complete || w.hitCache }

// reconstruct rebuilds key at at without waiting for WAL. With cacheResult
// an 8 KB result is stored in the page cache; reads inside an unfinished
// record must not cache (a later put at the same LSN would make the cached
// version stale).
func (t *Timeline) reconstruct(ctx context.Context, key keyspace.Key, at lsn.LSN, dst []byte, cacheResult bool) ([]byte, error) {
	w := &walk{key: key}
	var cached []byte
	kb := key.Bytes()
	if g, ok := t.cache.LookupMaterialized(t.tenant, t.id, kb, at); ok {
		w.cachedLSN, w.useCached = g.LSN(), true
		cached = append(dst[:0], g.Bytes()...)
		g.Release()
	}
	for attempt := 0; ; attempt++ {
		err := t.walk(ctx, w, at)
		if err == nil {
			break
		}
		// A frozen layer flushed and closed while we read it: its data is
		// now in a layer file, so walk again with a fresh snapshot.
		if errors.Is(err, ephemeral.ErrClosed) && !t.closed.Load() && attempt < 3 {
			w.values, w.complete, w.hitCache = w.values[:0], false, false
			continue
		}
		return dst[:0], err
	}
	if w.hitCache && len(w.values) == 0 {
		return cached, nil
	}
	if len(w.values) == 0 {
		return dst[:0], fmt.Errorf("%w: %s at %s on timeline %s", ErrNotFound, key.Describe(), at, t.id)
	}
	var base []byte
	if w.hitCache {
		base = cached
	}
	out, newest, err := t.apply(ctx, key, base, w.values, dst)
	if err != nil {
		return dst[:0], err
	}
	if cacheResult && len(out) == pgtypes.BLCKSZ {
		// Cache under the LSN of the newest value applied: the version is
		// valid for any later read with no record in between.
		_ = t.cache.PutMaterialized(t.tenant, t.id, kb, newest, out)
	}
	return out, nil
}

// walk collects the values of w.key at at, through the ancestors.
func (t *Timeline) walk(ctx context.Context, w *walk, at lsn.LSN) error {
	tl, cont := t, at
	for tl != nil && !w.done() {
		var err error
		if cont, err = tl.walkOwn(ctx, w, cont); err != nil {
			return err
		}
		if w.done() || tl.ancestor == nil {
			break
		}
		cont = min(cont, tl.ancestorLSN)
		tl = tl.ancestor
	}
	return nil
}

// walkOwn visits this timeline's layers for w.key from cont downwards and
// returns where the walk must continue (below the oldest LSN covered).
func (t *Timeline) walkOwn(ctx context.Context, w *walk, cont lsn.LSN) (lsn.LSN, error) {
	t.mu.RLock()
	mems := make([]*inmemory.Layer, 0, 1+len(t.frozen))
	if t.open != nil {
		mems = append(mems, t.open)
	}
	for i := len(t.frozen) - 1; i >= 0; i-- {
		mems = append(mems, t.frozen[i].mem)
	}
	layers := t.layers
	t.mu.RUnlock()

	for _, m := range mems {
		if m.Start() > cont {
			continue
		}
		var err error
		_, _, _, err = m.Get(ctx, w.key, cont, nil, func(at lsn.LSN, val []byte) (bool, error) {
			return w.visit(at, val), nil
		})
		if err != nil {
			return cont, err
		}
		if w.done() {
			return cont, nil
		}
		if m.Start() == 0 {
			return 0, nil
		}
		cont = m.Start() - 1
	}

	for !w.done() {
		// The newest image at or below cont, and the delta with the newest
		// data at or below cont, among layers holding the key.
		var img, delta *historic
		for _, h := range layers {
			if !h.sum.Keys.Contains(w.key) || h.sum.LSNs.Start > cont {
				continue
			}
			if h.sum.Kind == layer.KindImage {
				if img == nil || h.sum.ImageLSN() > img.sum.ImageLSN() {
					img = h
				}
			} else if delta == nil || h.sum.LSNs.End > delta.sum.LSNs.End {
				delta = h
			}
		}
		if delta != nil && (img == nil || delta.sum.LSNs.End-1 > img.sum.ImageLSN()) {
			lo := delta.sum.LSNs.Start
			if img != nil && img.sum.ImageLSN() >= lo {
				lo = img.sum.ImageLSN() + 1
			}
			rng := layer.LSNRange{Start: lo, End: cont + 1}
			if w.useCached {
				// Check the cached version against the index alone: when
				// the newest entry here is not above it, no value is read.
				newest, ok, err := delta.reader.NewestLSN(ctx, w.key, rng)
				if err != nil {
					return cont, fmt.Errorf("timeline: reading %s from %s: %w", w.key.Describe(), delta.path, err)
				}
				if ok && newest <= w.cachedLSN {
					w.hitCache = true
					return cont, nil
				}
			}
			err := delta.reader.VisitReverse(ctx, w.key, rng, func(at lsn.LSN, val []byte) bool {
				return !w.visit(at, val)
			})
			if err != nil {
				return cont, fmt.Errorf("timeline: reading %s from %s: %w", w.key.Describe(), delta.path, err)
			}
			if lo == 0 {
				return 0, nil
			}
			cont = lo - 1
			continue
		}
		if img != nil {
			var buf []byte
			v, err := img.reader.Image(ctx, w.key, buf)
			if err != nil {
				if errors.Is(err, layer.ErrNotFound) {
					// The image layer's key range covers the key but it did
					// not exist at that LSN.
					if img.sum.ImageLSN() == 0 {
						return 0, nil
					}
					cont = img.sum.ImageLSN() - 1
					layers = without(layers, img)
					continue
				}
				return cont, fmt.Errorf("timeline: reading %s from %s: %w", w.key.Describe(), img.path, err)
			}
			w.visit(img.sum.ImageLSN(), v)
			return cont, nil
		}
		break
	}
	return cont, nil
}

func without(hs []*historic, h *historic) []*historic {
	out := make([]*historic, 0, len(hs))
	for _, x := range hs {
		if x != h {
			out = append(out, x)
		}
	}
	return out
}

// apply turns the collected values (newest first) into the value at the
// newest LSN, starting from base (nil: the oldest value must initialize).
// It returns the value and the LSN of the newest value applied.
func (t *Timeline) apply(ctx context.Context, key keyspace.Key, base []byte, vals []found, dst []byte) ([]byte, lsn.LSN, error) {
	newest := vals[0].at
	page := base
	i := len(vals) - 1
	if page == nil {
		v, err := value.Decode(vals[i].val)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %s at %s: %w", ErrReconstruct, key.Describe(), vals[i].at, err)
		}
		switch {
		case v.Kind == value.KindImage:
			page = append(dst[:0], v.Image...)
			i--
		case v.Kind == value.KindRecord && v.WillInit:
			// The record initializes the page: start from zeros.
			page = append(dst[:0], make([]byte, pgtypes.BLCKSZ)...)
		default:
			return nil, 0, fmt.Errorf("%w: %s at %s: the oldest stored version is a %s, not an image or an initializing record",
				ErrReconstruct, key.Describe(), vals[i].at, v.Kind)
		}
	}
	var batch []redo.Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := t.redoRecords(ctx, key, page, batch)
		batch = batch[:0]
		return err
	}
	for ; i >= 0; i-- {
		v, err := value.Decode(vals[i].val)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %s at %s: %w", ErrReconstruct, key.Describe(), vals[i].at, err)
		}
		switch v.Kind {
		case value.KindImage:
			batch = batch[:0]
			page = append(page[:0], v.Image...)
		case value.KindRecord:
			if v.WillInit && len(batch) == 0 {
				clear(page)
			}
			batch = append(batch, redo.Record{Start: v.RecordStart, End: vals[i].at, Raw: v.Record})
		case value.KindNative:
			if err := flush(); err != nil {
				return nil, 0, err
			}
			if t.native == nil {
				return nil, 0, fmt.Errorf("%w: %s at %s: native record %d but no native applier configured", ErrReconstruct, key.Describe(), vals[i].at, v.NativeType)
			}
			if page, err = t.native.Apply(key, vals[i].at, v.NativeType, v.NativePayload, page); err != nil {
				return nil, 0, fmt.Errorf("%w: %s at %s: %w", ErrReconstruct, key.Describe(), vals[i].at, err)
			}
		}
	}
	if err := flush(); err != nil {
		return nil, 0, err
	}
	return page, newest, nil
}

// redoRecords applies PostgreSQL records to page in place through walredo.
func (t *Timeline) redoRecords(ctx context.Context, key keyspace.Key, page []byte, recs []redo.Record) error {
	if t.redo == nil {
		return fmt.Errorf("%w: %s: WAL records to apply but no walredo configured", ErrReconstruct, key.Describe())
	}
	rel, err := key.RelTag()
	if err != nil || len(page) != pgtypes.BLCKSZ {
		return fmt.Errorf("%w: %s: PostgreSQL records stored for a key that is not an 8 KB relation block", ErrReconstruct, key.Describe())
	}
	req := &redo.Request{Tenant: t.tenant, Tag: pgtypes.BufferTag{Rel: rel, BlockNum: key.BlockNumber()}, Base: page, Records: recs}
	if err := t.redo.Apply(ctx, req, page); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrReconstruct, key.Describe(), err)
	}
	return nil
}
