package main

import (
	"fmt"
	"strings"
)

// kind says how a metric compares Strata with its baseline.
type kind int

const (
	// The zero value: Strata value / baseline value, in the metric's unit.
	_ kind = iota
	// overhead: Strata ns/op minus baseline ns/op (what a layer adds).
	overhead
)

// metric is one row of the summary table: two benchmarks of the same run
// and the issue's target. Targets are checked on the ratio (RatioMin,
// RatioMax), on the overhead (MaxOverheadNs) or on the Strata value alone
// (AbsMin, AbsMax, in Unit); zero means "no bound".
type metric struct {
	Issue    int
	Name     string
	Pkg      string // package of both benchmarks
	Strata   string // benchmark name without the -P suffix
	Baseline string // "" when the target is absolute and the tree has no baseline
	Unit     string // "ns/op", "MB/s", "pages/s", "records/s", "p99-µs"
	Kind     kind

	RatioMin, RatioMax float64
	AbsMin, AbsMax     float64
	MaxOverheadNs      float64
	Note               string
}

// metrics maps each issue's benchmark targets onto named benchmark pairs.
// Rows without any bound are context (the comparison the issue asked to
// show) and are marked "—".
var metrics = []metric{
	{Issue: 2, Name: "LSN formatting vs fmt.Sprintf", Pkg: "./internal/lsn/", Strata: "BenchmarkString", Baseline: "BenchmarkBaselineSprintf", Unit: "ns/op"},
	{Issue: 2, Name: "seqwait Advance, 0 waiters vs mutex + atomic store", Pkg: "./internal/seqwait/", Strata: "BenchmarkAdvance/waiters=0", Baseline: "BenchmarkBaselineMutexAtomicStore", Unit: "ns/op"},
	{Issue: 2, Name: "seqwait Advance, 1000 waiters vs mutex + atomic store", Pkg: "./internal/seqwait/", Strata: "BenchmarkAdvance/waiters=1000", Baseline: "BenchmarkBaselineMutexAtomicStore", Unit: "ns/op"},

	{Issue: 3, Name: "WAL decode throughput vs pg_waldump (printing)", Pkg: "./internal/pgwal/", Strata: "BenchmarkDecodeVsPGWaldump/strata-reader+decode", Baseline: "BenchmarkDecodeVsPGWaldump/pg_waldump>devnull", Unit: "MB/s", RatioMin: 2},
	{Issue: 3, Name: "WAL decode + restore every FPI vs pg_waldump (printing)", Pkg: "./internal/pgwal/", Strata: "BenchmarkDecodeVsPGWaldump/strata-reader+decode+restore-images", Baseline: "BenchmarkDecodeVsPGWaldump/pg_waldump>devnull", Unit: "MB/s"},
	{Issue: 3, Name: "WAL decode throughput vs pg_waldump -q (no printing)", Pkg: "./internal/pgwal/", Strata: "BenchmarkDecodeVsPGWaldump/strata-reader+decode", Baseline: "BenchmarkDecodeVsPGWaldump/pg_waldump-quiet", Unit: "MB/s"},

	{Issue: 4, Name: "walredo fixed cost per request, in-process (base image, 0 records)", Pkg: "./services/walredo/client/", Strata: "BenchmarkApply/heap=0/inprocess", Unit: "ns/op", AbsMax: 60_000},
	{Issue: 4, Name: "walredo heap records/s at 100 records per request, in-process", Pkg: "./services/walredo/client/", Strata: "BenchmarkApply/heap=100/inprocess", Unit: "records/s", AbsMin: 500_000},
	{Issue: 4, Name: "walredo: what gRPC (stream) adds, 1 record", Pkg: "./services/walredo/client/", Strata: "BenchmarkApply/heap=1/stream", Baseline: "BenchmarkApply/heap=1/inprocess", Unit: "ns/op", Kind: overhead, MaxOverheadNs: 60_000},
	{Issue: 4, Name: "walredo: what gRPC (stream) adds, 10 records", Pkg: "./services/walredo/client/", Strata: "BenchmarkApply/heap=10/stream", Baseline: "BenchmarkApply/heap=10/inprocess", Unit: "ns/op", Kind: overhead, MaxOverheadNs: 60_000},
	{Issue: 4, Name: "walredo: what gRPC (stream) adds, 10 btree records", Pkg: "./services/walredo/client/", Strata: "BenchmarkApply/btree=10/stream", Baseline: "BenchmarkApply/btree=10/inprocess", Unit: "ns/op", Kind: overhead, MaxOverheadNs: 60_000},
	{Issue: 4, Name: "walredo pages/s, 1 child, gRPC stream vs in-process", Pkg: "./services/walredo/client/", Strata: "BenchmarkApplyParallel/stream/children=1", Baseline: "BenchmarkApplyParallel/inprocess/children=1", Unit: "pages/s"},
	{Issue: 4, Name: "walredo pages/s, 2 children, gRPC stream vs in-process", Pkg: "./services/walredo/client/", Strata: "BenchmarkApplyParallel/stream/children=2", Baseline: "BenchmarkApplyParallel/inprocess/children=2", Unit: "pages/s"},

	{Issue: 5, Name: "GetPage, materialized-cache hit vs 8 KB copy from a Go map (256 pages)", Pkg: "./services/pageserver/timeline/", Strata: "BenchmarkGetMaterializedHit/pages=256", Baseline: "BenchmarkGetBaselineMapCopy/pages=256", Unit: "ns/op", RatioMax: 3},
	{Issue: 5, Name: "GetPage, materialized-cache hit vs 8 KB copy from a Go map (16384 pages)", Pkg: "./services/pageserver/timeline/", Strata: "BenchmarkGetMaterializedHit/pages=16384", Baseline: "BenchmarkGetBaselineMapCopy/pages=16384", Unit: "ns/op", RatioMax: 3},
	{Issue: 5, Name: "page cache: materialized hit + copy vs map + copy (1024 pages)", Pkg: "./services/pageserver/pagecache/", Strata: "BenchmarkMaterializedHit/pages=1024/cache-copy", Baseline: "BenchmarkMaterializedHit/pages=1024/baseline-map-copy", Unit: "ns/op", RatioMax: 3},
	{Issue: 5, Name: "page cache: layer-file block hit (zero-copy) vs pread 8 KB (1024 pages)", Pkg: "./services/pageserver/pagecache/", Strata: "BenchmarkImmutableHit/pages=1024/cache-zero-copy", Baseline: "BenchmarkImmutableHit/pages=1024/baseline-pread", Unit: "ns/op"},
	{Issue: 5, Name: "page cache: layer-file block hit + copy vs pread 8 KB (1024 pages)", Pkg: "./services/pageserver/pagecache/", Strata: "BenchmarkImmutableHit/pages=1024/cache-copy", Baseline: "BenchmarkImmutableHit/pages=1024/baseline-pread", Unit: "ns/op"},
	{Issue: 5, Name: "put throughput into the open layer vs raw sequential append", Pkg: "./services/pageserver/timeline/", Strata: "BenchmarkIngestImages", Baseline: "BenchmarkIngestBaselineAppend", Unit: "MB/s", RatioMin: 0.5},
	{Issue: 5, Name: "ephemeral file append vs raw append", Pkg: "./services/pageserver/ephemeral/", Strata: "BenchmarkAppend", Baseline: "BenchmarkRawAppend", Unit: "MB/s"},
	{Issue: 5, Name: "delta layer write vs raw append + fsync", Pkg: "./services/pageserver/layer/", Strata: "BenchmarkDeltaWriter", Baseline: "BenchmarkWriteBaselineAppend", Unit: "MB/s"},
	{Issue: 5, Name: "layer Get of a page image vs pread of one block", Pkg: "./services/pageserver/layer/", Strata: "BenchmarkGetPageImage", Baseline: "BenchmarkGetBaselinePread", Unit: "ns/op"},
	{Issue: 5, Name: "branch creation at 10 000 layer files vs at 1 (flat, < 5 ms)", Pkg: "./services/pageserver/timeline/", Strata: "BenchmarkBranch/layers=10000", Baseline: "BenchmarkBranch/layers=1", Unit: "ns/op", RatioMax: 2, AbsMax: 5_000_000},
	{Issue: 5, Name: "branch creation through the tenant manager, 10 000 vs 1 layer files", Pkg: "./services/pageserver/tenantmgr/", Strata: "BenchmarkBranch/layers=10000", Baseline: "BenchmarkBranch/layers=1", Unit: "ns/op", RatioMax: 2, AbsMax: 5_000_000},
	{Issue: 5, Name: "timeline metadata update vs durable write of the same bytes", Pkg: "./services/pageserver/tenant/", Strata: "BenchmarkUpdateMetadata", Baseline: "BenchmarkBaselineDurableWrite", Unit: "ns/op"},

	{Issue: 6, Name: "WAL ingest (pgbench WAL, records -> keys) vs decoding alone", Pkg: "./services/pageserver/walingest/", Strata: "BenchmarkPgbenchWAL/ingest", Baseline: "BenchmarkPgbenchWAL/decode", Unit: "records/s", Note: "issue target ≥ 3× the WAL generation rate of pgbench -i -s 10: measured separately, see the row below"},
	{Issue: 6, Name: "fullbackup tar writing vs plain tar of the same bytes", Pkg: "./services/pageserver/basebackup/", Strata: "BenchmarkWriteFull", Baseline: "BenchmarkBaselineTar", Unit: "MB/s", Note: "issue target ≤ 0.5× a PITR restore to the same LSN: measured separately, see the row below"},

	{Issue: 8, Name: "pgproxy GetPage pages/s vs direct gRPC, depth 32, 1 connection", Pkg: "./services/pgproxy/", Strata: "BenchmarkGetPage/pgproxy/conns=1/depth=32", Baseline: "BenchmarkGetPage/direct-grpc/conns=1/depth=32", Unit: "pages/s", RatioMin: 0.6},
	{Issue: 8, Name: "pgproxy GetPage pages/s vs direct gRPC, depth 32, 8 connections", Pkg: "./services/pgproxy/", Strata: "BenchmarkGetPage/pgproxy/conns=8/depth=32", Baseline: "BenchmarkGetPage/direct-grpc/conns=8/depth=32", Unit: "pages/s", RatioMin: 0.6},
	{Issue: 8, Name: "pgproxy cache-hit GetPage p99, depth 1, 1 connection (vs direct gRPC)", Pkg: "./services/pgproxy/", Strata: "BenchmarkGetPage/pgproxy/conns=1/depth=1", Baseline: "BenchmarkGetPage/direct-grpc/conns=1/depth=1", Unit: "p99-µs", AbsMax: 1000},
	{Issue: 8, Name: "pgproxy GetPage pages/s vs raw gRPC 8 KB echo (ceiling), depth 32, 8 connections", Pkg: "./services/pgproxy/", Strata: "BenchmarkGetPage/pgproxy/conns=8/depth=32", Baseline: "BenchmarkGetPage/grpc-echo-8k/conns=8/depth=32", Unit: "pages/s"},
}

