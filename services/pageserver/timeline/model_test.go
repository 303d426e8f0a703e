package timeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/logging"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/value"
	"github.com/stratadb/strata/services/walredo/redo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRedo is a deterministic stand-in for walredo: each record XORs its
// raw bytes over the page and stamps the end LSN in the first 8 bytes.
type fakeRedo struct{ calls atomic.Int64 }

func (f *fakeRedo) Apply(_ context.Context, req *redo.Request, page []byte) error {
	f.calls.Add(1)
	if err := req.Validate(page); err != nil {
		return err
	}
	if req.Base == nil {
		clear(page)
	} else if &req.Base[0] != &page[0] {
		copy(page, req.Base)
	}
	for _, r := range req.Records {
		fakeRecord(page, r.Raw, r.End)
	}
	return nil
}

func fakeRecord(page, raw []byte, end lsn.LSN) {
	for i := range page {
		page[i] ^= raw[i%len(raw)]
	}
	binary.LittleEndian.PutUint64(page, uint64(end))
}

// fakeNative adds the payload bytes to the page.
type fakeNative struct{}

func (fakeNative) Apply(_ keyspace.Key, at lsn.LSN, subtype uint8, payload, page []byte) ([]byte, error) {
	fakeNativeApply(page, subtype, payload)
	return page, nil
}

func fakeNativeApply(page []byte, subtype uint8, payload []byte) {
	for i := range page {
		page[i] += payload[i%len(payload)] + subtype
	}
}

// modelPut is one stored version.
type modelPut struct {
	at  lsn.LSN
	val []byte
}

type modelTimeline struct {
	id          ids.TimelineID
	dir         string
	ancestor    *modelTimeline
	ancestorLSN lsn.LSN
	puts        map[keyspace.Key][]modelPut // ascending LSN
	last        lsn.LSN
	persisted   lsn.LSN // disk_consistent_lsn as persisted
	persistPrev lsn.LSN
	startLSN    lsn.LSN // as the metadata file would record it
	cutoff      lsn.LSN // GC cutoff as the metadata file would record it
	tl          *Timeline
	// log is every record ingested, so that a restart can re-send the WAL
	// after disk_consistent_lsn, as the safekeeper-bridge does.
	log []loggedRecord
}

type loggedPut struct {
	k keyspace.Key
	v []byte
}

type loggedRecord struct {
	start, end lsn.LSN
	puts       []loggedPut
}

func ingest(ctx context.Context, tl *Timeline, rec loggedRecord) error {
	return tl.IngestRecord(ctx, rec.start, rec.end, func(mod *Modification) error {
		for _, p := range rec.puts {
			if err := mod.Put(p.k, p.v); err != nil {
				return err
			}
		}
		return nil
	})
}

// belowCutoff reports whether a read at at must be refused: below the
// timeline's GC cutoff, or below a branch point and the ancestor's cutoff.
func (m *modelTimeline) belowCutoff(at lsn.LSN) bool {
	if at < m.cutoff {
		return true
	}
	for x := m; x.ancestor != nil && at < x.ancestorLSN; x = x.ancestor {
		if at < x.ancestor.cutoff {
			return true
		}
	}
	return false
}

// versions returns the versions visible at at, oldest first.
func (m *modelTimeline) versions(k keyspace.Key, at lsn.LSN) []modelPut {
	var out []modelPut
	if m.ancestor != nil {
		out = m.ancestor.versions(k, min(at, m.ancestorLSN))
	}
	for _, p := range m.puts[k] {
		if p.at <= at {
			out = append(out, p)
		}
	}
	return out
}

