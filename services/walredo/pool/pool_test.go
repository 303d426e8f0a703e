package pool_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo/internal/walredotest"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/redo"
)

var tmpl *process.Template

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, cleanup, err := walredotest.Setup(ctx, log)
	if err == nil {
		cfg.RequestTimeout = 20 * time.Second
		tmpl, err = process.PrepareTemplate(ctx, cfg)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "walredo test setup:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func newPool(t testing.TB, cfg pool.Config) *pool.Pool {
	t.Helper()
	p, err := pool.New(tmpl, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

var heapTag = pgtypes.BufferTag{
	Rel:      pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: 5, RelNode: 16384, ForkNum: pgtypes.MainForkNum},
	BlockNum: 0,
}

// heapChain returns n Heap/INSERTs filling tag's page from an init record.
func heapChain(start lsn.LSN, n int) []redo.Record {
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = walredotest.HeapInsert(heapTag, uint16(i+1), int32(i), i == 0, 1000)
	}
	return walredotest.Chain(start, raws...)
}

func tenant(i byte) ids.TenantID { return ids.TenantID{15: i} }

func TestApplyAndTenantsNeverShare(t *testing.T) {
	p := newPool(t, pool.Config{MaxChildren: 3, MaxChildrenPerTenant: 1})
	ctx := context.Background()
	recs := heapChain(lsn.MustParse("0/1000000"), 5)
	page := make([]byte, pgtypes.BLCKSZ)
	for _, tn := range []ids.TenantID{tenant(1), tenant(2), tenant(1), tenant(2)} {
		require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: heapTag, Records: recs}, page))
		require.Equal(t, recs[4].End, pgtypes.PageGetLSN(page))
	}
	a, b := p.ChildPIDs(tenant(1)), p.ChildPIDs(tenant(2))
	require.Len(t, a, 1)
	require.Len(t, b, 1)
	require.NotEqual(t, a[0], b[0], "tenants must not share a child")
	require.Equal(t, 2, p.Live())
}

func TestInvalidRequestNotSent(t *testing.T) {
	p := newPool(t, pool.Config{})
	err := p.Apply(context.Background(), &redo.Request{Tenant: tenant(1), Tag: heapTag, Base: make([]byte, 100)}, make([]byte, pgtypes.BLCKSZ))
	require.ErrorIs(t, err, redo.ErrInvalidRequest)
	require.Zero(t, p.Live())
}

func TestPanicRetriedOnceThenRespawned(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newPool(t, pool.Config{RespawnBackoffMin: 50 * time.Millisecond, Registerer: reg})
	ctx := context.Background()
	tn := tenant(3)
	recs := walredotest.Chain(lsn.MustParse("0/2000000"),
		walredotest.HeapInsert(heapTag, 1, 1, true, 1000),
		walredotest.HeapInsert(heapTag, 9, 2, false, 1000), // PANIC: invalid max offset number
	)
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: heapTag, Records: recs[:1]}, page))
	before := p.ChildPIDs(tn)

	err := p.Apply(ctx, &redo.Request{Tenant: tn, Tag: heapTag, Records: recs}, page)
	require.ErrorIs(t, err, redo.ErrChildCrashed)
	var re *redo.RecordError
	require.ErrorAs(t, err, &re)
	require.Equal(t, recs[1].Start, re.LSN, "the error names the record: %v", err)
	require.Contains(t, err.Error(), recs[1].Start.String())
	require.Zero(t, p.Live(), "both crashed children are gone")

	// The next request gets a fresh child (after the backoff) and succeeds.
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: heapTag, Records: recs[:1]}, page))
	after := p.ChildPIDs(tn)
	require.Len(t, after, 1)
	require.NotEqual(t, before, after)

	require.Equal(t, 3.0, metricValue(t, reg, "strata_walredo_child_spawns_total", nil))
	require.Equal(t, 2.0, metricValue(t, reg, "strata_walredo_child_crashes_total", nil))
	require.Equal(t, 1.0, metricValue(t, reg, "strata_walredo_requests_total", map[string]string{"result": "crash"}))
	require.Equal(t, 2.0, metricValue(t, reg, "strata_walredo_requests_total", map[string]string{"result": "ok"}))
	require.Equal(t, 2.0, metricValue(t, reg, "strata_walredo_records_applied_total", nil))
	require.Equal(t, 1.0, metricValue(t, reg, "strata_walredo_live_children", map[string]string{"tenant": tn.String()}))
}

// metricValue returns the value of the counter or gauge name whose labels
// include want; it fails the test if there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, want)
	return 0
}

func TestCrashOfIdleChildIsRetried(t *testing.T) {
	p := newPool(t, pool.Config{})
	ctx := context.Background()
	tn := tenant(4)
	recs := heapChain(lsn.MustParse("0/3000000"), 3)
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: heapTag, Records: recs}, page))
	pids := p.ChildPIDs(tn)
	require.Len(t, pids, 1)
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	// Whether the pool notices before or during the request, it succeeds.
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: heapTag, Records: recs}, page))
	require.Equal(t, recs[2].End, pgtypes.PageGetLSN(page))
	require.NotEqual(t, pids, p.ChildPIDs(tn))
}

