package tenant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/timeline/metadata"
)

// Tenant is one tenant's set of timelines under <workdir>/tenants/<id>.
type Tenant struct {
	id           ids.TenantID
	dir          string
	timelinesDir string
	logger       *slog.Logger
	// brokenReason is set at load and never changed: nil for an active
	// tenant.
	brokenReason error

	// lifecycle serializes CreateTimeline, DeleteTimeline and the tenant's
	// own deletion, held across the existence checks, disk work and commit
	// rename.
	lifecycle sync.Mutex

	mu        sync.RWMutex // guards timelines and deleted; never held across disk I/O
	timelines map[ids.TimelineID]*Timeline
	deleted   bool
}

func newTenant(id ids.TenantID, dir string, logger *slog.Logger, broken error) *Tenant {
	return &Tenant{
		id:           id,
		dir:          dir,
		timelinesDir: filepath.Join(dir, timelinesDirName),
		logger:       logger.With("tenant_id", id),
		brokenReason: broken,
		timelines:    make(map[ids.TimelineID]*Timeline),
	}
}

// loadTenant reads a tenant directory; it returns a broken tenant instead of
// an error.
func loadTenant(ctx context.Context, id ids.TenantID, dir string, logger *slog.Logger) *Tenant {
	t := newTenant(id, dir, logger, nil)
	fail := func(err error) *Tenant {
		t.brokenReason = err
		t.logger.Error("tenant: tenant is broken; loaded as Broken", "path", dir, "err", err)
		return t
	}
	info, err := os.Stat(t.timelinesDir)
	if err != nil {
		return fail(fmt.Errorf("tenant %s: %w", id, err))
	}
	if !info.IsDir() {
		return fail(fmt.Errorf("tenant %s: %s is not a directory", id, t.timelinesDir))
	}
	if err := removeScratch(t.timelinesDir, t.logger); err != nil {
		return fail(err)
	}
	entries, err := os.ReadDir(t.timelinesDir)
	if err != nil {
		return fail(fmt.Errorf("tenant %s: %w", id, err))
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			break // Open reports the cancellation.
		}
		path := filepath.Join(t.timelinesDir, e.Name())
		tlID, err := ids.ParseTimelineID(e.Name())
		if err != nil {
			t.logger.Error("tenant: skipping entry that is not a timeline id; left in place", "path", path, "err", err)
			continue
		}
		if !e.IsDir() {
			t.logger.Error("tenant: skipping non-directory entry named like a timeline; left in place", "path", path, "timeline_id", tlID)
			continue
		}
		t.timelines[tlID] = loadTimeline(id, tlID, path)
	}
	t.checkAncestry()
	for _, tl := range t.timelines {
		if tl.brokenReason != nil {
			t.logger.Error("tenant: timeline is broken; loaded as Broken", "timeline_id", tl.id, "path", tl.dir, "err", tl.brokenReason)
		}
	}
	return t
}

// checkAncestry marks broken, at load, every timeline whose ancestor chain
// reaches a missing timeline or loops. Timelines whose own metadata is
// unreadable are already broken and have no known ancestor.
func (t *Tenant) checkAncestry() {
	for _, tl := range t.timelines {
		if tl.brokenReason != nil {
			continue
		}
		cur := tl
		for steps := 0; cur.md.HasAncestor(); steps++ {
			if steps > len(t.timelines) {
				tl.brokenReason = fmt.Errorf("tenant %s timeline %s: ancestor chain loops", t.id, tl.id)
				break
			}
			next, ok := t.timelines[cur.md.AncestorTimeline]
			if !ok {
				tl.brokenReason = fmt.Errorf("tenant %s timeline %s: ancestor timeline %s (of timeline %s) not found in %s", t.id, tl.id, cur.md.AncestorTimeline, cur.id, t.timelinesDir)
				break
			}
			cur = next
		}
	}
}

// ID returns the tenant id.
func (t *Tenant) ID() ids.TenantID { return t.id }

