package timelines

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/safekeeper-bridge/ingest"
	"github.com/stratadb/strata/services/safekeeper-bridge/replication"
	"github.com/stratadb/strata/services/safekeeper-bridge/spool"
)

// Attachment binds one pageserver timeline to one primary.
type Attachment struct {
	TenantID, TimelineID string
	// SlotName is the permanent physical slot on the primary; default
	// "strata_" + the first 16 hex digits of TimelineID.
	SlotName string
	// PrimaryConnInfo is the primary's libpq connection string. Secret: it
	// is stored with mode 0600 and never logged or reported.
	PrimaryConnInfo string
	// Import takes a base backup into the pageserver before streaming;
	// Imported records that it was done (then StartLSN is its start LSN).
	Import, Imported bool
	// StartLSN is where an empty spool starts streaming with a new slot;
	// Invalid means the slot's restart_lsn.
	StartLSN lsn.LSN
	// FromConfig marks a [[timeline]] entry of the config file: it is not
	// persisted in the attachments file and cannot be detached by the API.
	FromConfig bool
}

func (a Attachment) key() string { return a.TenantID + "/" + a.TimelineID }

// normalize fills the defaults (a random timeline id for an import, the
// slot name) and validates.
func (a *Attachment) normalize() error {
	if a.TimelineID == "" && a.Import {
		a.TimelineID = ids.NewTimelineID().String()
	}
	if a.SlotName == "" && len(a.TimelineID) >= 16 {
		a.SlotName = "strata_" + a.TimelineID[:16]
	}
	return a.validate()
}

