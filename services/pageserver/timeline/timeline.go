package timeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/seqwait"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/inmemory"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/layer"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/walredo/redo"
)

// Config holds the timeline's tunables.
type Config struct {
	// CheckpointDistance is the WAL distance (bytes) the open layer may
	// cover before it is frozen and flushed.
	CheckpointDistance uint64
	// CheckpointTimeout freezes an open layer older than this even if it is
	// small, so disk_consistent_lsn keeps moving on a quiet timeline.
	CheckpointTimeout time.Duration
	// WaitLSNTimeout bounds how long a read waits for WAL to arrive.
	WaitLSNTimeout time.Duration
	// ImageCreationThreshold: after a flush leaves this many delta layers
	// above the newest image layer, the background loop images the whole
	// keyspace at disk_consistent_lsn (0 disables it; Compact still works).
	ImageCreationThreshold int
	// ImageLayerTargetSize splits an image pass into layer files of about
	// this many bytes of values.
	ImageLayerTargetSize uint64
	// ImageWorkers is how many keys are reconstructed concurrently while
	// images are created (each may hold a walredo process).
	ImageWorkers int
}

// DefaultConfig returns Neon-like defaults.
func DefaultConfig() Config {
	return Config{
		CheckpointDistance: 256 << 20, CheckpointTimeout: 10 * time.Minute, WaitLSNTimeout: 300 * time.Second,
		ImageCreationThreshold: 3, ImageLayerTargetSize: 128 << 20, ImageWorkers: 2,
	}
}

// NativeApplier applies a Strata-native record to a page image in place
// (services/pageserver/native).
type NativeApplier interface {
	Apply(key keyspace.Key, at lsn.LSN, subtype uint8, payload []byte, page []byte) ([]byte, error)
}

// Options describe a timeline to open.
type Options struct {
	Tenant   ids.TenantID
	ID       ids.TimelineID
	Dir      string
	Ancestor *Timeline
	// AncestorLSN is the branch point: reads at or below it go to Ancestor.
	AncestorLSN lsn.LSN
	// StartLSN is the first LSN a root timeline can serve (initdb or import).
	StartLSN lsn.LSN
	// DiskConsistentLSN and PrevRecordLSN come from the metadata file.
	DiskConsistentLSN lsn.LSN
	PrevRecordLSN     lsn.LSN
	// GCCutoffLSN: reads below it are refused.
	GCCutoffLSN lsn.LSN

	Cache *pagecache.Cache
	// EphemeralMemory is the budget in which ephemeral files keep chunks
	// in memory (nil: every chunk is written to the file).
	EphemeralMemory *ephemeral.Memory
	Redo            redo.Redoer
	Native          NativeApplier
	Config          Config
	Logger          *slog.Logger
	// Keyspace lists the keys that exist at an LSN; compaction needs it
	// (nil: Compact fails and no images are created in the background).
	Keyspace KeyspaceFunc
	// PersistMetadata durably records disk_consistent_lsn (and the
	// prev_record_lsn that goes with it) after a flush.
	PersistMetadata func(diskConsistentLSN, prevRecordLSN lsn.LSN) error
}

// historic is a layer file on disk.
type historic struct {
	sum    layer.Summary
	reader *layer.Reader
	path   string
	fileID pagecache.FileID
	bytes  int64
}

// Timeline is one timeline at runtime. See the package doc.
type Timeline struct {
	tenant       ids.TenantID
	id           ids.TimelineID
	dir          string
	ancestor     *Timeline
	ancestorLSN  lsn.LSN
	startLSN     lsn.AtomicLSN
	cache        *pagecache.Cache
	ephemeralMem *ephemeral.Memory
	redo         redo.Redoer
	native       NativeApplier
	cfg          Config
	logger       *slog.Logger
	persist      func(diskConsistentLSN, prevRecordLSN lsn.LSN) error
	keyspaceFn   KeyspaceFunc
	baseLogger   *slog.Logger // without this timeline's attributes (for branches)

	lastRecord     *seqwait.SeqWait
	prevRecord     lsn.AtomicLSN
	diskConsistent lsn.AtomicLSN
	gcCutoff       lsn.AtomicLSN

	ingestMu sync.Mutex // serializes IngestRecord and freezes

	mu           sync.RWMutex // guards the layer set below
	open         *inmemory.Layer
	openSince    time.Time
	frozen       []*frozenLayer // oldest first
	layers       []*historic
	retired      []*historic // removed by GC, closed at the next pass
	ephemeralSeq uint64

	flushMu   sync.Mutex // one flush at a time
	compactMu sync.Mutex // one image pass at a time
	flushWake chan struct{}
	// compactWake is signalled after every layer flush: the background
	// image creation checks its threshold then.
	compactWake chan struct{}
	broken      atomic.Pointer[error]
	closed      atomic.Bool
}