// value computes the model's answer, or nil when the key does not exist.
func (m *modelTimeline) value(k keyspace.Key, at lsn.LSN) []byte {
	vs := m.versions(k, at)
	start := -1
	for i := len(vs) - 1; i >= 0; i-- {
		if value.WillInit(vs[i].val) {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	var page []byte
	for _, p := range vs[start:] {
		v, _ := value.Decode(p.val)
		switch v.Kind {
		case value.KindImage:
			page = append([]byte(nil), v.Image...)
		case value.KindRecord:
			if v.WillInit {
				page = make([]byte, pgtypes.BLCKSZ)
			}
			fakeRecord(page, v.Record, p.at)
		case value.KindNative:
			fakeNativeApply(page, v.NativeType, v.NativePayload)
		}
	}
	return page
}

// replay re-ingests the records after disk_consistent_lsn, as WAL re-sent
// after a restart; the model's state does not change.
func (m *modelTimeline) replay(t *testing.T) {
	from := m.tl.LastRecordLSN()
	n := 0
	for _, rec := range m.log {
		if rec.end > from {
			require.NoError(t, ingest(context.Background(), m.tl, rec))
			n++
		}
	}
	require.Equal(t, m.last, m.tl.LastRecordLSN())
}

type env struct {
	t      *testing.T
	cache  *pagecache.Cache
	redo   *fakeRedo
	tenant ids.TenantID
	cfg    Config
	keys   []keyspace.Key // the keyspace compaction images
}

func (e *env) open(m *modelTimeline) {
	var anc *Timeline
	if m.ancestor != nil {
		anc = m.ancestor.tl
	}
	tl, err := Open(context.Background(), Options{
		Tenant: e.tenant, ID: m.id, Dir: m.dir, Ancestor: anc, AncestorLSN: m.ancestorLSN,
		StartLSN: m.startLSN, DiskConsistentLSN: max(m.persisted, m.ancestorLSN), PrevRecordLSN: m.persistPrev, GCCutoffLSN: m.cutoff,
		Cache: e.cache, Redo: e.redo, Native: fakeNative{}, Config: e.cfg, Logger: logging.Discard(),
		Keyspace: func(context.Context, *Timeline, lsn.LSN) ([]keyspace.Key, error) { return e.keys, nil },
		PersistMetadata: func(dcl, prev lsn.LSN) error {
			m.persisted, m.persistPrev = dcl, prev
			return nil
		},
	})
	require.NoError(e.t, err)
	m.tl = tl
}

func randomValue(r *rand.Rand, at lsn.LSN, first bool) []byte {
	switch n := r.IntN(10); {
	case first || n < 2:
		page := make([]byte, pgtypes.BLCKSZ)
		for i := 0; i < 64; i++ {
			page[r.IntN(len(page))] = byte(r.Uint32())
		}
		return value.AppendImage(nil, page)
	case n < 8:
		raw := make([]byte, 24+r.IntN(200))
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		return value.AppendRecord(nil, at-lsn.LSN(len(raw)), n == 7, raw)
	default:
		return value.AppendNative(nil, uint8(r.IntN(3)), []byte{byte(r.Uint32()), byte(r.Uint32()), 7})
	}
}

// TestModel drives random puts, freezes, flushes, branches, restarts and
// reads on two tenants' timelines and compares every read with the model.
func TestModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, 2500) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 99))
	reg := prometheus.NewRegistry()
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 256 * pagecache.PageSize}, reg)
	require.NoError(t, err)
	var envs []*env
	var all [][]*modelTimeline
	for i := 0; i < 2; i++ {
		e := &env{t: t, cache: cache, redo: &fakeRedo{}, tenant: ids.NewTenantID(),
			cfg: Config{CheckpointDistance: 4096 + uint64(r.IntN(8192)), CheckpointTimeout: time.Hour, WaitLSNTimeout: 50 * time.Millisecond,
				ImageLayerTargetSize: uint64(1+r.IntN(10)) * pgtypes.BLCKSZ, ImageWorkers: 1 + r.IntN(3)}}
		root := &modelTimeline{id: ids.NewTimelineID(), dir: t.TempDir(), puts: map[keyspace.Key][]modelPut{}}
		e.open(root)
		envs = append(envs, e)
		all = append(all, []*modelTimeline{root})
	}
	keys := make([]keyspace.Key, 24)
	for i := range keys {
		keys[i] = keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: pgtypes.Oid(16384 + i%3)}, uint32(i))
	}
	for _, e := range envs {
		e.keys = keys
	}
	ctx := context.Background()
	reads, restarts, branches, checkpoints, compactions, images := 0, 0, 0, 0, 0, 0
	gcs, gcRemoved, refused := 0, 0, 0

	for step := 0; step < steps; step++ {
		ti := r.IntN(len(envs))
		e, tls := envs[ti], all[ti]
		m := tls[r.IntN(len(tls))]
		switch op := r.IntN(100); {
		case op < 60: // ingest one record with 1..3 puts
			start := m.last + 1 + lsn.LSN(r.IntN(50))
			end := start + 24 + lsn.LSN(r.IntN(400))
			n := 1 + r.IntN(3)
			rec := loggedRecord{start: start, end: end}
			for j := 0; j < n; j++ {
				k := keys[r.IntN(len(keys))]
				first := m.value(k, m.last) == nil
				rec.puts = append(rec.puts, loggedPut{k, randomValue(r, end, first)})
			}
			require.NoError(t, ingest(ctx, m.tl, rec))
			m.log = append(m.log, rec)
			for _, p := range rec.puts {
				ps := m.puts[p.k]
				if len(ps) > 0 && ps[len(ps)-1].at == end {
					ps[len(ps)-1].val = p.v
				} else {
					m.puts[p.k] = append(ps, modelPut{end, p.v})
				}
			}
			m.last = end
		case op < 86: // read a random key at a random LSN
			lo := lsn.LSN(1)
			if r.IntN(5) != 0 {
				lo = max(lo, m.cutoff) // mostly reads GC must keep answering
			}
			if m.last < lo {
				continue
			}
			at := lo + lsn.LSN(r.Uint64N(uint64(m.last-lo+1)))
			if r.IntN(4) == 0 {
				at = m.last
			}
			k := keys[r.IntN(len(keys))]
			if m.belowCutoff(at) {
				_, err := m.tl.Get(ctx, k, at, nil)
				require.ErrorIs(t, err, ErrLSNOutOfRange, "step %d: %s at %s below a GC cutoff", step, k.Describe(), at)
				refused++
				continue
			}
			want := m.value(k, at)
			got, err := m.tl.Get(ctx, k, at, nil)
			if (want == nil) != errors.Is(err, ErrNotFound) {
				for _, v := range m.versions(k, at) {
					dv, _ := value.Decode(v.val)
					t.Logf("model version at %s: %s willinit=%v", v.at, dv.Kind, value.WillInit(v.val))
				}
				t.Logf("timeline %s ancestor LSN %s last %s persisted %s", m.id, m.ancestorLSN, m.last, m.persisted)
			}
			if want == nil {
				require.ErrorIs(t, err, ErrNotFound, "step %d: %s at %s", step, k.Describe(), at)
			} else {
				require.NoError(t, err, "step %d: %s at %s", step, k.Describe(), at)
				require.True(t, slices.Equal(want, got), "step %d: %s at %s differs from the model", step, k.Describe(), at)
			}
			reads++
		case op < 91: // checkpoint (freeze + flush)
			_, err := m.tl.Checkpoint(ctx)
			require.NoError(t, err)
			require.Equal(t, m.last, m.tl.DiskConsistentLSN())
			checkpoints++
		case op < 93: // compaction: image layers at disk_consistent_lsn
			res, err := m.tl.Compact(ctx)
			require.NoError(t, err)
			require.Equal(t, m.last, m.tl.DiskConsistentLSN())
			if res.LayersCreated > 0 {
				require.Equal(t, m.last, res.ImageLSN)
				require.Zero(t, m.tl.DeltasSinceImage())
				images += res.LayersCreated
			} else {
				require.NotEmpty(t, res.Skipped)
			}
			compactions++
		case op < 96: // GC: raise the cutoff up to disk_consistent_lsn, keep the branch points
			dcl := m.tl.DiskConsistentLSN()
			if dcl <= m.cutoff {
				continue
			}
			m.cutoff += lsn.LSN(r.Uint64N(uint64(dcl-m.cutoff)/2 + 1))
			m.tl.SetGCCutoff(m.cutoff)
			// Every descendant reads m at the lowest branch point on its
			// way up (a branch of a branch may lie below its parent's).
			var retain []lsn.LSN
			for _, x := range tls {
				at := lsn.LSN(math.MaxUint64)
				for y := x; y.ancestor != nil; y = y.ancestor {
					at = min(at, y.ancestorLSN)
					if y.ancestor == m {
						retain = append(retain, at)
						break
					}
				}
			}
			res, err := m.tl.GC(ctx, retain)
			require.NoError(t, err)
			require.Equal(t, m.cutoff, res.Cutoff)
			gcRemoved += res.LayersRemoved
			gcs++
		case op < 97: // branch at a random readable LSN (sometimes below m's own branch point)
			lo := m.ancestorLSN
			if r.IntN(3) == 0 {
				lo = 1
			}
			if lo > m.last {
				continue
			}
			at := lo + lsn.LSN(r.Uint64N(uint64(m.last-lo+1)))
			if m.belowCutoff(at) {
				_, err := m.tl.Branch(ctx, ids.NewTimelineID(), t.TempDir(), at, nil)
				require.ErrorIs(t, err, ErrLSNOutOfRange, "step %d: branch at %s below a GC cutoff", step, at)
				continue
			}
			b := &modelTimeline{id: ids.NewTimelineID(), dir: t.TempDir(), puts: map[keyspace.Key][]modelPut{}, ancestor: m, ancestorLSN: at, last: at}
			tl, err := m.tl.Branch(ctx, b.id, b.dir, at, func(dcl, prev lsn.LSN) error { b.persisted, b.persistPrev = dcl, prev; return nil })
			require.NoError(t, err)
			b.tl = tl
			all[ti] = append(all[ti], b)
			branches++
		default: // restart the tenant: close everything, reopen from disk
			for _, x := range tls {
				require.NoError(t, x.tl.Close())
			}
			for _, x := range tls { // ancestors come first in the slice
				e.open(x)
				require.Equal(t, max(x.persisted, x.ancestorLSN), x.tl.LastRecordLSN())
				x.replay(t)
			}
			restarts++
		}
	}
	// A read beyond last_record_lsn waits, then fails with the LSNs named.
	m := all[0][0]
	_, err = m.tl.Get(ctx, keys[0], m.last+1000, nil)
	require.ErrorIs(t, err, ErrWaitLSNTimeout)
	require.ErrorContains(t, err, "last_record_lsn "+m.last.String())
	_, err = m.tl.Get(ctx, keys[0], 0, nil)
	require.ErrorIs(t, err, ErrLSNOutOfRange)

	t.Logf("reads %d (%d refused below a GC cutoff), restarts %d, branches %d, checkpoints %d, compactions %d (%d image layers), GC passes %d (%d layers removed), redo calls %d",
		reads, refused, restarts, branches, checkpoints, compactions, images, gcs, gcRemoved, envs[0].redo.calls.Load()+envs[1].redo.calls.Load())
	require.NotZero(t, gcRemoved, "GC never removed a layer: the test does not exercise it")
	for _, tls := range all {
		for _, x := range tls {
			require.NoError(t, x.tl.Close())
		}
	}
}