// Dir returns the tenant's directory.
func (t *Tenant) Dir() string { return t.dir }

// State reports whether the tenant loaded intact.
func (t *Tenant) State() State {
	if t.brokenReason != nil {
		return StateBroken
	}
	return StateActive
}

// BrokenReason returns why the tenant is broken, or nil.
func (t *Tenant) BrokenReason() error { return t.brokenReason }

func (t *Tenant) snapshotTimelines() []*Timeline {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tls := make([]*Timeline, 0, len(t.timelines))
	for _, tl := range t.timelines {
		tls = append(tls, tl)
	}
	return tls
}

// markDeleted marks the tenant and its timelines tls deleted; the caller
// holds t.lifecycle and every timeline's writeMu.
func (t *Tenant) markDeleted(tls []*Timeline) {
	t.mu.Lock()
	t.deleted = true
	t.timelines = make(map[ids.TimelineID]*Timeline)
	t.mu.Unlock()
	for _, tl := range tls {
		tl.markDeleted()
	}
}

// usable reports an error when the tenant cannot take new timelines.
func (t *Tenant) usable() error {
	if t.brokenReason != nil {
		return fmt.Errorf("%w: tenant %s (%s): %w", ErrCorrupt, t.id, t.dir, t.brokenReason)
	}
	t.mu.RLock()
	deleted := t.deleted
	t.mu.RUnlock()
	if deleted {
		return fmt.Errorf("%w: tenant %s was deleted", ErrNotFound, t.id)
	}
	return nil
}

func (t *Tenant) lookup(id ids.TimelineID) *Timeline {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.timelines[id]
}

// BranchCheck is the caller's hook for the checks CreateTimeline cannot make
// from metadata alone: that ancestorLSN is at or below the ancestor's
// last_record_lsn and at or above its in-memory GC cutoff. It runs while the
// tenant's timeline lifecycle lock is held, so the ancestor cannot be deleted
// meanwhile, and before any disk work; an error it returns is returned by
// CreateTimeline wrapped with the ids (wrap ErrInvalid for a bad LSN).
type BranchCheck func(ancestor *Timeline, ancestorLSN lsn.LSN) error

// CreateOption adjusts one CreateTimeline call.
type CreateOption func(*createOptions)

type createOptions struct {
	branchCheck BranchCheck
}

// WithBranchCheck sets the hook run for a timeline with an ancestor.
func WithBranchCheck(check BranchCheck) CreateOption {
	return func(o *createOptions) { o.branchCheck = check }
}