func (a Attachment) validate() error {
	var errs []error
	if !auth.IsTenantID(a.TenantID) {
		errs = append(errs, fmt.Errorf("tenant_id %q is not 32 lowercase hex characters", a.TenantID))
	}
	if !isTimelineID(a.TimelineID) {
		errs = append(errs, fmt.Errorf("timeline_id %q is not 32 lowercase hex characters (it may be empty only with import)", a.TimelineID))
	}
	if !replication.ValidSlotName(a.SlotName) {
		errs = append(errs, fmt.Errorf("slot_name %q must be 1-63 characters of a-z, 0-9 and _", a.SlotName))
	}
	if a.PrimaryConnInfo == "" {
		errs = append(errs, errors.New("primary_conninfo is empty"))
	} else if _, err := pgconn.ParseConfig(a.PrimaryConnInfo); err != nil {
		// pgconn's message may quote the string (and its password).
		errs = append(errs, errors.New("primary_conninfo cannot be parsed as a libpq connection string"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}

// Options configures a Manager.
type Options struct {
	// StateDir holds the attachments file and one spool directory per
	// timeline (<tenant>/<timeline>).
	StateDir string
	// Pageserver is the connection to the pageserver (IngestService and
	// ManagementService), carrying the safekeeperdata token.
	Pageserver grpc.ClientConnInterface
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// LagSampleInterval is how often the lag in seconds is sampled
	// (default 100 ms); it is the resolution of that lag.
	LagSampleInterval time.Duration
	// ImportMinBackoff and ImportMaxBackoff bound the retries of a failed
	// import (default 1 s and 30 s).
	ImportMinBackoff, ImportMaxBackoff time.Duration
	// ImportChunkBytes is the size of the base_tar_chunk messages
	// (default 256 KiB).
	ImportChunkBytes int
	// SpoolSyncDelay, SpoolMaxSyncDelay and SpoolSyncBytes are the group
	// commit of every timeline's spool (replication.Config's SyncDelay,
	// MaxSyncDelay and SyncBytes; zero: its defaults).
	SpoolSyncDelay, SpoolMaxSyncDelay time.Duration
	SpoolSyncBytes                    int
}

// Manager owns the attached timelines of one bridge process: their spools,
// their clients, the attachments file and the base backup imports.
type Manager struct {
	opts   Options
	log    *slog.Logger
	ingest pb.IngestServiceClient
	mgmt   pb.ManagementServiceClient

	mu        sync.Mutex
	timelines map[string]*timeline
	runCtx    context.Context // set while Run runs
	closed    bool
}

// New restores the attachments file of opts.StateDir and adds the
// configured timelines (which win over a persisted entry of the same
// timeline). It opens every spool; Run starts streaming.
func New(opts Options, configured []Attachment) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LagSampleInterval <= 0 {
		opts.LagSampleInterval = 100 * time.Millisecond
	}
	if opts.ImportMinBackoff <= 0 {
		opts.ImportMinBackoff = time.Second
	}
	if opts.ImportMaxBackoff <= 0 {
		opts.ImportMaxBackoff = 30 * time.Second
	}
	if opts.ImportChunkBytes <= 0 {
		opts.ImportChunkBytes = 256 << 10
	}
	if opts.StateDir == "" || opts.Pageserver == nil {
		return nil, fmt.Errorf("%w: StateDir and Pageserver are required", ErrInvalidArgument)
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("timelines: creating state directory: %w", err)
	}
	if err := durable.RemoveTemps(opts.StateDir); err != nil {
		return nil, err
	}
	persisted, err := loadState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, log: opts.Logger, ingest: pb.NewIngestServiceClient(opts.Pageserver), mgmt: pb.NewManagementServiceClient(opts.Pageserver), timelines: map[string]*timeline{}}
	for _, a := range configured {
		a.FromConfig = true
		if err := a.normalize(); err != nil {
			m.closeAll()
			return nil, fmt.Errorf("timelines: configured timeline %s: %w", a.key(), err)
		}
		if err := m.add(a); err != nil {
			m.closeAll()
			return nil, err
		}
	}
	for _, a := range persisted {
		if _, ok := m.timelines[a.key()]; ok {
			m.log.Warn("timeline is both in the config file and attached by the API; using the config file", "tenant_id", a.TenantID, "timeline_id", a.TimelineID)
			continue
		}
		if err := m.add(a); err != nil {
			m.closeAll()
			return nil, err
		}
	}
	return m, nil
}

// add opens the timeline's spool and registers it (not started).
func (m *Manager) add(a Attachment) error {
	if _, ok := m.timelines[a.key()]; ok {
		return fmt.Errorf("%w: %s", ErrAlreadyAttached, a.key())
	}
	log := m.log.With("tenant_id", a.TenantID, "timeline_id", a.TimelineID)
	sp, err := spool.Open(m.spoolDir(a), spool.Options{Logger: log})
	if err != nil {
		return err
	}
	m.timelines[a.key()] = &timeline{m: m, att: a, spool: sp, log: log, state: StateStopped}
	return nil
}

func (m *Manager) spoolDir(a Attachment) string {
	return filepath.Join(m.opts.StateDir, a.TenantID, a.TimelineID)
}

// persistLocked writes the API attachments; m.mu is held.
func (m *Manager) persistLocked() error {
	var atts []Attachment
	for _, tl := range m.timelines {
		if a := tl.attachment(); !a.FromConfig {
			atts = append(atts, a)
		}
	}
	sort.Slice(atts, func(i, j int) bool { return atts[i].key() < atts[j].key() })
	return saveState(m.opts.StateDir, atts)
}

func (m *Manager) closeAll() {
	for _, tl := range m.timelines {
		_ = tl.spool.Close()
	}
}

// Run streams every timeline until ctx is cancelled, then stops them, closes
// the spools and returns nil. Timelines attached while it runs start at once.
// A timeline stopped by a permanent error does not stop the others.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.closed || m.runCtx != nil {
		m.mu.Unlock()
		return ErrClosed
	}
	m.runCtx = ctx
	for _, tl := range m.timelines {
		tl.start(ctx)
	}
	m.mu.Unlock()

	<-ctx.Done()

	m.mu.Lock()
	m.closed = true
	tls := make([]*timeline, 0, len(m.timelines))
	for _, tl := range m.timelines {
		tls = append(tls, tl)
	}
	m.mu.Unlock()
	for _, tl := range tls {
		tl.wait()
		_ = tl.spool.Close()
	}
	return nil
}

