package timeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/layer"
)

// GCResult reports one GC pass.
type GCResult struct {
	Cutoff        lsn.LSN
	LayersRemoved int
	BytesRemoved  int64
	// LayersKept counts the layer files that remain.
	LayersKept int
	Duration   time.Duration
}

// GCCutoffLSN returns the LSN below which reads are refused.
func (t *Timeline) GCCutoffLSN() lsn.LSN { return t.gcCutoff.Load() }

// SetGCCutoff raises the GC cutoff (never lowers it): reads and branch
// points below it are refused from now on. The caller persists it in the
// timeline's metadata first, and makes sure no branch point below it is
// being created (tenantmgr holds the tenant's lifecycle lock).
func (t *Timeline) SetGCCutoff(cutoff lsn.LSN) {
	t.gcCutoff.FetchMax(cutoff)
}

// newest is the newest LSN a layer holds values at.
func (h *historic) newest() lsn.LSN {
	if h.sum.Kind == layer.KindImage {
		return h.sum.ImageLSN()
	}
	return h.sum.LSNs.End - 1
}

// GC removes the layer files that no read the timeline still serves can
// need: reads at or above the cutoff (the timeline's GC cutoff, set with
// SetGCCutoff) and, for each branch point in retain (the ancestor LSNs of
// this timeline's branches), reads at exactly that LSN. A layer whose
// newest value lies below a read point is needed by it unless image layers
// at one LSN between the two cover the layer's whole key range: the read
// stops at the image before reaching it. Layers the cutoff or a retained
// branch point still reaches are kept, so GC never changes an answer above
// the cutoff or at a branch point. Files are unlinked (then the directory
// is fsynced); readers that took a snapshot of the layer set just before
// keep reading them through their open descriptors, which are closed at the
// next pass or when the timeline closes.
func (t *Timeline) GC(ctx context.Context, retain []lsn.LSN) (GCResult, error) {
	t.compactMu.Lock() // not concurrently with image creation
	defer t.compactMu.Unlock()
	began := time.Now()
	cutoff := t.gcCutoff.Load()
	res := GCResult{Cutoff: cutoff}
	if err := t.brokenErr(); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	// Close what the previous pass unlinked.
	t.mu.Lock()
	retired := t.retired
	t.retired = nil
	t.mu.Unlock()
	for _, h := range retired {
		_ = h.reader.Close()
		t.cache.InvalidateFile(h.fileID)
	}

	t.mu.RLock()
	layers := t.layers
	t.mu.RUnlock()

	// Image layers by LSN, their key ranges sorted.
	images := map[lsn.LSN][]keyspace.Range{}
	for _, h := range layers {
		if h.sum.Kind == layer.KindImage {
			images[h.sum.ImageLSN()] = append(images[h.sum.ImageLSN()], h.sum.Keys)
		}
	}
	imageLSNs := make([]lsn.LSN, 0, len(images))
	for at, rs := range images {
		slices.SortFunc(rs, func(a, b keyspace.Range) int { return a.Start.Compare(b.Start) })
		imageLSNs = append(imageLSNs, at)
	}
	slices.Sort(imageLSNs)
	// shadowed reports whether an image set at an LSN in (above, upTo]
	// covers kr.
	shadowed := func(kr keyspace.Range, above, upTo lsn.LSN) bool {
		for _, at := range imageLSNs {
			if at > above && at <= upTo && covers(images[at], kr) {
				return true
			}
		}
		return false
	}

	var remove []*historic
	for _, h := range layers {
		n := h.newest()
		if n >= cutoff || !shadowed(h.sum.Keys, n, cutoff) {
			continue
		}
		needed := false
		for _, r := range retain {
			if r >= h.sum.LSNs.Start && !shadowed(h.sum.Keys, n, r) {
				needed = true
				break
			}
		}
		if !needed {
			remove = append(remove, h)
		}
	}
	if len(remove) == 0 {
		res.LayersKept = len(layers)
		res.Duration = time.Since(began)
		return res, nil
	}

	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		return res, ErrClosed
	}
	kept := make([]*historic, 0, len(t.layers))
	for _, h := range t.layers {
		if !slices.Contains(remove, h) {
			kept = append(kept, h)
		}
	}
	t.layers = kept
	t.retired = append(t.retired, remove...)
	t.mu.Unlock()
	res.LayersKept = len(kept)

	var errs []error
	for _, h := range remove {
		if err := os.Remove(h.path); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
			continue
		}
		res.LayersRemoved++
		res.BytesRemoved += h.bytes
	}
	if err := durable.SyncDir(t.dir); err != nil {
		errs = append(errs, err)
	}
	res.Duration = time.Since(began)
	names := make([]string, 0, len(remove))
	for _, h := range remove {
		names = append(names, filepath.Base(h.path))
	}
	t.logger.Info("garbage-collected layer files", "gc_cutoff", cutoff, "retain_lsns", retain, "removed", res.LayersRemoved,
		"bytes", res.BytesRemoved, "kept", res.LayersKept, "duration", res.Duration, "files", names)
	if len(errs) > 0 {
		return res, fmt.Errorf("timeline: removing garbage-collected layer files: %v", errs)
	}
	return res, nil
}

// covers reports whether the ranges (sorted by start) cover kr entirely.
func covers(rs []keyspace.Range, kr keyspace.Range) bool {
	pos := kr.Start
	for _, r := range rs {
		if pos.Less(r.Start) {
			return false
		}
		if pos.Less(r.End) {
			pos = r.End
		}
		if !pos.Less(kr.End) {
			return true
		}
	}
	return !pos.Less(kr.End)
}

// BranchPoint is one branch: timeline ID branched from Ancestor at LSN.
type BranchPoint struct {
	ID, Ancestor ids.TimelineID
	LSN          lsn.LSN
}

// ReadPoints returns the LSNs at which the descendants of timeline id read
// it, given every branch of the tenant: a branch reads its ancestor at its
// branch point, and a branch of a branch reads the grandparent at the lower
// of the two branch points (its own may lie below its parent's). These are
// GC's retain LSNs.
func ReadPoints(id ids.TimelineID, branches []BranchPoint) []lsn.LSN {
	parent := make(map[ids.TimelineID]BranchPoint, len(branches))
	for _, b := range branches {
		parent[b.ID] = b
	}
	var out []lsn.LSN
	for _, b := range branches {
		at, x := b.LSN, b
		for hops := 0; hops <= len(branches); hops++ { // bounded even on a cycle
			at = min(at, x.LSN)
			if x.Ancestor == id {
				out = append(out, at)
				break
			}
			next, ok := parent[x.Ancestor]
			if !ok {
				break
			}
			x = next
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