// unmeasured lists issue targets that `go test -bench` does not measure:
// each needs fresh PostgreSQL clusters and minutes per figure, so a separate
// command measures it and writes its section below the marker. The table
// points there instead of silently omitting them.
var unmeasured = []struct {
	Issue               int
	Name, Target, Where string
}{
	{6, "WAL ingest vs the primary's generation rate (pgbench -i -s 10); fullbackup (after compaction) vs pg_basebackup and PITR", "ingest ≥ 3×; fullbackup ≤ 0.5× PITR", "`STRATA_BENCH=1 go test -run TestBenchIngestAndBackup ./services/pageserver/importer/`, section \"Ingest and backups (issue 6)\""},
	{7, "bridge end-to-end lag p50/p99 and throughput vs pg_receivewal", "≥ 80 % of pg_receivewal", "`go test -run '^$' -bench BenchmarkEndToEnd -benchtime=1x ./services/safekeeper-bridge/`, section \"Bridge (issue 7)\""},
}

func lookup(rs []result, pkg, name string) (result, bool) {
	for _, r := range rs {
		if r.Pkg == pkg && r.Name == name {
			return r, true
		}
	}
	return result{}, false
}

// evaluation is a metric's row, computed.
type evaluation struct {
	Strata, Baseline, Ratio, Target, Verdict string
}

