package timeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/layer"
	"github.com/stratadb/strata/services/pageserver/value"
)

// KeyspaceFunc lists the keys that exist on tl at at (pgdatadir.Reader.Keys).
// Compaction images exactly these keys.
type KeyspaceFunc func(ctx context.Context, tl *Timeline, at lsn.LSN) ([]keyspace.Key, error)

// CompactResult reports one compaction pass.
type CompactResult struct {
	// ImageLSN is the LSN the image layers were created at (the timeline's
	// disk_consistent_lsn when the pass started).
	ImageLSN lsn.LSN
	// LayersCreated is the number of image layer files written.
	LayersCreated int
	// Keys is the number of values written; Bytes the layer files' size.
	Keys  uint64
	Bytes int64
	// Skipped explains why nothing was written (empty when layers were).
	Skipped  string
	Duration time.Duration
}

// imageBatch is how many keys are reconstructed between two writes: the
// reconstruction of one batch runs on Config.ImageWorkers goroutines, the
// results are written in key order.
const imageBatch = 256

// ImageStats returns the LSN of this timeline's newest image layer (0 if
// it has none of its own) and how many of its delta layer files start above
// it: the depth a read of a key changed in each of them walks before
// reaching an image.
func (t *Timeline) ImageStats() (newestImage lsn.LSN, deltasAbove int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, h := range t.layers {
		if h.sum.Kind == layer.KindImage && h.sum.ImageLSN() > newestImage {
			newestImage = h.sum.ImageLSN()
		}
	}
	for _, h := range t.layers {
		if h.sum.Kind != layer.KindImage && h.sum.LSNs.Start > newestImage {
			deltasAbove++
		}
	}
	return newestImage, deltasAbove
}

// DeltasSinceImage returns the delta layer files above the newest image.
func (t *Timeline) DeltasSinceImage() int {
	_, n := t.ImageStats()
	return n
}

// Compact flushes the open layer, then writes image layers of the whole
// keyspace at disk_consistent_lsn, so that reads at or above it start from
// an image instead of replaying the deltas below it. It is what the
// background loop runs once Config.ImageCreationThreshold delta layers
// accumulate above the newest image; Compact runs it now. Layers are only
// added: no history is removed (that is GC's job).
func (t *Timeline) Compact(ctx context.Context) (CompactResult, error) {
	if t.keyspaceFn == nil {
		return CompactResult{}, errors.New("timeline: compaction needs a keyspace function (Options.Keyspace)")
	}
	if _, err := t.Checkpoint(ctx); err != nil {
		return CompactResult{}, err
	}
	return t.createImages(ctx, t.DiskConsistentLSN())
}

// createImages images the keyspace at at (≤ disk_consistent_lsn).
func (t *Timeline) createImages(ctx context.Context, at lsn.LSN) (CompactResult, error) {
	t.compactMu.Lock()
	defer t.compactMu.Unlock()
	began := time.Now()
	res := CompactResult{ImageLSN: at}
	if err := t.brokenErr(); err != nil {
		return res, err
	}
	if dcl := t.DiskConsistentLSN(); at > dcl || !at.IsValid() {
		return res, fmt.Errorf("%w: image layers at %s: disk_consistent_lsn is %s", ErrLSNOutOfRange, at, dcl)
	}
	if newest, _ := t.ImageStats(); newest >= at {
		res.Skipped = fmt.Sprintf("an image layer at or above %s exists", at)
		return res, nil
	}
	if t.ancestor != nil && at <= t.ancestorLSN {
		res.Skipped = fmt.Sprintf("nothing ingested on the branch above its branch point %s", t.ancestorLSN)
		return res, nil
	}
	keys, err := t.keyspaceFn(ctx, t, at)
	if err != nil {
		return res, fmt.Errorf("timeline: listing the keyspace at %s for image layers: %w", at, err)
	}
	if len(keys) == 0 {
		res.Skipped = fmt.Sprintf("no keys exist at %s", at)
		return res, nil
	}
	if !slices.IsSortedFunc(keys, keyspace.Key.Compare) {
		keys = slices.Clone(keys)
		slices.SortFunc(keys, keyspace.Key.Compare)
	}
	per := max(1, int(t.cfg.ImageLayerTargetSize/pgtypes.BLCKSZ))
	var written []string
	for start := 0; start < len(keys); start += per {
		end := min(start+per, len(keys))
		// The pass covers the whole keyspace, gaps included: a key an
		// image layer does not hold did not exist at at (reads fall
		// through below the image), and GC can drop older layers whose
		// keys lie anywhere in it.
		kr := keyspace.Range{Start: keys[start], End: keyspace.Max}
		if start == 0 {
			kr.Start = keyspace.Key{}
		}
		if end < len(keys) {
			kr.End = keys[end]
		}
		h, n, err := t.writeImageLayer(ctx, kr, keys[start:end], at)
		if err != nil {
			return res, fmt.Errorf("timeline: image layer %s at %s: %w", kr, at, err)
		}
		if h == nil {
			continue
		}
		t.mu.Lock()
		if t.closed.Load() {
			t.mu.Unlock()
			_ = h.reader.Close()
			t.cache.InvalidateFile(h.fileID)
			return res, ErrClosed
		}
		layers := make([]*historic, 0, len(t.layers)+1)
		t.layers = append(append(layers, t.layers...), h)
		t.sortLayersLocked()
		t.mu.Unlock()
		res.LayersCreated++
		res.Keys += n
		res.Bytes += h.bytes
		written = append(written, filepath.Base(h.path))
	}
	res.Duration = time.Since(began)
	t.logger.Info("created image layers", "image_lsn", at, "layers", res.LayersCreated, "keys", res.Keys,
		"bytes", res.Bytes, "duration", res.Duration, "files", written)
	return res, nil
}