// CreateTimeline creates timeline id with metadata md (CreatedAt is set to
// now when zero). If md names an ancestor, it must be an active timeline of
// this tenant, and md.AncestorLSN must not be below the ancestor's persisted
// LatestGCCutoffLSN (a lower bound of the real cutoff, so this check never
// refuses a valid branch); further checks go through WithBranchCheck. Branch
// creation copies no data: it writes one metadata file. When it returns nil,
// the timeline directory with its metadata is durable.
func (t *Tenant) CreateTimeline(ctx context.Context, id ids.TimelineID, md metadata.Metadata, opts ...CreateOption) (*Timeline, error) {
	var o createOptions
	for _, opt := range opts {
		opt(&o)
	}
	if id == (ids.TimelineID{}) {
		return nil, fmt.Errorf("%w: tenant %s: zero timeline id", ErrInvalid, t.id)
	}
	if md.CreatedAt.IsZero() {
		md.CreatedAt = time.Now().UTC()
	}
	if err := md.Validate(); err != nil {
		return nil, fmt.Errorf("%w: tenant %s timeline %s: %w", ErrInvalid, t.id, id, err)
	}

	t.lifecycle.Lock()
	defer t.lifecycle.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tenant: creating tenant %s timeline %s: %w", t.id, id, err)
	}
	if err := t.usable(); err != nil {
		return nil, err
	}
	if t.lookup(id) != nil {
		return nil, fmt.Errorf("%w: tenant %s timeline %s", ErrAlreadyExists, t.id, id)
	}
	if md.HasAncestor() {
		if err := t.checkBranch(id, md, o.branchCheck); err != nil {
			return nil, err
		}
	}

	final := filepath.Join(t.timelinesDir, id.String())
	tmp := filepath.Join(t.timelinesDir, scratchName(tempPrefix, id.String()))
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Mkdir(tmp, dirPerm); err != nil {
		return nil, fmt.Errorf("tenant: creating tenant %s timeline %s: %w", t.id, id, err)
	}
	// metadata.Write fsyncs the file and tmp.
	if err := metadata.Write(tmp, md); err != nil {
		return nil, fmt.Errorf("tenant: creating tenant %s timeline %s: %w", t.id, id, err)
	}
	if err := renameNoReplace(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: tenant %s timeline %s: directory %s exists on disk but was not loaded", ErrAlreadyExists, t.id, id, final)
		}
		return nil, fmt.Errorf("tenant: creating tenant %s timeline %s: %w", t.id, id, err)
	}
	committed = true
	tl := &Timeline{tenantID: t.id, id: id, dir: final, md: md}
	t.mu.Lock()
	t.timelines[id] = tl
	t.mu.Unlock()
	if err := durable.SyncDir(t.timelinesDir); err != nil {
		// Renamed but perhaps not durable: a reopen sees nothing or the
		// complete timeline. Keep it and report the failure.
		return nil, fmt.Errorf("tenant: creating tenant %s timeline %s: %w", t.id, id, err)
	}
	t.logger.Info("tenant: timeline created", "timeline_id", id, "ancestor_timeline_id", md.AncestorTimeline, "ancestor_lsn", md.AncestorLSN, "path", final)
	return tl, nil
}

// checkBranch validates md's ancestry; called with t.lifecycle held.
func (t *Tenant) checkBranch(id ids.TimelineID, md metadata.Metadata, hook BranchCheck) error {
	anc := t.lookup(md.AncestorTimeline)
	if anc == nil {
		return fmt.Errorf("%w: tenant %s timeline %s: ancestor timeline %s", ErrNotFound, t.id, id, md.AncestorTimeline)
	}
	if anc.brokenReason != nil {
		return fmt.Errorf("%w: tenant %s timeline %s: ancestor timeline %s is broken: %w", ErrCorrupt, t.id, id, anc.id, anc.brokenReason)
	}
	if cutoff := anc.Metadata().LatestGCCutoffLSN; md.AncestorLSN < cutoff {
		return fmt.Errorf("%w: tenant %s timeline %s: branch point %s is below ancestor %s's GC cutoff %s", ErrInvalid, t.id, id, md.AncestorLSN, anc.id, cutoff)
	}
	if hook != nil {
		if err := hook(anc, md.AncestorLSN); err != nil {
			return fmt.Errorf("tenant %s timeline %s: branch from %s at %s refused: %w", t.id, id, anc.id, md.AncestorLSN, err)
		}
	}
	return nil
}

// Timeline returns an active timeline. A missing id is ErrNotFound; a broken
// timeline an error wrapping ErrCorrupt and its reason (which names the
// file).
func (t *Tenant) Timeline(id ids.TimelineID) (*Timeline, error) {
	tl := t.lookup(id)
	if tl == nil {
		return nil, fmt.Errorf("%w: tenant %s timeline %s", ErrNotFound, t.id, id)
	}
	if tl.brokenReason != nil {
		return nil, fmt.Errorf("%w: tenant %s timeline %s: %w", ErrCorrupt, t.id, id, tl.brokenReason)
	}
	return tl, nil
}

