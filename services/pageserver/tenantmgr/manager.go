package tenantmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
	"github.com/stratadb/strata/services/pageserver/tenant"
	"github.com/stratadb/strata/services/pageserver/timeline"
	"github.com/stratadb/strata/services/pageserver/timeline/metadata"
	"github.com/stratadb/strata/services/walredo/redo"
)

// PGVersion is the only PostgreSQL major version timelines hold.
const PGVersion = 15

// States reported in TenantInfo and TimelineInfo.
const (
	StateActive = "active"
	StateBroken = "broken"
)

// Config is what Open needs. Cache, Redo and Logger are shared by every
// timeline.
type Config struct {
	// WorkDir holds tenants/<tenant_id>/timelines/<timeline_id>.
	WorkDir  string
	Timeline timeline.Config
	Cache    *pagecache.Cache
	// EphemeralMemory is shared by every timeline's ephemeral files (nil:
	// none are kept in memory).
	EphemeralMemory *ephemeral.Memory
	Redo            redo.Redoer
	Logger          *slog.Logger
	// GCHorizon is the WAL history (bytes below last_record_lsn) RunGC
	// keeps when the caller gives no horizon.
	GCHorizon uint64
	// GCPeriod runs GC on every timeline this often with GCHorizon (0:
	// never in the background; RunGC still works).
	GCPeriod time.Duration
}

// Manager owns tenants and their runtime timelines. See the package doc.
type Manager struct {
	cfg  Config
	repo *tenant.Repository
	log  *slog.Logger

	mu      sync.RWMutex // guards tenants and closed
	tenants map[ids.TenantID]*tenantState
	closed  bool

	runMu  sync.Mutex // guards runCtx and group
	runCtx context.Context
	group  *errgroup.Group
}

type tenantState struct {
	disk   *tenant.Tenant
	broken error

	lifecycle sync.Mutex // serializes create/branch/delete of timelines

	mu        sync.RWMutex // guards timelines
	timelines map[ids.TimelineID]*Timeline
}

func (ts *tenantState) timeline(id ids.TimelineID) *Timeline {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.timelines[id]
}

func (ts *tenantState) list() []*Timeline {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	out := make([]*Timeline, 0, len(ts.timelines))
	for _, tl := range ts.timelines {
		out = append(out, tl)
	}
	return out
}

// Open loads the repository at cfg.WorkDir and opens every timeline. Run
// starts their flushers.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Cache == nil || cfg.Logger == nil {
		return nil, errors.New("tenantmgr: Cache and Logger are required")
	}
	repo, err := tenant.Open(ctx, cfg.WorkDir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, repo: repo, log: cfg.Logger, tenants: make(map[ids.TenantID]*tenantState)}
	for _, t := range repo.ListTenants() {
		ts := &tenantState{disk: t, broken: t.BrokenReason(), timelines: make(map[ids.TimelineID]*Timeline)}
		m.tenants[t.ID()] = ts
		if ts.broken != nil {
			continue
		}
		// ListTimelines orders ancestors before descendants.
		for _, dtl := range t.ListTimelines() {
			tl := m.loadTimeline(ctx, ts, dtl)
			ts.timelines[tl.id] = tl
		}
	}
	return m, nil
}

// loadTimeline opens the runtime of dtl; failures give a broken Timeline.
func (m *Manager) loadTimeline(ctx context.Context, ts *tenantState, dtl *tenant.Timeline) *Timeline {
	tl := &Timeline{tenantID: ts.disk.ID(), id: dtl.ID(), disk: dtl}
	if err := dtl.BrokenReason(); err != nil {
		tl.broken = err
		return tl
	}
	md := dtl.Metadata()
	var anc *timeline.Timeline
	if md.HasAncestor() {
		a := ts.timelines[md.AncestorTimeline]
		if a == nil || a.rt == nil {
			tl.broken = fmt.Errorf("%w: tenant %s timeline %s: ancestor timeline %s is missing or broken", ErrBroken, tl.tenantID, tl.id, md.AncestorTimeline)
			m.log.Error("timeline not loaded", "tenant_id", tl.tenantID, "timeline_id", tl.id, "err", tl.broken)
			return tl
		}
		anc = a.rt
	}
	rt, err := m.openRuntime(ctx, dtl, md, anc)
	if err != nil {
		tl.broken = fmt.Errorf("%w: tenant %s timeline %s: %w", ErrBroken, tl.tenantID, tl.id, err)
		m.log.Error("timeline not loaded", "tenant_id", tl.tenantID, "timeline_id", tl.id, "err", err)
		return tl
	}
	tl.rt = rt
	tl.reader = pgdatadir.NewReader(rt)
	return tl
}