type frozenLayer struct {
	mem  *inmemory.Layer
	prev lsn.LSN // prev_record_lsn at the freeze
}

// Open loads the timeline's layer files from opts.Dir and returns it ready
// for ingest and reads; last_record_lsn starts at DiskConsistentLSN.
func Open(ctx context.Context, opts Options) (*Timeline, error) {
	if opts.Cache == nil || opts.Logger == nil {
		return nil, errors.New("timeline: Cache and Logger are required")
	}
	if opts.Config.CheckpointDistance == 0 {
		opts.Config = DefaultConfig()
	}
	if opts.Config.ImageLayerTargetSize == 0 {
		opts.Config.ImageLayerTargetSize = DefaultConfig().ImageLayerTargetSize
	}
	opts.Config.ImageWorkers = max(1, opts.Config.ImageWorkers)
	t := &Timeline{
		tenant: opts.Tenant, id: opts.ID, dir: opts.Dir,
		ancestor: opts.Ancestor, ancestorLSN: opts.AncestorLSN,
		cache: opts.Cache, ephemeralMem: opts.EphemeralMemory, redo: opts.Redo, native: opts.Native, cfg: opts.Config,
		logger:      opts.Logger.With("tenant_id", opts.Tenant.String(), "timeline_id", opts.ID.String()),
		persist:     opts.PersistMetadata,
		keyspaceFn:  opts.Keyspace,
		baseLogger:  opts.Logger,
		lastRecord:  seqwait.New(opts.DiskConsistentLSN),
		flushWake:   make(chan struct{}, 1),
		compactWake: make(chan struct{}, 1),
	}
	t.prevRecord.Store(opts.PrevRecordLSN)
	t.startLSN.Store(opts.StartLSN)
	t.diskConsistent.Store(opts.DiskConsistentLSN)
	t.gcCutoff.Store(opts.GCCutoffLSN)
	if err := ephemeral.RemoveStale(opts.Dir); err != nil {
		return nil, err
	}
	if err := durable.RemoveTemps(opts.Dir); err != nil {
		return nil, err
	}
	if err := t.loadLayers(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// loadLayers opens every layer file, quarantining those that are newer than
// disk_consistent_lsn or fail their header checks.
func (t *Timeline) loadLayers(ctx context.Context) error {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("timeline: listing %s: %w", t.dir, err)
	}
	dcl := t.diskConsistent.Load()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.Contains(name, ".quarantine-") || strings.HasPrefix(name, ".") {
			continue
		}
		fn, err := layer.ParseFileName(name)
		if err != nil {
			continue // metadata and other files
		}
		path := filepath.Join(t.dir, name)
		newest := fn.LSNs.End - 1
		if newest > dcl {
			t.quarantine(path, fmt.Sprintf("layer ends at %s, above disk_consistent_lsn %s (written after the last durable metadata update)", newest, dcl))
			continue
		}
		h, err := t.openLayer(ctx, path)
		if err != nil {
			t.quarantine(path, err.Error())
			continue
		}
		t.layers = append(t.layers, h)
	}
	t.sortLayersLocked()
	return nil
}

func (t *Timeline) quarantine(path, why string) {
	dst := fmt.Sprintf("%s.quarantine-%d", path, time.Now().Unix())
	err := os.Rename(path, dst)
	t.logger.Error("layer file quarantined: it will not be read", "file", path, "moved_to", dst, "reason", why, "rename_error", err)
}