// ListTimelines returns every timeline, broken ones included, ancestors
// before descendants; siblings and roots in id order.
func (t *Tenant) ListTimelines() []*Timeline {
	t.mu.RLock()
	all := make([]*Timeline, 0, len(t.timelines))
	for _, tl := range t.timelines {
		all = append(all, tl)
	}
	t.mu.RUnlock()
	slices.SortFunc(all, func(a, b *Timeline) int { return bytes.Compare(a.id[:], b.id[:]) })

	present := make(map[ids.TimelineID]bool, len(all))
	for _, tl := range all {
		present[tl.id] = true
	}
	children := make(map[ids.TimelineID][]*Timeline)
	var roots []*Timeline
	for _, tl := range all { // in id order, so children lists are sorted
		anc := tl.Metadata().AncestorTimeline
		if anc.IsZero() || !present[anc] {
			roots = append(roots, tl)
		} else {
			children[anc] = append(children[anc], tl)
		}
	}
	out := make([]*Timeline, 0, len(all))
	visited := make(map[ids.TimelineID]bool, len(all))
	var visit func(tl *Timeline)
	visit = func(tl *Timeline) {
		if visited[tl.id] {
			return
		}
		visited[tl.id] = true
		out = append(out, tl)
		for _, c := range children[tl.id] {
			visit(c)
		}
	}
	for _, r := range roots {
		visit(r)
	}
	for _, tl := range all { // only timelines in an ancestor loop are left
		visit(tl)
	}
	return out
}

// DeleteTimeline removes a timeline (active or broken). It is refused with
// ErrHasChildren while other timelines branch from it. The commit point is
// the rename of its directory to a tombstone; later metadata updates of the
// deleted timeline fail with ErrNotFound. Callers stop the timeline's
// runtime first.
func (t *Tenant) DeleteTimeline(ctx context.Context, id ids.TimelineID) error {
	t.lifecycle.Lock()
	defer t.lifecycle.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tenant: deleting tenant %s timeline %s: %w", t.id, id, err)
	}
	t.mu.RLock()
	deleted := t.deleted
	tl := t.timelines[id]
	var kids []string
	for _, c := range t.timelines {
		if c.Metadata().AncestorTimeline == id {
			kids = append(kids, c.id.String())
		}
	}
	t.mu.RUnlock()
	if deleted {
		return fmt.Errorf("%w: tenant %s was deleted", ErrNotFound, t.id)
	}
	if tl == nil {
		return fmt.Errorf("%w: tenant %s timeline %s", ErrNotFound, t.id, id)
	}
	if len(kids) > 0 {
		slices.Sort(kids)
		return fmt.Errorf("%w: tenant %s timeline %s is the ancestor of %s", ErrHasChildren, t.id, id, strings.Join(kids, ", "))
	}

	tomb := filepath.Join(t.timelinesDir, scratchName(tombstonePrefix, id.String()))
	// Holding the timeline's write lock across the rename keeps a
	// concurrent UpdateMetadata from writing into the tombstone.
	tl.writeMu.Lock()
	err := renameNoReplace(tl.dir, tomb)
	if err == nil {
		tl.mu.Lock()
		tl.deleted = true
		tl.mu.Unlock()
	}
	tl.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("tenant: deleting tenant %s timeline %s: %w", t.id, id, err)
	}
	t.mu.Lock()
	delete(t.timelines, id)
	t.mu.Unlock()
	if err := durable.SyncDir(t.timelinesDir); err != nil {
		return fmt.Errorf("tenant: deleting tenant %s timeline %s: %w", t.id, id, err)
	}
	if err := os.RemoveAll(tomb); err != nil {
		t.logger.Warn("tenant: deleted timeline's files not fully removed; Open will retry", "timeline_id", id, "path", tomb, "err", err)
	}
	t.logger.Info("tenant: timeline deleted", "timeline_id", id)
	return nil
}

// UpdateMetadata applies fn to timeline id's metadata and writes the result
// atomically; see Timeline.UpdateMetadata.
func (t *Tenant) UpdateMetadata(id ids.TimelineID, fn func(*metadata.Metadata)) (metadata.Metadata, error) {
	tl, err := t.Timeline(id)
	if err != nil {
		return metadata.Metadata{}, err
	}
	return tl.UpdateMetadata(fn)
}