func evaluate(m metric, rs []result) evaluation {
	e := evaluation{Target: targetText(m), Baseline: "— (absolute target)", Ratio: "—"}
	s, ok := lookup(rs, m.Pkg, m.Strata)
	sv, okv := s.Values[m.Unit]
	if !ok || !okv {
		e.Strata, e.Verdict = "missing", "not measured"
		if m.Baseline != "" {
			e.Baseline = "—"
		}
		return e
	}
	e.Strata = formatValue(sv, m.Unit)
	met := true
	if m.AbsMin > 0 && sv < m.AbsMin {
		met = false
	}
	if m.AbsMax > 0 && sv > m.AbsMax {
		met = false
	}
	if m.Baseline != "" {
		b, ok := lookup(rs, m.Pkg, m.Baseline)
		bv, okv := b.Values[m.Unit]
		if !ok || !okv || bv == 0 {
			e.Baseline, e.Verdict = "missing", "not measured"
			return e
		}
		e.Baseline = formatValue(bv, m.Unit)
		switch m.Kind {
		case overhead:
			d := sv - bv
			e.Ratio = "+" + formatValue(d, "ns/op")
			if m.MaxOverheadNs > 0 && d > m.MaxOverheadNs {
				met = false
			}
		default:
			r := sv / bv
			e.Ratio = fmt.Sprintf("%.2f×", r)
			if m.RatioMin > 0 && r < m.RatioMin {
				met = false
			}
			if m.RatioMax > 0 && r > m.RatioMax {
				met = false
			}
		}
	}
	switch {
	case e.Target == "—" && m.Note != "":
		e.Target, e.Verdict = m.Note, "target not measured"
	case e.Target == "—":
		e.Verdict = "—"
	case met:
		e.Verdict = "**met**"
	default:
		e.Verdict = "**not met**"
	}
	return e
}

