package tenantmgr

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/tenant"
	"github.com/stratadb/strata/services/pageserver/timeline"
	"github.com/stratadb/strata/services/pageserver/value"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const importLSN = lsn.LSN(0x1000028)

var testRel = pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}

// openManager opens a manager on dir (no walredo: these tests store only
// images) and runs it until the test ends.
func openManager(t testing.TB, dir string) *Manager {
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 256 * pagecache.PageSize}, nil)
	require.NoError(t, err)
	m, err := Open(context.Background(), Config{WorkDir: dir, Cache: cache, Logger: slog.New(slog.DiscardHandler),
		Timeline: timeline.Config{CheckpointDistance: 1 << 30, CheckpointTimeout: time.Hour, WaitLSNTimeout: time.Second}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, m.Close())
	})
	return m
}

func page(b byte) []byte {
	p := make([]byte, pgtypes.BLCKSZ)
	for i := range p {
		p[i] = b
	}
	return p
}

// importImage is a fill that stores one block at importLSN.
func importImage(ctx context.Context, rt *timeline.Timeline) error {
	return rt.WriteImageLayer(ctx, importLSN, lsn.Invalid, func(put func(keyspace.Key, []byte) error) error {
		return put(keyspace.RelBlock(testRel, 0), value.AppendImage(nil, page(1)))
	})
}

// addLayers ingests n records, each flushed to its own delta layer file.
func addLayers(t testing.TB, rt *timeline.Timeline, n int) {
	ctx := context.Background()
	for i := range n {
		start := rt.LastRecordLSN()
		end := start + 64
		require.NoError(t, rt.IngestRecord(ctx, start, end, func(m *timeline.Modification) error {
			return m.Put(keyspace.RelBlock(testRel, 1), value.AppendImage(nil, page(byte(i))))
		}))
		_, err := rt.Checkpoint(ctx)
		require.NoError(t, err)
	}
}

func TestLifecycleAndRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	tid := ids.NewTenantID()
	root, child := ids.NewTimelineID(), ids.NewTimelineID()
	{
		cache, err := pagecache.New(pagecache.Config{SizeBytes: 256 * pagecache.PageSize}, nil)
		require.NoError(t, err)
		m, err := Open(ctx, Config{WorkDir: dir, Cache: cache, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		_, err = m.CreateTenant(ctx, tid)
		require.NoError(t, err)
		_, err = m.CreateTenant(ctx, tid)
		require.ErrorIs(t, err, tenant.ErrAlreadyExists)
		tl, err := m.CreateRootTimeline(ctx, tid, root, importImage)
		require.NoError(t, err)
		require.Equal(t, importLSN, tl.Info().StartLSN, "the import's image layer sets the start LSN")
		addLayers(t, tl.Runtime(), 3)
		last := tl.Runtime().LastRecordLSN()

		_, err = m.Branch(ctx, tid, child, root, last+1)
		require.ErrorIs(t, err, timeline.ErrLSNOutOfRange)
		_, err = m.Branch(ctx, tid, child, root, importLSN-1)
		require.ErrorIs(t, err, timeline.ErrLSNOutOfRange)
		b, err := m.Branch(ctx, tid, child, root, importLSN+64)
		require.NoError(t, err)
		got, err := b.Runtime().Get(ctx, keyspace.RelBlock(testRel, 1), importLSN+64, nil)
		require.NoError(t, err)
		require.Equal(t, page(0), got)
		require.ErrorIs(t, m.DeleteTimeline(ctx, tid, root), tenant.ErrHasChildren)

		// A failing fill leaves nothing behind.
		_, err = m.CreateRootTimeline(ctx, tid, ids.NewTimelineID(), func(context.Context, *timeline.Timeline) error { return fmt.Errorf("boom") })
		require.ErrorContains(t, err, "boom")
		infos, err := m.ListTimelines(tid)
		require.NoError(t, err)
		require.Len(t, infos, 2)
		require.Equal(t, root, infos[0].TimelineID)
		require.NoError(t, m.Close())
	}
	// After a restart everything is loaded back, ancestors first.
	m := openManager(t, dir)
	infos, err := m.ListTimelines(tid)
	require.NoError(t, err)
	require.Len(t, infos, 2)
	require.Equal(t, StateActive, infos[1].State)
	require.Equal(t, importLSN+64, infos[1].AncestorLSN)
	require.Equal(t, 4, infos[0].LayerFileCount)
	b, err := m.Timeline(tid, child)
	require.NoError(t, err)
	got, err := b.Runtime().Get(ctx, keyspace.RelBlock(testRel, 0), importLSN+64, nil)
	require.NoError(t, err)
	require.Equal(t, page(1), got)

	// Ingest sessions replace each other.
	tl, err := m.Timeline(tid, root)
	require.NoError(t, err)
	c1, rel1, err := tl.AcquireIngest(ctx)
	require.NoError(t, err)
	go func() { <-c1.Done(); rel1() }()
	c2, rel2, err := tl.AcquireIngest(ctx)
	require.NoError(t, err)
	require.ErrorIs(t, context.Cause(c1), ErrIngestReplaced)
	require.NoError(t, c2.Err())
	rel2()

	require.NoError(t, m.DeleteTimeline(ctx, tid, child))
	require.NoError(t, m.DeleteTimeline(ctx, tid, root))
	require.NoError(t, m.DeleteTenant(ctx, tid))
	_, err = m.GetTenant(tid)
	require.ErrorIs(t, err, ErrNotFound)
}

// BenchmarkBranch measures branch creation against an ancestor with 1 and
// 10,000 layer files: it must be flat (design §4: metadata only). The work
// dir is on /dev/shm when available, so fsync costs do not hide the shape.
func BenchmarkBranch(b *testing.B) {
	for _, layers := range []int{1, 10000} {
		b.Run(fmt.Sprintf("layers=%d", layers), func(b *testing.B) {
			base := ""
			if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
				base = "/dev/shm"
			}
			dir, err := os.MkdirTemp(base, "strata-branch-bench-")
			require.NoError(b, err)
			b.Cleanup(func() { _ = os.RemoveAll(dir) })
			m := openManager(b, dir)
			ctx := context.Background()
			tid := ids.NewTenantID()
			_, err = m.CreateTenant(ctx, tid)
			require.NoError(b, err)
			root := ids.NewTimelineID()
			tl, err := m.CreateRootTimeline(ctx, tid, root, importImage)
			require.NoError(b, err)
			addLayers(b, tl.Runtime(), layers-1)
			n, _ := tl.Runtime().LayerStats()
			require.Equal(b, layers, n)
			at := tl.Runtime().LastRecordLSN()
			b.ResetTimer()
			for b.Loop() {
				_, err := m.Branch(ctx, tid, ids.NewTimelineID(), root, at)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestCollectorExportsTimelines(t *testing.T) {
	ctx := context.Background()
	m := openManager(t, t.TempDir())
	tid := ids.NewTenantID()
	_, err := m.CreateTenant(ctx, tid)
	require.NoError(t, err)
	tl, err := m.CreateRootTimeline(ctx, tid, ids.NewTimelineID(), importImage)
	require.NoError(t, err)
	addLayers(t, tl.Runtime(), 2)

	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(NewCollector(m)))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			got[mf.GetName()] = mm.GetGauge().GetValue()
		}
	}
	require.Equal(t, float64(tl.Runtime().LastRecordLSN()), got["strata_pageserver_last_record_lsn"])
	require.Equal(t, float64(tl.Runtime().DiskConsistentLSN()), got["strata_pageserver_disk_consistent_lsn"])
	n, _ := tl.Runtime().LayerStats()
	require.Equal(t, float64(n), got["strata_pageserver_layer_files"])
	require.Greater(t, got["strata_pageserver_layer_bytes"], float64(0))
	require.Contains(t, got, "strata_pageserver_timelines")
}
