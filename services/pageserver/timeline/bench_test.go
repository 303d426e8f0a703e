package timeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/logging"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/layer"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/value"
)

func benchTimeline(b *testing.B, dir string, cacheBytes int64) *Timeline {
	b.Helper()
	cache, err := pagecache.New(pagecache.Config{SizeBytes: cacheBytes}, nil)
	require.NoError(b, err)
	tl, err := Open(context.Background(), Options{
		Tenant: ids.NewTenantID(), ID: ids.NewTimelineID(), Dir: dir, StartLSN: 1,
		Cache: cache, Redo: &fakeRedo{}, Native: fakeNative{}, Logger: logging.Discard(),
		Config: Config{CheckpointDistance: 1 << 40, CheckpointTimeout: time.Hour, WaitLSNTimeout: time.Second},
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = tl.Close() })
	return tl
}

// BenchmarkGetMaterializedHit: GetPage of a page whose reconstructed
// version is in the page cache (image + 3 records in a layer file below it).
// Baseline: BenchmarkGetBaselineMapCopy.
//
// Two working sets: 256 pages (2 MiB, hot in CPU caches) and 16384 pages
// (128 MiB, memory-bound like a real page cache); the baseline uses the same.
func BenchmarkGetMaterializedHit(b *testing.B) {
	for _, n := range []int{256, 16384} {
		b.Run(fmt.Sprintf("pages=%d", n), func(b *testing.B) { benchMaterialized(b, n) })
	}
}

func benchMaterialized(b *testing.B, nkeys int) {
	tl := benchTimeline(b, b.TempDir(), int64(3*nkeys+256)*pagecache.PageSize)
	ctx := context.Background()
	keys := make([]keyspace.Key, nkeys)
	at := lsn.LSN(100)
	for i := range keys {
		keys[i] = keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}, uint32(i))
		at += 100
		require.NoError(b, tl.IngestRecord(ctx, at-50, at, func(m *Modification) error {
			return m.Put(keys[i], value.AppendImage(nil, make([]byte, pgtypes.BLCKSZ)))
		}))
	}
	rec := make([]byte, 64)
	for r := 0; r < 3; r++ {
		for i := range keys {
			at += 100
			require.NoError(b, tl.IngestRecord(ctx, at-50, at, func(m *Modification) error {
				return m.Put(keys[i], value.AppendRecord(nil, at-50, false, rec))
			}))
		}
	}
	_, err := tl.Checkpoint(ctx)
	require.NoError(b, err)
	perm := rand.New(rand.NewPCG(1, 2)).Perm(nkeys) // random access order
	dst := make([]byte, 0, pgtypes.BLCKSZ)
	for pass := 0; pass < 2; pass++ { // materialize into the cache
		for _, k := range keys {
			_, err := tl.Get(ctx, k, at, dst)
			require.NoError(b, err)
		}
	}
	b.SetBytes(pgtypes.BLCKSZ)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tl.Get(ctx, keys[perm[i%nkeys]], at, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetBaselineMapCopy: copy an 8 KB page out of a Go map, same
// working sets and access order as BenchmarkGetMaterializedHit.
func BenchmarkGetBaselineMapCopy(b *testing.B) {
	for _, n := range []int{256, 16384} {
		b.Run(fmt.Sprintf("pages=%d", n), func(b *testing.B) { benchMapCopy(b, n) })
	}
}

func benchMapCopy(b *testing.B, nkeys int) {
	m := make(map[keyspace.Key][]byte, nkeys)
	keys := make([]keyspace.Key, nkeys)
	for i := range keys {
		keys[i] = keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}, uint32(i))
		p := make([]byte, pgtypes.BLCKSZ)
		p[i%100] = 1
		m[keys[i]] = p
	}
	perm := rand.New(rand.NewPCG(1, 2)).Perm(nkeys)
	dst := make([]byte, pgtypes.BLCKSZ)
	b.SetBytes(pgtypes.BLCKSZ)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(dst, m[keys[perm[i%nkeys]]])
	}
}

// BenchmarkIngestImages: put throughput into the open layer (8 KB page
// images, one per record). Baseline: BenchmarkIngestBaselineAppend.
func BenchmarkIngestImages(b *testing.B) {
	tl := benchTimeline(b, b.TempDir(), 256*pagecache.PageSize)
	ctx := context.Background()
	img := value.AppendImage(nil, make([]byte, pgtypes.BLCKSZ))
	at := lsn.LSN(100)
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at += 8300
		k := keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}, uint32(i%100000))
		if err := tl.IngestRecord(ctx, at-8200, at, func(m *Modification) error { return m.Put(k, img) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestBaselineAppend: sequential append of the same bytes (plus
// the 4-byte length) to a file.
func BenchmarkIngestBaselineAppend(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	require.NoError(b, err)
	defer f.Close()
	img := value.AppendImage(nil, make([]byte, pgtypes.BLCKSZ))
	rec := append(make([]byte, 4), img...)
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBranch: creating a branch of a timeline with 1 and 10,000 layer
// files (O(1): no layer is read or copied).
func BenchmarkBranch(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("layers=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			tl := benchTimeline(b, dir, 64*pagecache.PageSize)
			ctx := context.Background()
			// Install n small layer files directly (writing them through
			// ingest would take minutes): one delta per LSN slice.
			at := lsn.LSN(100)
			k := keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 1}, 0)
			img := value.AppendImage(nil, []byte("x"))
			var hs []*historic
			for i := 0; i < n; i++ {
				w, err := layer.NewDeltaWriter(dir, tl.tenant, tl.id, keyspace.Range{Start: k, End: k.Next()}, layer.LSNRange{Start: at, End: at + 10})
				require.NoError(b, err)
				require.NoError(b, w.Put(k, at, img))
				_, err = w.Finish(ctx)
				require.NoError(b, err)
				h, err := tl.openLayer(ctx, w.Path())
				require.NoError(b, err)
				hs = append(hs, h)
				at += 10
			}
			tl.mu.Lock()
			tl.layers = hs
			tl.sortLayersLocked()
			tl.mu.Unlock()
			_, err := tl.lastRecord.Advance(at)
			require.NoError(b, err)
			base := b.TempDir()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := filepath.Join(base, fmt.Sprint(i))
				if err := os.Mkdir(d, 0o755); err != nil {
					b.Fatal(err)
				}
				br, err := tl.Branch(ctx, ids.NewTimelineID(), d, at-5, nil)
				if err != nil {
					b.Fatal(err)
				}
				_ = br.Close()
			}
		})
	}
}