func targetText(m metric) string {
	var parts []string
	if m.RatioMin > 0 {
		parts = append(parts, fmt.Sprintf("ratio ≥ %g×", m.RatioMin))
	}
	if m.RatioMax > 0 {
		parts = append(parts, fmt.Sprintf("ratio ≤ %g×", m.RatioMax))
	}
	if m.MaxOverheadNs > 0 {
		parts = append(parts, "adds ≤ "+formatValue(m.MaxOverheadNs, "ns/op"))
	}
	if m.AbsMin > 0 {
		parts = append(parts, "≥ "+formatValue(m.AbsMin, m.Unit))
	}
	if m.AbsMax > 0 {
		parts = append(parts, "≤ "+formatValue(m.AbsMax, m.Unit))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}

// formatValue prints a value in its unit, times scaled to ns/µs/ms.
func formatValue(v float64, unit string) string {
	switch unit {
	case "ns/op":
		switch av := abs(v); {
		case av >= 1e6:
			return fmt.Sprintf("%.2f ms", v/1e6)
		case av >= 1e3:
			return fmt.Sprintf("%.1f µs", v/1e3)
		default:
			return fmt.Sprintf("%.0f ns", v)
		}
	case "p99-µs", "p50-µs":
		return fmt.Sprintf("%.0f µs", v)
	case "MB/s":
		return fmt.Sprintf("%.0f MB/s", v)
	default:
		if v >= 1e6 {
			return fmt.Sprintf("%.2f M %s", v/1e6, unit)
		}
		if v >= 1e4 {
			return fmt.Sprintf("%.1f k %s", v/1e3, unit)
		}
		return fmt.Sprintf("%.0f %s", v, unit)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