func (t *Timeline) openLayer(ctx context.Context, path string) (*historic, error) {
	fbr, err := layer.OpenFileBlockReader(path)
	if err != nil {
		return nil, err
	}
	cb := &cachedBlocks{cache: t.cache, id: t.cache.NewFileID(), file: fbr, name: filepath.Base(path)}
	r, err := layer.Open(ctx, filepath.Base(path), cb, fbr.Blocks())
	if err != nil {
		_ = fbr.Close()
		t.cache.InvalidateFile(cb.id)
		return nil, err
	}
	return &historic{sum: r.Summary(), reader: r, path: path, fileID: cb.id, bytes: fbr.Size()}, nil
}

// sortLayersLocked orders layers by their newest LSN, newest first. It
// sorts in place: call it only on a slice no reader has seen yet.
func (t *Timeline) sortLayersLocked() {
	slices.SortFunc(t.layers, func(a, b *historic) int {
		switch {
		case a.sum.LSNs.End != b.sum.LSNs.End:
			return -cmpLSN(a.sum.LSNs.End, b.sum.LSNs.End)
		case a.sum.Kind != b.sum.Kind: // at equal ends, images before deltas
			return int(b.sum.Kind) - int(a.sum.Kind)
		}
		return a.sum.Keys.Start.Compare(b.sum.Keys.Start)
	})
}

func cmpLSN(a, b lsn.LSN) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Branch creates a branch of t at lsn in O(1): no data is copied. The
// branch's own directory must exist; its metadata is the caller's.
func (t *Timeline) Branch(ctx context.Context, id ids.TimelineID, dir string, at lsn.LSN, persist func(lsn.LSN, lsn.LSN) error) (*Timeline, error) {
	last := t.LastRecordLSN()
	if at > last {
		return nil, fmt.Errorf("%w: branch point %s is above the ancestor's last_record_lsn %s", ErrLSNOutOfRange, at, last)
	}
	if err := t.CheckReadable(at); err != nil {
		return nil, fmt.Errorf("branch point: %w", err)
	}
	return Open(ctx, Options{
		Tenant: t.tenant, ID: id, Dir: dir, Ancestor: t, AncestorLSN: at,
		DiskConsistentLSN: at, Cache: t.cache, EphemeralMemory: t.ephemeralMem, Redo: t.redo, Native: t.native,
		Config: t.cfg, Logger: t.baseLogger, PersistMetadata: persist, Keyspace: t.keyspaceFn,
	})
}

// ID returns the timeline id.
func (t *Timeline) ID() ids.TimelineID { return t.id }

// LastRecordLSN is the end LSN of the last whole record ingested.
func (t *Timeline) LastRecordLSN() lsn.LSN { return t.lastRecord.Load() }

// PrevRecordLSN is the start LSN of the last whole record ingested.
func (t *Timeline) PrevRecordLSN() lsn.LSN { return t.prevRecord.Load() }

// DiskConsistentLSN is the LSN up to which everything is in layer files.
func (t *Timeline) DiskConsistentLSN() lsn.LSN { return t.diskConsistent.Load() }

// AncestorLSN returns the branch point (Invalid for a root timeline).
func (t *Timeline) AncestorLSN() lsn.LSN { return t.ancestorLSN }

// LayerStats returns the number of layer files and their total size.
func (t *Timeline) LayerStats() (count int, bytes int64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, h := range t.layers {
		bytes += h.bytes
	}
	return len(t.layers), bytes
}

func (t *Timeline) brokenErr() error {
	if p := t.broken.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrBroken, *p)
	}
	if t.closed.Load() {
		return ErrClosed
	}
	return nil
}

func (t *Timeline) setBroken(err error) {
	if t.broken.CompareAndSwap(nil, &err) {
		t.logger.Error("timeline is broken; it needs a restart", "err", err)
		t.lastRecord.Shutdown(fmt.Errorf("%w: %w", ErrBroken, err))
	}
}

// Modification collects the values of one WAL record (see IngestRecord).
type Modification struct {
	t   *Timeline
	end lsn.LSN
	buf []byte
}

// Put stores an encoded value for key at the record's end LSN.
func (m *Modification) Put(key keyspace.Key, encoded []byte) error {
	return m.t.putLocked(key, m.end, encoded)
}