func (m *Manager) openRuntime(ctx context.Context, dtl *tenant.Timeline, md metadata.Metadata, anc *timeline.Timeline) (*timeline.Timeline, error) {
	return timeline.Open(ctx, timeline.Options{
		Tenant: dtl.TenantID(), ID: dtl.ID(), Dir: dtl.Dir(),
		Ancestor: anc, AncestorLSN: md.AncestorLSN,
		StartLSN:          md.StartLSN,
		DiskConsistentLSN: md.DiskConsistentLSN,
		PrevRecordLSN:     md.PrevRecordLSN,
		GCCutoffLSN:       md.LatestGCCutoffLSN,
		Cache:             m.cfg.Cache, EphemeralMemory: m.cfg.EphemeralMemory, Redo: m.cfg.Redo, Native: pgdatadir.Native{},
		Config: m.cfg.Timeline, Logger: m.log,
		Keyspace: func(ctx context.Context, tl *timeline.Timeline, at lsn.LSN) ([]keyspace.Key, error) {
			return pgdatadir.NewReader(tl).Keys(ctx, at)
		},
		PersistMetadata: persister(dtl),
	})
}

// persister records a flush in the timeline's metadata file. The first
// persist of a root timeline without a start LSN (the image layer of an
// import or bootstrap) also sets the start LSN: history begins there.
func persister(dtl *tenant.Timeline) func(diskConsistentLSN, prevRecordLSN lsn.LSN) error {
	return func(dcl, prev lsn.LSN) error {
		_, err := dtl.UpdateMetadata(func(md *metadata.Metadata) {
			md.DiskConsistentLSN = dcl
			md.PrevRecordLSN = prev
			if !md.HasAncestor() && !md.StartLSN.IsValid() {
				md.StartLSN = dcl
			}
		})
		return err
	}
}

// Run runs the flusher of every timeline, including timelines created
// while it runs, until ctx is cancelled; then it waits for them to stop.
func (m *Manager) Run(ctx context.Context) error {
	m.runMu.Lock()
	if m.runCtx != nil {
		m.runMu.Unlock()
		return errors.New("tenantmgr: Run called twice")
	}
	m.runCtx = ctx
	m.group = new(errgroup.Group)
	if m.cfg.GCPeriod > 0 {
		m.group.Go(func() error { m.gcLoop(ctx); return nil })
	}
	m.mu.RLock()
	for _, ts := range m.tenants {
		for _, tl := range ts.list() {
			m.startRunnerLocked(tl)
		}
	}
	m.mu.RUnlock()
	m.runMu.Unlock()

	<-ctx.Done()
	m.runMu.Lock()
	g := m.group
	m.runCtx = context.Background() // non-nil: Run may not start again
	m.group = nil
	m.runMu.Unlock()
	return g.Wait()
}

func (m *Manager) startRunner(tl *Timeline) {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	m.startRunnerLocked(tl)
}

// startRunnerLocked starts tl's flusher if Run is running; runMu is held.
func (m *Manager) startRunnerLocked(tl *Timeline) {
	if m.group == nil || tl.rt == nil {
		return
	}
	ctx, cancel := context.WithCancel(m.runCtx)
	done := make(chan struct{})
	tl.runMu.Lock()
	tl.stopRun, tl.runDone = cancel, done
	tl.runMu.Unlock()
	rt := tl.rt
	m.group.Go(func() error {
		defer close(done)
		defer cancel()
		return rt.Run(ctx)
	})
}

// Close closes every timeline (descendants first). Call it after Run has
// returned (or was never called) and after the gRPC server stopped.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	tenants := make([]*tenantState, 0, len(m.tenants))
	for _, ts := range m.tenants {
		tenants = append(tenants, ts)
	}
	m.mu.Unlock()
	var errs []error
	for _, ts := range tenants {
		for _, tl := range ts.ordered() {
			tl.stop()
			if tl.rt != nil {
				errs = append(errs, tl.rt.Close())
			}
		}
	}
	return errors.Join(errs...)
}