// TestCrashRecoveryQuarantinesNewerLayers: a layer file written after the
// last persisted disk_consistent_lsn (a crash between the two) is moved
// aside at Open, and a corrupted one too.
func TestCrashRecoveryQuarantinesNewerLayers(t *testing.T) {
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 64 * pagecache.PageSize}, nil)
	require.NoError(t, err)
	e := &env{t: t, cache: cache, redo: &fakeRedo{}, tenant: ids.NewTenantID(), cfg: Config{CheckpointDistance: 1 << 30, CheckpointTimeout: time.Hour, WaitLSNTimeout: time.Second}}
	m := &modelTimeline{id: ids.NewTimelineID(), dir: t.TempDir(), puts: map[keyspace.Key][]modelPut{}}
	e.open(m)
	ctx := context.Background()
	k := keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 1}, 0)
	put := func(end lsn.LSN, v []byte) {
		require.NoError(t, m.tl.IngestRecord(ctx, end-10, end, func(mod *Modification) error { return mod.Put(k, v) }))
	}
	img := value.AppendImage(nil, make([]byte, pgtypes.BLCKSZ))
	put(100, img)
	_, err = m.tl.Checkpoint(ctx)
	require.NoError(t, err)
	firstDCL := m.persisted
	put(200, value.AppendRecord(nil, 190, false, []byte("abc")))
	_, err = m.tl.Checkpoint(ctx)
	require.NoError(t, err)
	require.NoError(t, m.tl.Close())

	// Simulate the crash: the second layer is durable, its metadata update is not.
	m.persisted = firstDCL
	entries, _ := os.ReadDir(m.dir)
	var layerFiles []string
	for _, en := range entries {
		layerFiles = append(layerFiles, en.Name())
	}
	require.Len(t, layerFiles, 2)
	e.open(m)
	require.Equal(t, firstDCL, m.tl.LastRecordLSN())
	n, _ := m.tl.LayerStats()
	require.Equal(t, 1, n)
	quarantined, _ := filepath.Glob(filepath.Join(m.dir, "*.quarantine-*"))
	require.Len(t, quarantined, 1)
	got, err := m.tl.Get(ctx, k, firstDCL, nil)
	require.NoError(t, err)
	require.Equal(t, make([]byte, pgtypes.BLCKSZ), got)
	require.NoError(t, m.tl.Close())

	// Corrupt the remaining layer: it is quarantined, reads find nothing.
	entries, _ = os.ReadDir(m.dir)
	for _, en := range entries {
		if !strings.Contains(en.Name(), ".quarantine-") {
			p := filepath.Join(m.dir, en.Name())
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			b[10] ^= 0xFF
			require.NoError(t, os.WriteFile(p, b, 0o600))
		}
	}
	e.open(m)
	n, _ = m.tl.LayerStats()
	require.Equal(t, 0, n)
	_, err = m.tl.Get(ctx, k, firstDCL, nil)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, m.tl.Close())
}