// Get returns the value of key including this record's earlier puts.
func (m *Modification) Get(ctx context.Context, key keyspace.Key) ([]byte, error) {
	v, err := m.t.reconstruct(ctx, key, m.end, m.buf[:0], false)
	if err == nil {
		m.buf = v
	}
	return v, err
}

// GetAt reads key as of at, at or before the record's end, without waiting
// for last_record_lsn: inside an IngestBatch the earlier records of the
// batch are stored but not yet published, and the reader is the ingest
// itself (CREATE DATABASE copying its template as of the record's start).
func (m *Modification) GetAt(ctx context.Context, key keyspace.Key, at lsn.LSN) ([]byte, error) {
	if at > m.end {
		return nil, fmt.Errorf("%w: read at %s inside the record ending at %s", ErrLSNOutOfRange, at, m.end)
	}
	return m.t.reconstruct(ctx, key, at, nil, false)
}

// IngestRecord runs fn to store the values of the WAL record [start, end),
// then advances last_record_lsn to end (and prev_record_lsn to start). Only
// whole records become visible. A failure breaks the timeline: WAL must be
// re-sent after a restart.
func (t *Timeline) IngestRecord(ctx context.Context, start, end lsn.LSN, fn func(m *Modification) error) error {
	t.ingestMu.Lock()
	defer t.ingestMu.Unlock()
	if err := t.brokenErr(); err != nil {
		return err
	}
	if last := t.lastRecord.Load(); end <= last {
		return fmt.Errorf("timeline: record %s..%s ends at or before last_record_lsn %s", start, end, last)
	}
	m := &Modification{t: t, end: end}
	if err := fn(m); err != nil {
		t.setBroken(fmt.Errorf("ingesting record at %s: %w", start, err))
		return err
	}
	t.prevRecord.Store(start)
	if _, err := t.lastRecord.Advance(end); err != nil {
		return err
	}
	t.maybeFreezeLocked(false)
	return nil
}

// AdvanceLastRecordLSN moves last_record_lsn to end for WAL that stores
// nothing (the ingest still has to account for it). Same rules as
// IngestRecord.
func (t *Timeline) AdvanceLastRecordLSN(start, end lsn.LSN) error {
	return t.IngestRecord(context.Background(), start, end, func(*Modification) error { return nil })
}

func (t *Timeline) putLocked(key keyspace.Key, at lsn.LSN, encoded []byte) error {
	t.mu.Lock()
	if t.open == nil {
		t.ephemeralSeq++
		f, err := ephemeral.Create(t.dir, t.ephemeralSeq, t.cache, t.ephemeralMem)
		if err != nil {
			t.mu.Unlock()
			return err
		}
		start := t.lastRecord.Load() + 1
		if n := len(t.frozen); n > 0 {
			end, _ := t.frozen[n-1].mem.End()
			start = end
		}
		t.open = inmemory.New(f, start)
		t.openSince = time.Now()
	}
	open := t.open
	t.mu.Unlock()
	return open.Put(key, at, encoded)
}

// maybeFreezeLocked freezes the open layer when it covers
// CheckpointDistance bytes of WAL, is older than CheckpointTimeout, or when
// force is set. The caller holds ingestMu, so no record is half-stored.
func (t *Timeline) maybeFreezeLocked(force bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open == nil || t.open.Len() == 0 {
		return false
	}
	last := t.lastRecord.Load()
	if !force && last.Sub(t.open.Start()) < t.cfg.CheckpointDistance && time.Since(t.openSince) < t.cfg.CheckpointTimeout {
		return false
	}
	if err := t.open.Freeze(last + 1); err != nil {
		t.setBroken(err)
		return false
	}
	t.frozen = append(t.frozen, &frozenLayer{mem: t.open, prev: t.prevRecord.Load()})
	t.open = nil
	select {
	case t.flushWake <- struct{}{}:
	default:
	}
	return true
}