// Close releases the spools of a manager whose Run was never called.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runCtx == nil && !m.closed {
		m.closed = true
		m.closeAll()
	}
}

// Attach attaches a timeline: it is validated, persisted (fsynced) and
// started; with Import, the base backup runs in the background (state
// "importing"). It returns the new timeline's status.
func (m *Manager) Attach(_ context.Context, a Attachment) (Status, error) {
	a.FromConfig = false
	a.Imported = false
	a.StartLSN = lsn.Invalid
	if err := a.normalize(); err != nil {
		return Status{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Status{}, ErrClosed
	}
	if err := m.add(a); err != nil {
		return Status{}, err
	}
	tl := m.timelines[a.key()]
	if err := m.persistLocked(); err != nil {
		delete(m.timelines, a.key())
		_ = tl.spool.Close()
		return Status{}, err
	}
	m.log.Info("timeline attached", "tenant_id", a.TenantID, "timeline_id", a.TimelineID, "slot", a.SlotName, "import", a.Import)
	if m.runCtx != nil {
		tl.start(m.runCtx)
	}
	return tl.status(time.Now()), nil
}

// Detach stops a timeline attached by the API, forgets it (attachments file
// and spool directory) and, with dropSlot, drops its slot on the primary.
// WAL still in its spool and not yet persisted by the pageserver is lost.
func (m *Manager) Detach(ctx context.Context, tenantID, timelineID string, dropSlot bool) error {
	m.mu.Lock()
	tl, ok := m.timelines[tenantID+"/"+timelineID]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s/%s", ErrNotAttached, tenantID, timelineID)
	}
	a := tl.attachment()
	if a.FromConfig {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s/%s (remove its [[timeline]] table and restart)", ErrConfigured, tenantID, timelineID)
	}
	delete(m.timelines, a.key())
	if err := m.persistLocked(); err != nil {
		m.timelines[a.key()] = tl
		m.mu.Unlock()
		return err
	}
	m.mu.Unlock()

	tl.stop()
	_ = tl.spool.Close()
	if err := os.RemoveAll(m.spoolDir(a)); err != nil {
		m.log.Warn("removing the spool of a detached timeline", "dir", m.spoolDir(a), "err", err)
	}
	m.log.Info("timeline detached", "tenant_id", a.TenantID, "timeline_id", a.TimelineID, "drop_slot", dropSlot)
	if dropSlot {
		if err := replication.DropSlot(ctx, a.PrimaryConnInfo, a.SlotName); err != nil {
			return fmt.Errorf("timelines: %s detached, but its slot %s was not dropped: %w", a.key(), a.SlotName, err)
		}
	}
	return nil
}

// List returns every attached timeline's status, sorted by tenant and
// timeline.
func (m *Manager) List() []Status {
	m.mu.Lock()
	tls := make([]*timeline, 0, len(m.timelines))
	for _, tl := range m.timelines {
		tls = append(tls, tl)
	}
	m.mu.Unlock()
	now := time.Now()
	out := make([]Status, 0, len(tls))
	for _, tl := range tls {
		out = append(out, tl.status(now))
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].TenantID+out[i].TimelineID < out[j].TenantID+out[j].TimelineID
	})
	return out
}

// Get returns one timeline's status.
func (m *Manager) Get(tenantID, timelineID string) (Status, error) {
	m.mu.Lock()
	tl, ok := m.timelines[tenantID+"/"+timelineID]
	m.mu.Unlock()
	if !ok {
		return Status{}, fmt.Errorf("%w: %s/%s", ErrNotAttached, tenantID, timelineID)
	}
	return tl.status(time.Now()), nil
}