// writeImageLayer reconstructs keys at at and writes them as one image
// layer over kr. Keys that do not exist at at are left out. A key whose
// history cannot be reconstructed fails the pass, naming the key: an image
// layer must hold every key that exists, or GC could drop the history a
// read of the missing key falls through to.
func (t *Timeline) writeImageLayer(ctx context.Context, kr keyspace.Range, keys []keyspace.Key, at lsn.LSN) (*historic, uint64, error) {
	w, err := layer.NewImageWriter(t.dir, t.tenant, t.id, kr, at)
	if err != nil {
		return nil, 0, err
	}
	workers := max(1, t.cfg.ImageWorkers)
	type slot struct {
		val []byte
		err error
	}
	slots := make([]slot, imageBatch)
	var enc []byte
	for b := 0; b < len(keys); b += imageBatch {
		batch := keys[b:min(b+imageBatch, len(keys))]
		var wg sync.WaitGroup
		next := make(chan int, len(batch))
		for i := range batch {
			next <- i
		}
		close(next)
		for range min(workers, len(batch)) {
			wg.Go(func() {
				for i := range next {
					if ctx.Err() != nil {
						slots[i].err = ctx.Err()
						continue
					}
					slots[i].val, slots[i].err = t.reconstruct(ctx, batch[i], at, slots[i].val[:0], false)
				}
			})
		}
		wg.Wait()
		for i, k := range batch {
			s := &slots[i]
			switch {
			case s.err == nil:
			case errors.Is(s.err, ErrNotFound):
				continue
			default:
				w.Abort()
				return nil, 0, fmt.Errorf("reading %s: %w", k.Describe(), s.err)
			}
			enc = value.AppendImage(enc[:0], s.val)
			if err := w.Put(k, enc); err != nil {
				w.Abort()
				return nil, 0, err
			}
		}
	}
	n := w.Entries()
	if n == 0 {
		w.Abort()
		return nil, 0, nil
	}
	if _, err := w.Finish(ctx); err != nil {
		w.Abort()
		return nil, 0, err
	}
	h, err := t.openLayer(ctx, w.Path())
	if err != nil {
		return nil, 0, err
	}
	return h, n, nil
}

// compactLoop creates image layers in the background whenever a flush
// leaves ImageCreationThreshold or more delta layers above the newest
// image. Failures are logged and retried at the next flush: they lose
// nothing, reads just stay slower.
func (t *Timeline) compactLoop(ctx context.Context, wake <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		if t.cfg.ImageCreationThreshold <= 0 || t.keyspaceFn == nil || t.DeltasSinceImage() < t.cfg.ImageCreationThreshold {
			continue
		}
		if _, err := t.createImages(ctx, t.DiskConsistentLSN()); err != nil && ctx.Err() == nil {
			t.logger.Error("background image layer creation failed; retried after the next flush", "err", err)
		}
	}
}