// Run flushes frozen layers in the background until ctx is cancelled, and
// freezes quiet open layers after CheckpointTimeout.
func (t *Timeline) Run(ctx context.Context) error {
	tick := time.NewTicker(min(t.cfg.CheckpointTimeout, time.Second))
	defer tick.Stop()
	var wg sync.WaitGroup
	wg.Go(func() { t.compactLoop(ctx, t.compactWake) })
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if t.ingestMu.TryLock() {
				t.maybeFreezeLocked(false)
				t.ingestMu.Unlock()
			}
		case <-t.flushWake:
		}
		if err := t.flushFrozen(ctx); err != nil && ctx.Err() == nil {
			t.setBroken(err)
		}
	}
}

// Checkpoint freezes the open layer and flushes everything frozen, then
// returns disk_consistent_lsn.
func (t *Timeline) Checkpoint(ctx context.Context) (lsn.LSN, error) {
	if err := t.brokenErr(); err != nil {
		return t.DiskConsistentLSN(), err
	}
	t.ingestMu.Lock()
	t.maybeFreezeLocked(true)
	t.ingestMu.Unlock()
	err := t.flushFrozen(ctx)
	if err != nil && ctx.Err() == nil {
		t.setBroken(err)
	}
	return t.DiskConsistentLSN(), err
}

// flushFrozen writes every frozen layer, oldest first, as a delta layer
// file, then advances and persists disk_consistent_lsn after each.
func (t *Timeline) flushFrozen(ctx context.Context) error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	for {
		t.mu.RLock()
		if len(t.frozen) == 0 {
			t.mu.RUnlock()
			return nil
		}
		fl := t.frozen[0]
		t.mu.RUnlock()

		h, err := t.writeDelta(ctx, fl.mem)
		if err != nil {
			return err
		}
		end, _ := fl.mem.End()
		dcl := end - 1
		// The layer file is durable; only now may disk_consistent_lsn move.
		if t.persist != nil {
			if err := t.persist(dcl, fl.prev); err != nil {
				return fmt.Errorf("timeline: persisting disk_consistent_lsn %s: %w", dcl, err)
			}
		}
		t.mu.Lock()
		// Readers iterate snapshots of t.layers without the lock: replace
		// the slice, never modify it in place.
		layers := make([]*historic, 0, len(t.layers)+1)
		t.layers = append(append(layers, t.layers...), h)
		t.sortLayersLocked()
		t.frozen = t.frozen[1:]
		t.mu.Unlock()
		t.diskConsistent.Store(dcl)
		if err := fl.mem.Close(); err != nil {
			t.logger.Warn("closing flushed in-memory layer", "err", err)
		}
		t.logger.Debug("flushed layer", "file", filepath.Base(h.path), "disk_consistent_lsn", dcl)
		select {
		case t.compactWake <- struct{}{}:
		default:
		}
	}
}

func (t *Timeline) writeDelta(ctx context.Context, mem *inmemory.Layer) (*historic, error) {
	keys := mem.Keys()
	end, _ := mem.End()
	kr := keyspace.Range{Start: keys[0], End: keys[len(keys)-1].Next()}
	w, err := layer.NewDeltaWriter(t.dir, t.tenant, t.id, kr, layer.LSNRange{Start: mem.Start(), End: end})
	if err != nil {
		return nil, err
	}
	w.Reserve(mem.Len())
	if err := mem.Iterate(ctx, func(k keyspace.Key, at lsn.LSN, val []byte) error { return w.Put(k, at, val) }); err != nil {
		w.Abort()
		return nil, err
	}
	if _, err := w.Finish(ctx); err != nil {
		w.Abort()
		return nil, err
	}
	return t.openLayer(ctx, w.Path())
}

// Close releases the in-memory layers and layer files. Unflushed data is
// lost (it is re-ingested from disk_consistent_lsn after a restart).
func (t *Timeline) Close() error {
	t.closed.Store(true)
	t.lastRecord.Shutdown(ErrClosed)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open != nil {
		_ = t.open.Close()
		t.open = nil
	}
	for _, f := range t.frozen {
		_ = f.mem.Close()
	}
	t.frozen = nil
	for _, h := range slices.Concat(t.layers, t.retired) {
		_ = h.reader.Close()
		t.cache.InvalidateFile(h.fileID)
	}
	t.layers, t.retired = nil, nil
	t.cache.InvalidateTimeline(t.tenant, t.id)
	return nil
}
