package timeline

import (
	"context"
	"fmt"
	"os"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/inmemory"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/layer"
)

// WriteImageLayer stores a complete image of the timeline at LSN at (an
// import or initdb bootstrap): fill puts one encoded value per key, in any
// order; the values are staged in a scratch ephemeral file, sorted by key,
// and written as one image layer file (fsync, rename, fsync dir). Then
// last_record_lsn, prev_record_lsn and disk_consistent_lsn move to at and
// are persisted. The timeline must be empty (nothing ingested yet).
func (t *Timeline) WriteImageLayer(ctx context.Context, at, prev lsn.LSN, fill func(put func(key keyspace.Key, encoded []byte) error) error) error {
	t.ingestMu.Lock()
	defer t.ingestMu.Unlock()
	if err := t.brokenErr(); err != nil {
		return err
	}
	t.mu.RLock()
	empty := t.open == nil && len(t.frozen) == 0 && len(t.layers) == 0
	t.mu.RUnlock()
	if !empty || t.lastRecord.Load() > at {
		return fmt.Errorf("timeline: image import at %s into a timeline that already has data (last_record_lsn %s)", at, t.lastRecord.Load())
	}
	t.mu.Lock()
	t.ephemeralSeq++
	seq := t.ephemeralSeq
	t.mu.Unlock()
	f, err := ephemeral.Create(t.dir, seq, t.cache, t.ephemeralMem)
	if err != nil {
		return err
	}
	stage := inmemory.New(f, at)
	defer stage.Close()
	if err := fill(func(key keyspace.Key, encoded []byte) error { return stage.Put(key, at, encoded) }); err != nil {
		return err
	}
	if stage.Len() == 0 {
		return fmt.Errorf("timeline: image import at %s stored nothing", at)
	}
	keys := stage.Keys()
	w, err := layer.NewImageWriter(t.dir, t.tenant, t.id, keyspace.Range{Start: keys[0], End: keys[len(keys)-1].Next()}, at)
	if err != nil {
		return err
	}
	if err := stage.Iterate(ctx, func(k keyspace.Key, _ lsn.LSN, val []byte) error { return w.Put(k, val) }); err != nil {
		w.Abort()
		return err
	}
	if _, err := w.Finish(ctx); err != nil {
		w.Abort()
		return err
	}
	if t.persist != nil {
		if err := t.persist(at, prev); err != nil {
			_ = os.Remove(w.Path())
			return fmt.Errorf("timeline: persisting disk_consistent_lsn %s after import: %w", at, err)
		}
	}
	h, err := t.openLayer(ctx, w.Path())
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.layers = []*historic{h}
	t.mu.Unlock()
	t.diskConsistent.Store(at)
	t.prevRecord.Store(prev)
	if _, err := t.lastRecord.Advance(at); err != nil {
		return err
	}
	// The timeline's history starts at the image: nothing below it exists.
	t.startLSN.Store(at)
	return nil
}