func TestRecordErrorNotRetried(t *testing.T) {
	p := newPool(t, pool.Config{})
	ctx := context.Background()
	tn := tenant(5)
	bad := walredotest.HeapInsert(heapTag, 1, 1, true, 1000)
	bad[30] ^= 1 // CRC mismatch
	recs := walredotest.Chain(lsn.MustParse("0/4000000"), bad)
	page := make([]byte, pgtypes.BLCKSZ)
	err := p.Apply(ctx, &redo.Request{Tenant: tn, Tag: heapTag, Records: recs}, page)
	require.ErrorIs(t, err, redo.ErrRecordFailed)
	pids := p.ChildPIDs(tn)
	require.Len(t, pids, 1, "the child survives an error reply")
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: heapTag, Records: heapChain(recs[0].Start, 1)}, page))
	require.Equal(t, pids, p.ChildPIDs(tn))
}

func TestGlobalCapEvictsIdleChildOfOtherTenant(t *testing.T) {
	p := newPool(t, pool.Config{MaxChildren: 1, MaxChildrenPerTenant: 1})
	ctx := context.Background()
	recs := heapChain(lsn.MustParse("0/5000000"), 2)
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tenant(6), Tag: heapTag, Records: recs}, page))
	a := p.ChildPIDs(tenant(6))
	require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tenant(7), Tag: heapTag, Records: recs}, page))
	require.Empty(t, p.ChildPIDs(tenant(6)))
	b := p.ChildPIDs(tenant(7))
	require.Len(t, b, 1)
	require.NotEqual(t, a, b)
	require.Equal(t, 1, p.Live())
}

func TestIdleChildrenStopped(t *testing.T) {
	p := newPool(t, pool.Config{IdleTimeout: 200 * time.Millisecond})
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, p.Apply(context.Background(), &redo.Request{Tenant: tenant(10), Tag: heapTag, Records: heapChain(lsn.MustParse("0/7000000"), 1)}, page))
	require.Equal(t, 1, p.Live())
	require.Eventually(t, func() bool { return p.Live() == 0 }, 10*time.Second, 20*time.Millisecond)
}

func TestClosedPool(t *testing.T) {
	p, err := pool.New(tmpl, pool.Config{})
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	err = p.Apply(context.Background(), &redo.Request{Tenant: tenant(11), Tag: heapTag}, make([]byte, pgtypes.BLCKSZ))
	require.ErrorIs(t, err, redo.ErrClosed)
}

func TestConfigValidate(t *testing.T) {
	_, err := pool.New(tmpl, pool.Config{MaxChildren: 1, MaxChildrenPerTenant: 2})
	require.ErrorIs(t, err, pool.ErrConfig)
	_, err = pool.New(tmpl, pool.Config{RespawnBackoffMin: time.Second, RespawnBackoffMax: time.Millisecond})
	require.ErrorIs(t, err, pool.ErrConfig)
}

// childMemoryKB reads Rss and private (clean + dirty) memory of pid from /proc (kB).
func childMemoryKB(t testing.TB, pid int) (rss, private int) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Rss:":
			rss = v
		case "Private_Clean:", "Private_Dirty:":
			private += v
		}
	}
	return rss, private
}

func TestChildMemoryFlat(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	p := newPool(t, pool.Config{})
	ctx := context.Background()
	tn := tenant(12)
	recs := heapChain(lsn.MustParse("0/8000000"), 10)
	bad := walredotest.HeapInsert(heapTag, 1, 1, true, 1000)
	bad[30] ^= 1
	badRecs := walredotest.Chain(lsn.MustParse("0/8000000"), bad)
	page := make([]byte, pgtypes.BLCKSZ)
	run := func(k int) {
		for i := 0; i < k; i++ {
			req := &redo.Request{Tenant: tn, Tag: heapTag, Records: recs}
			if i%100 == 99 { // error replies must not leak either
				req.Records = badRecs
				require.ErrorIs(t, p.Apply(ctx, req, page), redo.ErrRecordFailed)
				continue
			}
			require.NoError(t, p.Apply(ctx, req, page))
		}
	}
	run(2000) // warm caches and the allocator
	pids := p.ChildPIDs(tn)
	require.Len(t, pids, 1)
	// Private memory (not PSS): PSS moves when other processes sharing the
	// child's pages (the postmaster-less siblings, other tests' children)
	// start or exit, which says nothing about a leak in this child.
	rss0, priv0 := childMemoryKB(t, pids[0])
	start := time.Now()
	run(n)
	took := time.Since(start)
	require.Equal(t, pids, p.ChildPIDs(tn), "no respawn during the run")
	rss1, priv1 := childMemoryKB(t, pids[0])
	t.Logf("%d requests × 10 records in %v (%v/request): RSS %d → %d kB, private %d → %d kB",
		n, took, took/time.Duration(n), rss0, rss1, priv0, priv1)
	require.Less(t, rss1-rss0, 1024, "child RSS grew by more than 1 MB")
	require.Less(t, priv1-priv0, 1024, "child private memory grew by more than 1 MB")
}