// ordered returns the tenant's timelines, descendants before ancestors.
func (ts *tenantState) ordered() []*Timeline {
	disk := ts.disk.ListTimelines() // ancestors first
	var out []*Timeline
	for i := len(disk) - 1; i >= 0; i-- {
		if tl := ts.timeline(disk[i].ID()); tl != nil {
			out = append(out, tl)
		}
	}
	return out
}

func (m *Manager) tenant(id ids.TenantID) (*tenantState, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	ts := m.tenants[id]
	if ts == nil {
		return nil, fmt.Errorf("%w: tenant %s", ErrNotFound, id)
	}
	if ts.broken != nil {
		return nil, fmt.Errorf("%w: tenant %s: %w", ErrBroken, id, ts.broken)
	}
	return ts, nil
}

// Timeline returns an active timeline.
func (m *Manager) Timeline(tenantID ids.TenantID, id ids.TimelineID) (*Timeline, error) {
	ts, err := m.tenant(tenantID)
	if err != nil {
		return nil, err
	}
	tl := ts.timeline(id)
	if tl == nil {
		return nil, fmt.Errorf("%w: tenant %s timeline %s", ErrNotFound, tenantID, id)
	}
	if tl.broken != nil {
		return nil, fmt.Errorf("%w: tenant %s timeline %s: %w", ErrBroken, tenantID, id, tl.broken)
	}
	return tl, nil
}

// TenantInfo describes a tenant.
type TenantInfo struct {
	ID            ids.TenantID
	State         string
	BrokenReason  string
	TimelineCount int
}

func (ts *tenantState) info() TenantInfo {
	ti := TenantInfo{ID: ts.disk.ID(), State: StateActive}
	if ts.broken != nil {
		ti.State, ti.BrokenReason = StateBroken, ts.broken.Error()
	}
	ts.mu.RLock()
	ti.TimelineCount = len(ts.timelines)
	ts.mu.RUnlock()
	return ti
}

// CreateTenant creates an empty tenant; a zero id gets a random one.
func (m *Manager) CreateTenant(ctx context.Context, id ids.TenantID) (TenantInfo, error) {
	if id.IsZero() {
		id = ids.NewTenantID()
	}
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return TenantInfo{}, ErrClosed
	}
	t, err := m.repo.CreateTenant(ctx, id)
	if err != nil {
		return TenantInfo{}, err
	}
	ts := &tenantState{disk: t, timelines: make(map[ids.TimelineID]*Timeline)}
	m.mu.Lock()
	m.tenants[id] = ts
	m.mu.Unlock()
	return ts.info(), nil
}

// ListTenants lists every tenant, broken ones included, ordered by id.
func (m *Manager) ListTenants() []TenantInfo {
	m.mu.RLock()
	out := make([]TenantInfo, 0, len(m.tenants))
	for _, ts := range m.tenants {
		out = append(out, ts.info())
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b TenantInfo) int { return compareIDs(a.ID[:], b.ID[:]) })
	return out
}