// timeline is one attached timeline.
type timeline struct {
	m     *Manager
	spool *spool.Spool
	log   *slog.Logger
	lag   lagTracker

	mu        sync.Mutex
	att       Attachment
	state     string
	err       error // permanent: the timeline stopped
	importErr error // last failed import attempt
	streamer  *replication.Streamer
	sender    *ingest.Sender
	cancel    context.CancelFunc
	done      chan struct{}
}

func (tl *timeline) attachment() Attachment {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.att
}

// start runs the timeline in its own goroutine, owned by the timeline and
// stopped by stop or by ctx.
func (tl *timeline) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	tl.mu.Lock()
	tl.cancel, tl.done = cancel, make(chan struct{})
	done := tl.done
	tl.mu.Unlock()
	go func() {
		defer close(done)
		defer cancel()
		err := tl.run(ctx)
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			tl.err, tl.state = err, StateError
			tl.log.Error("timeline stopped", "err", err)
			return
		}
		if tl.err == nil {
			tl.state = StateStopped
		}
	}()
}

func (tl *timeline) stop() {
	tl.mu.Lock()
	cancel := tl.cancel
	tl.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	tl.wait()
}

func (tl *timeline) wait() {
	tl.mu.Lock()
	done := tl.done
	tl.mu.Unlock()
	if done != nil {
		<-done
	}
}

// run imports the base backup if needed, then runs the replication and
// ingest clients and the lag sampler until ctx ends or a permanent error.
func (tl *timeline) run(ctx context.Context) error {
	a := tl.attachment()
	if a.Import && !a.Imported {
		tl.setState(StateImporting)
		start, err := tl.importWithRetry(ctx)
		if err != nil {
			return err
		}
		if err := tl.markImported(start); err != nil {
			return err
		}
		a = tl.attachment()
	}
	tl.setState(StateConnecting)
	sender := ingest.New(ingest.Config{TenantID: a.TenantID, TimelineID: a.TimelineID, Source: "safekeeper-bridge/" + a.SlotName}, tl.m.ingest, tl.spool, tl.log)
	streamer, err := replication.New(replication.Config{
		ConnString: a.PrimaryConnInfo, SlotName: a.SlotName, StartLSN: a.StartLSN,
		SyncDelay: tl.m.opts.SpoolSyncDelay, MaxSyncDelay: tl.m.opts.SpoolMaxSyncDelay, SyncBytes: tl.m.opts.SpoolSyncBytes,
	}, tl.spool, sender.DiskConsistentLSN, tl.log)
	if err != nil {
		return err
	}
	tl.mu.Lock()
	tl.streamer, tl.sender = streamer, sender
	tl.mu.Unlock()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return streamer.Run(gctx) })
	g.Go(func() error { return sender.Run(gctx) })
	g.Go(func() error {
		t := time.NewTicker(tl.m.opts.LagSampleInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case now := <-t.C:
				tl.lag.observe(streamer.Stats().PrimaryFlushLSN.Load(), sender.Stats().LastRecordLSN.Load(), now)
			}
		}
	})
	return g.Wait()
}

func (tl *timeline) setState(s string) {
	tl.mu.Lock()
	tl.state = s
	tl.mu.Unlock()
}

// markImported records the import in the attachments file, so a restart
// streams from the backup's start instead of importing again.
func (tl *timeline) markImported(start lsn.LSN) error {
	m := tl.m
	m.mu.Lock()
	defer m.mu.Unlock()
	tl.mu.Lock()
	tl.att.Imported, tl.att.StartLSN = true, start
	tl.importErr = nil
	tl.mu.Unlock()
	if _, still := m.timelines[tl.att.key()]; !still {
		return nil // detached meanwhile
	}
	return m.persistLocked()
}

// isTimelineID reports whether s is a timeline id in text form (design D6).
func isTimelineID(s string) bool {
	_, err := ids.ParseTimelineID(s)
	return err == nil
}
