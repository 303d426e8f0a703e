package tenant

import (
	"fmt"
	"sync"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/services/pageserver/timeline/metadata"
)

// Timeline is the repository's record of one timeline: its identity,
// directory and persisted metadata. The timeline's runtime (layers, WAL
// position) lives elsewhere and keeps its metadata here through
// UpdateMetadata.
type Timeline struct {
	tenantID ids.TenantID
	id       ids.TimelineID
	dir      string
	// brokenReason is set at load and never changed: nil when active.
	brokenReason error

	// writeMu serializes metadata writes (and deletion's rename) so that
	// the file always holds the newest metadata.
	writeMu sync.Mutex

	mu      sync.RWMutex // guards md and deleted; never held across disk I/O
	md      metadata.Metadata
	deleted bool
}

// loadTimeline reads a timeline directory, after removing metadata temp
// files left by an interrupted write. It returns a broken timeline instead of
// an error.
func loadTimeline(tenantID ids.TenantID, id ids.TimelineID, dir string) *Timeline {
	tl := &Timeline{tenantID: tenantID, id: id, dir: dir}
	if err := durable.RemoveTemps(dir); err != nil {
		tl.brokenReason = fmt.Errorf("tenant %s timeline %s: %w", tenantID, id, err)
		return tl
	}
	md, err := metadata.Read(dir)
	if err != nil {
		tl.brokenReason = fmt.Errorf("tenant %s timeline %s: %w", tenantID, id, err)
		return tl
	}
	tl.md = md
	return tl
}

// ID returns the timeline id.
func (tl *Timeline) ID() ids.TimelineID { return tl.id }

// TenantID returns the owning tenant's id.
func (tl *Timeline) TenantID() ids.TenantID { return tl.tenantID }

// Dir returns the timeline's directory, where its layer files live too.
func (tl *Timeline) Dir() string { return tl.dir }

// State reports whether the timeline loaded intact.
func (tl *Timeline) State() State {
	if tl.brokenReason != nil {
		return StateBroken
	}
	return StateActive
}

// BrokenReason returns why the timeline is broken (naming the file), or nil.
func (tl *Timeline) BrokenReason() error { return tl.brokenReason }

// Metadata returns the last successfully written metadata (zero for a broken
// timeline).
func (tl *Timeline) Metadata() metadata.Metadata {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	return tl.md
}

func (tl *Timeline) markDeleted() {
	tl.mu.Lock()
	tl.deleted = true
	tl.mu.Unlock()
}

// UpdateMetadata calls fn on a copy of the current metadata and writes the
// result atomically (metadata.Write); when it returns nil the new metadata is
// durable and visible through Metadata. Ancestry is fixed at creation: a
// change of the ancestor id or LSN is refused with ErrInvalid, as is any
// metadata that does not validate. On error the file and the in-memory copy
// are unchanged (or, after a failed directory fsync, the file may hold
// either version). Updates of one timeline are serialized; fn runs with the
// timeline's write lock held and must not call back into the timeline.
func (tl *Timeline) UpdateMetadata(fn func(*metadata.Metadata)) (metadata.Metadata, error) {
	if tl.brokenReason != nil {
		return metadata.Metadata{}, fmt.Errorf("%w: tenant %s timeline %s: %w", ErrCorrupt, tl.tenantID, tl.id, tl.brokenReason)
	}
	tl.writeMu.Lock()
	defer tl.writeMu.Unlock()
	tl.mu.RLock()
	old, deleted := tl.md, tl.deleted
	tl.mu.RUnlock()
	if deleted {
		return metadata.Metadata{}, fmt.Errorf("%w: tenant %s timeline %s was deleted", ErrNotFound, tl.tenantID, tl.id)
	}
	md := old
	fn(&md)
	if md.AncestorTimeline != old.AncestorTimeline || md.AncestorLSN != old.AncestorLSN {
		return metadata.Metadata{}, fmt.Errorf("%w: tenant %s timeline %s: ancestry is fixed at creation (ancestor %s at %s)", ErrInvalid, tl.tenantID, tl.id, old.AncestorTimeline, old.AncestorLSN)
	}
	if err := md.Validate(); err != nil {
		return metadata.Metadata{}, fmt.Errorf("%w: tenant %s timeline %s: %w", ErrInvalid, tl.tenantID, tl.id, err)
	}
	if err := metadata.Write(tl.dir, md); err != nil {
		return metadata.Metadata{}, fmt.Errorf("tenant: updating metadata of tenant %s timeline %s: %w", tl.tenantID, tl.id, err)
	}
	tl.mu.Lock()
	tl.md = md
	tl.mu.Unlock()
	return md, nil
}