func compareIDs(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// GetTenant describes a tenant (broken ones too).
func (m *Manager) GetTenant(id ids.TenantID) (TenantInfo, error) {
	m.mu.RLock()
	ts := m.tenants[id]
	m.mu.RUnlock()
	if ts == nil {
		return TenantInfo{}, fmt.Errorf("%w: tenant %s", ErrNotFound, id)
	}
	return ts.info(), nil
}

// DeleteTenant stops and deletes a tenant with all its timelines.
func (m *Manager) DeleteTenant(ctx context.Context, id ids.TenantID) error {
	m.mu.RLock()
	ts := m.tenants[id]
	m.mu.RUnlock()
	if ts == nil {
		return fmt.Errorf("%w: tenant %s", ErrNotFound, id)
	}
	ts.lifecycle.Lock()
	defer ts.lifecycle.Unlock()
	tls := ts.ordered()
	for _, tl := range tls {
		tl.stop()
	}
	if err := m.repo.DeleteTenant(ctx, id); err != nil {
		for _, tl := range tls {
			m.startRunner(tl)
		}
		return err
	}
	m.mu.Lock()
	delete(m.tenants, id)
	m.mu.Unlock()
	for _, tl := range tls {
		if tl.rt != nil {
			_ = tl.rt.Close()
		}
	}
	return nil
}

// ListTimelines describes a tenant's timelines, ancestors before
// descendants.
func (m *Manager) ListTimelines(tenantID ids.TenantID) ([]TimelineInfo, error) {
	ts, err := m.tenant(tenantID)
	if err != nil {
		return nil, err
	}
	var out []TimelineInfo
	for _, dtl := range ts.disk.ListTimelines() {
		if tl := ts.timeline(dtl.ID()); tl != nil {
			out = append(out, tl.Info())
		}
	}
	return out, nil
}

// CreateRootTimeline creates an empty root timeline and runs fill on its
// runtime (an import or a bootstrap writing the base image; nil leaves it
// empty). If fill fails the timeline is deleted again. The timeline becomes
// visible to lookups only when fill succeeded. A zero id gets a random one.
func (m *Manager) CreateRootTimeline(ctx context.Context, tenantID ids.TenantID, id ids.TimelineID, fill func(ctx context.Context, rt *timeline.Timeline) error) (*Timeline, error) {
	ts, err := m.tenant(tenantID)
	if err != nil {
		return nil, err
	}
	if id.IsZero() {
		id = ids.NewTimelineID()
	}
	ts.lifecycle.Lock()
	defer ts.lifecycle.Unlock()
	md := metadata.Metadata{PGVersion: PGVersion}
	dtl, err := ts.disk.CreateTimeline(ctx, id, md)
	if err != nil {
		return nil, err
	}
	rt, err := m.openRuntime(ctx, dtl, dtl.Metadata(), nil)
	if err == nil && fill != nil {
		if err = fill(ctx, rt); err != nil {
			_ = rt.Close()
		}
	}
	if err != nil {
		if derr := ts.disk.DeleteTimeline(context.WithoutCancel(ctx), id); derr != nil {
			m.log.Error("removing a timeline whose creation failed", "tenant_id", tenantID, "timeline_id", id, "err", derr)
		}
		return nil, err
	}
	tl := &Timeline{tenantID: tenantID, id: id, disk: dtl, rt: rt, reader: pgdatadir.NewReader(rt)}
	ts.mu.Lock()
	ts.timelines[id] = tl
	ts.mu.Unlock()
	m.startRunner(tl)
	return tl, nil
}

// Branch creates timeline id of tenantID branching from ancestorID at LSN
// at (Invalid: the ancestor's last_record_lsn). It copies no data: one
// metadata file is written and an empty runtime opened, whatever the
// number of the ancestor's layer files. The branch point must be within
// [ancestor's start LSN (or GC cutoff), last_record_lsn]; otherwise the
// error wraps timeline.ErrLSNOutOfRange and states the range.
func (m *Manager) Branch(ctx context.Context, tenantID ids.TenantID, id, ancestorID ids.TimelineID, at lsn.LSN) (*Timeline, error) {
	ts, err := m.tenant(tenantID)
	if err != nil {
		return nil, err
	}
	if id.IsZero() {
		id = ids.NewTimelineID()
	}
	ts.lifecycle.Lock()
	defer ts.lifecycle.Unlock()
	anc := ts.timeline(ancestorID)
	if anc == nil {
		return nil, fmt.Errorf("%w: tenant %s ancestor timeline %s", ErrNotFound, tenantID, ancestorID)
	}
	if anc.broken != nil {
		return nil, fmt.Errorf("%w: tenant %s ancestor timeline %s: %w", ErrBroken, tenantID, ancestorID, anc.broken)
	}
	last := anc.rt.LastRecordLSN()
	prev := anc.rt.PrevRecordLSN()
	if again := anc.rt.LastRecordLSN(); again != last {
		last, prev = again, lsn.Invalid // prev is not known to belong to last
	}
	if !at.IsValid() {
		at = last
	}
	if !at.IsValid() {
		return nil, fmt.Errorf("%w: ancestor timeline %s has no data yet (import or bootstrap it first)", ErrInvalid, ancestorID)
	}
	if at != last {
		prev = lsn.Invalid
	}
	ancMD := anc.disk.Metadata()
	lo := ancMD.LatestGCCutoffLSN
	if !ancMD.HasAncestor() && ancMD.StartLSN > lo {
		lo = ancMD.StartLSN
	}
	if at > last || at < lo {
		return nil, fmt.Errorf("%w: branch point %s of timeline %s is outside [%s, %s] (start or GC cutoff, last_record_lsn)",
			timeline.ErrLSNOutOfRange, at, ancestorID, lo, last)
	}
	// Below the ancestor's own branch point the new branch reads further
	// up the chain: those timelines' GC cutoffs and start apply too.
	if err := anc.rt.CheckReadable(at); err != nil {
		return nil, fmt.Errorf("branch point %s of timeline %s: %w", at, ancestorID, err)
	}
	md := metadata.Metadata{
		AncestorTimeline: ancestorID, AncestorLSN: at,
		DiskConsistentLSN: at, PrevRecordLSN: prev, StartLSN: at,
		LatestGCCutoffLSN: ancMD.LatestGCCutoffLSN, PGVersion: ancMD.PGVersion,
	}
	check := tenant.WithBranchCheck(func(_ *tenant.Timeline, x lsn.LSN) error {
		if l := anc.rt.LastRecordLSN(); x > l {
			return fmt.Errorf("%w: branch point %s is above last_record_lsn %s", timeline.ErrLSNOutOfRange, x, l)
		}
		return nil
	})
	dtl, err := ts.disk.CreateTimeline(ctx, id, md, check)
	if err != nil {
		return nil, err
	}
	rt, err := m.openRuntime(ctx, dtl, md, anc.rt)
	if err != nil {
		if derr := ts.disk.DeleteTimeline(context.WithoutCancel(ctx), id); derr != nil {
			m.log.Error("removing a branch whose runtime failed to open", "tenant_id", tenantID, "timeline_id", id, "err", derr)
		}
		return nil, err
	}
	tl := &Timeline{tenantID: tenantID, id: id, disk: dtl, rt: rt, reader: pgdatadir.NewReader(rt)}
	ts.mu.Lock()
	ts.timelines[id] = tl
	ts.mu.Unlock()
	m.startRunner(tl)
	return tl, nil
}

// DeleteTimeline stops and deletes a timeline; it is refused (an error
// wrapping tenant.ErrHasChildren) while branches depend on it.
func (m *Manager) DeleteTimeline(ctx context.Context, tenantID ids.TenantID, id ids.TimelineID) error {
	ts, err := m.tenant(tenantID)
	if err != nil {
		return err
	}
	ts.lifecycle.Lock()
	defer ts.lifecycle.Unlock()
	tl := ts.timeline(id)
	if tl == nil {
		return fmt.Errorf("%w: tenant %s timeline %s", ErrNotFound, tenantID, id)
	}
	var kids []string
	for _, c := range ts.list() {
		if c.disk.Metadata().AncestorTimeline == id {
			kids = append(kids, c.id.String())
		}
	}
	if len(kids) > 0 {
		slices.Sort(kids)
		return fmt.Errorf("%w: tenant %s timeline %s is the ancestor of %v", tenant.ErrHasChildren, tenantID, id, kids)
	}
	tl.stop()
	if err := ts.disk.DeleteTimeline(ctx, id); err != nil {
		m.startRunner(tl)
		return err
	}
	ts.mu.Lock()
	delete(ts.timelines, id)
	ts.mu.Unlock()
	if tl.rt != nil {
		_ = tl.rt.Close()
	}
	return nil
}

// Checkpoint freezes and flushes a timeline's open layer and returns its
// disk_consistent_lsn.
func (m *Manager) Checkpoint(ctx context.Context, tenantID ids.TenantID, id ids.TimelineID) (lsn.LSN, error) {
	tl, err := m.Timeline(tenantID, id)
	if err != nil {
		return lsn.Invalid, err
	}
	return tl.rt.Checkpoint(ctx)
}

// Compact flushes a timeline and creates image layers of its whole
// keyspace at disk_consistent_lsn (see timeline.Timeline.Compact).
func (m *Manager) Compact(ctx context.Context, tenantID ids.TenantID, id ids.TimelineID) (timeline.CompactResult, error) {
	tl, err := m.Timeline(tenantID, id)
	if err != nil {
		return timeline.CompactResult{}, err
	}
	return tl.rt.Compact(ctx)
}

// RunGC garbage-collects a timeline: its GC cutoff rises to
// last_record_lsn - horizon (horizon 0: Config.GCHorizon), capped at
// disk_consistent_lsn and never lowered; the cutoff is persisted in the
// metadata before any file goes; then the layer files that neither reads
// at or above the cutoff nor reads at its branches' branch points can
// need are removed (timeline.Timeline.GC). Reads and new branch points
// below the cutoff are refused from then on.
func (m *Manager) RunGC(ctx context.Context, tenantID ids.TenantID, id ids.TimelineID, horizon uint64) (timeline.GCResult, error) {
	if horizon == 0 {
		horizon = m.cfg.GCHorizon
	}
	ts, err := m.tenant(tenantID)
	if err != nil {
		return timeline.GCResult{}, err
	}
	// Under the lifecycle lock no branch is being created: every branch
	// point below the new cutoff is in the retain list, and none can be
	// added below it afterwards (Branch checks the persisted cutoff).
	ts.lifecycle.Lock()
	tl, err := m.Timeline(tenantID, id)
	if err != nil {
		ts.lifecycle.Unlock()
		return timeline.GCResult{}, err
	}
	last, dcl := tl.rt.LastRecordLSN(), tl.rt.DiskConsistentLSN()
	cutoff := lsn.Invalid
	if uint64(last) > horizon {
		cutoff = min(last-lsn.LSN(horizon), dcl)
	}
	if cur := tl.rt.GCCutoffLSN(); cutoff < cur {
		cutoff = cur
	}
	if cutoff > tl.rt.GCCutoffLSN() {
		if _, err := tl.disk.UpdateMetadata(func(md *metadata.Metadata) {
			md.LatestGCCutoffLSN = max(md.LatestGCCutoffLSN, cutoff)
		}); err != nil {
			ts.lifecycle.Unlock()
			return timeline.GCResult{}, fmt.Errorf("tenantmgr: persisting GC cutoff %s of timeline %s: %w", cutoff, id, err)
		}
		tl.rt.SetGCCutoff(cutoff)
	}
	retain := readPointsOn(ts.list(), id)
	ts.lifecycle.Unlock()
	return tl.rt.GC(ctx, retain)
}

// readPointsOn returns the LSNs at which the descendants of timeline id
// read it (timeline.ReadPoints over the tenant's branches).
func readPointsOn(tls []*Timeline, id ids.TimelineID) []lsn.LSN {
	var branches []timeline.BranchPoint
	for _, tl := range tls {
		if md := tl.disk.Metadata(); md.HasAncestor() {
			branches = append(branches, timeline.BranchPoint{ID: tl.id, Ancestor: md.AncestorTimeline, LSN: md.AncestorLSN})
		}
	}
	return timeline.ReadPoints(id, branches)
}

// gcLoop runs RunGC on every active timeline each GCPeriod.
func (m *Manager) gcLoop(ctx context.Context) {
	tick := time.NewTicker(m.cfg.GCPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, t := range m.ListTenants() {
			tls, err := m.ListTimelines(t.ID)
			if err != nil {
				continue
			}
			for _, ti := range tls {
				if ti.State != StateActive || ctx.Err() != nil {
					continue
				}
				if _, err := m.RunGC(ctx, ti.TenantID, ti.TimelineID, 0); err != nil && ctx.Err() == nil {
					m.log.Error("background GC failed", "tenant_id", ti.TenantID, "timeline_id", ti.TimelineID, "err", err)
				}
			}
		}
	}
}

// Timeline is one timeline of a tenant as the manager holds it.
type Timeline struct {
	tenantID ids.TenantID
	id       ids.TimelineID
	disk     *tenant.Timeline
	rt       *timeline.Timeline // nil when broken
	reader   *pgdatadir.Reader
	broken   error

	runMu   sync.Mutex // guards stopRun and runDone
	stopRun context.CancelFunc
	runDone chan struct{}

	ingestMu sync.Mutex // guards ingest
	ingest   *ingestSession
}

// TenantID returns the tenant id.
func (tl *Timeline) TenantID() ids.TenantID { return tl.tenantID }

// ID returns the timeline id.
func (tl *Timeline) ID() ids.TimelineID { return tl.id }

// Runtime returns the runtime timeline (nil for a broken one).
func (tl *Timeline) Runtime() *timeline.Timeline { return tl.rt }

// Reader returns typed reads over the runtime timeline.
func (tl *Timeline) Reader() *pgdatadir.Reader { return tl.reader }

// Metadata returns the last persisted metadata.
func (tl *Timeline) Metadata() metadata.Metadata { return tl.disk.Metadata() }

// StartLSN is the first LSN the timeline can serve: its initdb/import LSN,
// or for a branch its ancestor LSN (reads below it go to the ancestor, but
// a backup of the branch cannot be taken there).
func (tl *Timeline) StartLSN() lsn.LSN {
	md := tl.disk.Metadata()
	if md.HasAncestor() {
		return md.AncestorLSN
	}
	return md.StartLSN
}

// stop stops the flusher and the ingest session, and waits for both.
func (tl *Timeline) stop() {
	tl.runMu.Lock()
	cancel, done := tl.stopRun, tl.runDone
	tl.stopRun, tl.runDone = nil, nil
	tl.runMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	tl.ingestMu.Lock()
	s := tl.ingest
	tl.ingestMu.Unlock()
	if s != nil {
		s.cancel(ErrClosed)
		<-s.done
	}
}

// TimelineInfo describes a timeline with all its LSNs.
type TimelineInfo struct {
	TenantID           ids.TenantID
	TimelineID         ids.TimelineID
	AncestorTimelineID ids.TimelineID
	AncestorLSN        lsn.LSN
	LastRecordLSN      lsn.LSN
	PrevRecordLSN      lsn.LSN
	DiskConsistentLSN  lsn.LSN
	StartLSN           lsn.LSN
	GCCutoffLSN        lsn.LSN
	PGVersion          uint32
	State              string
	BrokenReason       string
	CreatedAt          time.Time
	LayerFileCount     int
	LayerFileBytes     int64
	// NewestImageLSN is the LSN of the timeline's newest image layer (0:
	// none of its own); DeltasAboveImage counts delta layers above it.
	NewestImageLSN   lsn.LSN
	DeltasAboveImage int
}

// Info describes the timeline.
func (tl *Timeline) Info() TimelineInfo {
	md := tl.disk.Metadata()
	ti := TimelineInfo{
		TenantID: tl.tenantID, TimelineID: tl.id,
		AncestorTimelineID: md.AncestorTimeline, AncestorLSN: md.AncestorLSN,
		LastRecordLSN: md.DiskConsistentLSN, PrevRecordLSN: md.PrevRecordLSN,
		DiskConsistentLSN: md.DiskConsistentLSN, StartLSN: tl.StartLSN(),
		GCCutoffLSN: md.LatestGCCutoffLSN, PGVersion: md.PGVersion,
		State: StateActive, CreatedAt: md.CreatedAt,
	}
	if tl.broken != nil {
		ti.State, ti.BrokenReason = StateBroken, tl.broken.Error()
		return ti
	}
	ti.LastRecordLSN = tl.rt.LastRecordLSN()
	ti.PrevRecordLSN = tl.rt.PrevRecordLSN()
	ti.DiskConsistentLSN = tl.rt.DiskConsistentLSN()
	n, b := tl.rt.LayerStats()
	ti.LayerFileCount, ti.LayerFileBytes = n, b
	ti.NewestImageLSN, ti.DeltasAboveImage = tl.rt.ImageStats()
	return ti
}

// GetTimeline describes one timeline (broken ones too).
func (m *Manager) GetTimeline(tenantID ids.TenantID, id ids.TimelineID) (TimelineInfo, error) {
	ts, err := m.tenant(tenantID)
	if err != nil {
		return TimelineInfo{}, err
	}
	tl := ts.timeline(id)
	if tl == nil {
		return TimelineInfo{}, fmt.Errorf("%w: tenant %s timeline %s", ErrNotFound, tenantID, id)
	}
	return tl.Info(), nil
}