// TestConcurrentIngestFlushAndReads runs the background flusher while one
// goroutine ingests (with a small checkpoint distance, so layers freeze and
// flush all the time) and readers read; every read is checked against the
// model afterwards.
func TestConcurrentIngestFlushAndReads(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 128 * pagecache.PageSize}, nil)
	require.NoError(t, err)
	e := &env{t: t, cache: cache, redo: &fakeRedo{}, tenant: ids.NewTenantID(),
		cfg: Config{CheckpointDistance: 2048, CheckpointTimeout: 50 * time.Millisecond, WaitLSNTimeout: 5 * time.Second,
			ImageCreationThreshold: 2, ImageLayerTargetSize: 3 * pgtypes.BLCKSZ, ImageWorkers: 2}}
	keys := make([]keyspace.Key, 8)
	for i := range keys {
		keys[i] = keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 20000}, uint32(i))
	}
	e.keys = keys // background image creation, and GC below, run during the reads
	m := &modelTimeline{id: ids.NewTimelineID(), dir: t.TempDir(), puts: map[keyspace.Key][]modelPut{}}
	e.open(m)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- m.tl.Run(ctx) }()
	// Pre-generate the records so the model can be built without racing.
	var recs []loggedRecord
	at := lsn.LSN(1000)
	seen := map[keyspace.Key]bool{}
	for i := 0; i < 3000; i++ {
		start := at + 1
		at = start + 100
		k := keys[r.IntN(len(keys))]
		recs = append(recs, loggedRecord{start: start, end: at, puts: []loggedPut{{k, randomValue(r, at, !seen[k])}}})
		seen[k] = true
	}
	type readResult struct {
		k      keyspace.Key
		at     lsn.LSN
		val    []byte
		err    error
		cutoff lsn.LSN // the GC cutoff right after the read
	}
	results := make(chan readResult, 100000)
	readersDone := make(chan struct{})
	stop := make(chan struct{})
	gcDone := make(chan struct{})
	gcPasses, gcRemoved := 0, 0
	go func() { // GC keeping 10000 bytes of history, as often as it can
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			if dcl := m.tl.DiskConsistentLSN(); dcl > 11000 {
				m.tl.SetGCCutoff(dcl - 10000)
			}
			res, err := m.tl.GC(context.Background(), nil)
			if err != nil {
				t.Errorf("GC: %v", err)
				return
			}
			gcPasses++
			gcRemoved += res.LayersRemoved
		}
	}()
	for w := 0; w < 3; w++ {
		go func() {
			defer func() { readersDone <- struct{}{} }()
			rr := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				last := m.tl.LastRecordLSN()
				if last < 1001 {
					continue
				}
				lo := max(1001, m.tl.GCCutoffLSN())
				if last < lo {
					continue
				}
				at := lo + lsn.LSN(rr.Uint64N(uint64(last-lo+1)))
				k := keys[rr.IntN(len(keys))]
				v, err := m.tl.Get(context.Background(), k, at, nil)
				select {
				case results <- readResult{k, at, v, err, m.tl.GCCutoffLSN()}:
				default:
					return // enough results collected: do not block the test
				}
			}
		}()
	}
	for _, rec := range recs {
		require.NoError(t, ingest(context.Background(), m.tl, rec))
		for _, p := range rec.puts {
			m.puts[p.k] = append(m.puts[p.k], modelPut{rec.end, p.v})
		}
	}
	close(stop)
	for w := 0; w < 3; w++ {
		<-readersDone
	}
	<-gcDone
	close(results)
	_, err = m.tl.Checkpoint(context.Background())
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-runDone)
	n, _ := m.tl.LayerStats()
	require.Greater(t, n, 5, "the flusher wrote layers while reads ran")

	checked, refused := 0, 0
	for res := range results {
		if res.at < res.cutoff && errors.Is(res.err, ErrLSNOutOfRange) {
			refused++ // GC raised the cutoff above the LSN while the read ran
			continue
		}
		want := m.value(res.k, res.at)
		if want == nil {
			require.ErrorIs(t, res.err, ErrNotFound)
		} else {
			require.NoError(t, res.err)
			require.True(t, slices.Equal(want, res.val), "%s at %s", res.k.Describe(), res.at)
		}
		checked++
	}
	require.Greater(t, checked, 100)
	img, _ := m.tl.ImageStats()
	require.NotZero(t, img, "background image creation ran")
	require.NotZero(t, gcRemoved, "GC removed layers while reads ran")
	t.Logf("checked %d concurrent reads (%d refused: the cutoff rose during the read); %d layer files; newest image %s; %d GC passes removed %d layers",
		checked, refused, n, img, gcPasses, gcRemoved)
	require.NoError(t, m.tl.Close())
}

