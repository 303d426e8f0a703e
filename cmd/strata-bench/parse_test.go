package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseBench(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []result
	}{
		{
			name: "one line with custom units",
			in:   "goos: linux\nBenchmarkGetPage/pgproxy/conns=1/depth=32-2   \t   1000\t  28000 ns/op\t 35439 pages/s\t 597.0 p50-µs\t 2639 p99-µs\t 120 B/op\t 3 allocs/op\nPASS\n",
			want: []result{{Pkg: "p", Name: "BenchmarkGetPage/pgproxy/conns=1/depth=32", N: 1000, Values: map[string]float64{"ns/op": 28000, "pages/s": 35439, "p50-µs": 597, "p99-µs": 2639, "B/op": 120, "allocs/op": 3}}},
		},
		{
			name: "name and values split by a log line",
			in:   "BenchmarkDecodeVsPGWaldump/strata-reader+decode-2\n    bench_test.go:60: wrote 42 MB\n       3\t  21000000 ns/op\t 1997.00 MB/s\n",
			want: []result{{Pkg: "p", Name: "BenchmarkDecodeVsPGWaldump/strata-reader+decode", N: 3, Values: map[string]float64{"ns/op": 21000000, "MB/s": 1997}}},
		},
		{
			name: "no ns/op is not a result",
			in:   "BenchmarkX-2 10 5 MB/s\n",
		},
		{
			name: "odd fields are not a result",
			in:   "BenchmarkX-2 10 5 ns/op 7\n",
		},
		{
			name: "failure output",
			in:   "--- FAIL: BenchmarkX\n    x_test.go:1: boom\nFAIL\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, parseBench("p", tc.in))
		})
	}
}

func TestEvaluate(t *testing.T) {
	rs := []result{
		{Pkg: "p", Name: "S", Values: map[string]float64{"ns/op": 300, "MB/s": 10}},
		{Pkg: "p", Name: "B", Values: map[string]float64{"ns/op": 100, "MB/s": 40}},
	}
	tests := []struct {
		name string
		m    metric
		want evaluation
	}{
		{"ratio max met", metric{Pkg: "p", Strata: "S", Baseline: "B", Unit: "ns/op", RatioMax: 3}, evaluation{"300 ns", "100 ns", "3.00×", "ratio ≤ 3×", "**met**"}},
		{"ratio min not met", metric{Pkg: "p", Strata: "S", Baseline: "B", Unit: "MB/s", RatioMin: 0.5}, evaluation{"10 MB/s", "40 MB/s", "0.25×", "ratio ≥ 0.5×", "**not met**"}},
		{"overhead", metric{Pkg: "p", Strata: "S", Baseline: "B", Unit: "ns/op", Kind: overhead, MaxOverheadNs: 150}, evaluation{"300 ns", "100 ns", "+200 ns", "adds ≤ 150 ns", "**not met**"}},
		{"absolute", metric{Pkg: "p", Strata: "S", Unit: "ns/op", AbsMax: 1000}, evaluation{"300 ns", "— (absolute target)", "—", "≤ 1.0 µs", "**met**"}},
		{"no target", metric{Pkg: "p", Strata: "S", Baseline: "B", Unit: "ns/op"}, evaluation{"300 ns", "100 ns", "3.00×", "—", "—"}},
		{"missing baseline", metric{Pkg: "p", Strata: "S", Baseline: "X", Unit: "ns/op", RatioMax: 3}, evaluation{"300 ns", "missing", "—", "ratio ≤ 3×", "not measured"}},
		{"missing strata", metric{Pkg: "q", Strata: "S", Baseline: "B", Unit: "ns/op"}, evaluation{"missing", "—", "—", "—", "not measured"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, evaluate(tc.m, rs))
		})
	}
}

// TestMetricsNamesUnique keeps the summary table free of duplicate rows.
func TestMetricsNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range metrics {
		require.False(t, seen[m.Name], m.Name)
		seen[m.Name] = true
		require.NotEmpty(t, m.Unit, m.Name)
	}
}

func FuzzParseBench(f *testing.F) {
	f.Add("BenchmarkA-2 \t 10\t 5 ns/op\t 1 B/op\n")
	f.Add("BenchmarkA-2\n   10\t 5 ns/op\n")
	f.Add("BenchmarkA 1 NaN ns/op\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		for _, r := range parseBench("p", in) {
			if _, ok := r.Values["ns/op"]; !ok {
				t.Fatalf("result without ns/op: %+v", r)
			}
		}
	})
}

func TestFailureLines(t *testing.T) {
	in := "BenchmarkA-2 10 5 ns/op\n--- FAIL: BenchmarkB\n    b_test.go:12: boom\nFAIL\nexit status 1\n"
	require.Equal(t, "--- FAIL: BenchmarkB | b_test.go:12: boom", failureLines(in))
	require.Empty(t, failureLines("BenchmarkA-2 10 5 ns/op\nPASS\n"))
}