func TestWriteImageLayerThenIngest(t *testing.T) {
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 64 * pagecache.PageSize}, nil)
	require.NoError(t, err)
	e := &env{t: t, cache: cache, redo: &fakeRedo{}, tenant: ids.NewTenantID(), cfg: Config{CheckpointDistance: 1 << 20, CheckpointTimeout: time.Hour, WaitLSNTimeout: 50 * time.Millisecond}}
	m := &modelTimeline{id: ids.NewTimelineID(), dir: t.TempDir(), puts: map[keyspace.Key][]modelPut{}}
	e.open(m)
	ctx := context.Background()
	keys := make([]keyspace.Key, 50)
	for i := range keys {
		keys[i] = keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 40000}, uint32(49-i)) // unsorted
	}
	at := lsn.LSN(5000)
	err = m.tl.WriteImageLayer(ctx, at, 4900, func(put func(keyspace.Key, []byte) error) error {
		for i, k := range keys {
			page := make([]byte, pgtypes.BLCKSZ)
			page[100] = byte(i)
			if err := put(k, value.AppendImage(nil, page)); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, at, m.tl.LastRecordLSN())
	require.Equal(t, at, m.tl.DiskConsistentLSN())
	require.Equal(t, at, m.persisted)
	m.startLSN = at
	got, err := m.tl.Get(ctx, keys[7], at, nil)
	require.NoError(t, err)
	require.Equal(t, byte(7), got[100])
	_, err = m.tl.Get(ctx, keys[7], at-1, nil)
	require.ErrorIs(t, err, ErrLSNOutOfRange, "before the import LSN")

	// WAL after the import applies on top of the images.
	xyz := []byte("a record of at least twenty-four bytes")
	rec := loggedRecord{start: at + 10, end: at + 100, puts: []loggedPut{{keys[7], value.AppendRecord(nil, at+10, false, xyz)}}}
	require.NoError(t, ingest(ctx, m.tl, rec))
	got2, err := m.tl.Get(ctx, keys[7], at+100, nil)
	require.NoError(t, err)
	want := append([]byte(nil), got...)
	fakeRecord(want, xyz, at+100)
	require.Equal(t, want, got2)

	// A second import into a timeline with data is refused.
	err = m.tl.WriteImageLayer(ctx, at+200, at+100, func(put func(keyspace.Key, []byte) error) error { return nil })
	require.ErrorContains(t, err, "already has data")

	// Reopen: the image layer is loaded.
	require.NoError(t, m.tl.Close())
	e.open(m)
	got3, err := m.tl.Get(ctx, keys[7], at, nil)
	require.NoError(t, err)
	require.Equal(t, got, got3)
	require.NoError(t, m.tl.Close())
}
