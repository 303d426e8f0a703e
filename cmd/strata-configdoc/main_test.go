package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/configdoc"
)

var update = flag.Bool("update", false, "rewrite docs/config-reference.md and the metrics table of docs/operations.md")

func TestGeneratedDocsUpToDate(t *testing.T) {
	g, err := generate(".")
	require.NoError(t, err)
	if *update {
		require.NoError(t, g.write())
	}
	stale, err := g.stale()
	require.NoError(t, err)
	require.Empty(t, stale, "generated documents are stale: run `go test ./cmd/strata-configdoc -update` (or `go run ./cmd/strata-configdoc`) and commit them")
}

func TestGeneratedReferenceCoversEveryService(t *testing.T) {
	g, err := generate(".")
	require.NoError(t, err)
	ref := string(g.files[configReferencePath])
	for _, want := range []string{
		"## pageserver", "## walredo", "## safekeeper-bridge", "## pgproxy",
		"| `listen_addr` | `--listen-addr` | string | `\"127.0.0.1:51051\"` |",
		"| `timeline[].slot_name` | — | string | — |",
		"`STRATA_BRIDGE_TOKEN`", "`STRATA_PGPROXY_TOKEN_FILE`",
	} {
		require.Contains(t, ref, want)
	}
	ops := string(g.files[operationsPath])
	require.Contains(t, ops, "| `strata_walredo_requests_total` | counter | `result` | walredo |")
	require.Contains(t, ops, "| `grpc_server_handling_seconds` | histogram |")
}

func TestStaleDetectsDifferences(t *testing.T) {
	root := t.TempDir()
	g := &generated{root: root, files: map[string][]byte{"a.md": []byte("new\n"), "b.md": []byte("same\n")}}
	require.NoError(t, os.WriteFile(filepath.Join(root, "a.md"), []byte("old\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(root, "b.md"), []byte("same\n"), 0o600))
	stale, err := g.stale()
	require.NoError(t, err)
	require.Equal(t, []string{"a.md"}, stale)
	require.NoError(t, g.write())
	stale, err = g.stale()
	require.NoError(t, err)
	require.Empty(t, stale)
}

func TestSplice(t *testing.T) {
	tests := []struct {
		name, doc, want string
		wantErr         bool
	}{
		{name: "replaces", doc: "a\n" + metricsBegin + "\nold\n" + metricsEnd + "\nz\n", want: "a\n" + metricsBegin + "\nT\n" + metricsEnd + "\nz\n"},
		{name: "empty region", doc: metricsBegin + metricsEnd, want: metricsBegin + "\nT\n" + metricsEnd},
		{name: "no markers", doc: "nothing", wantErr: true},
		{name: "reversed", doc: metricsEnd + metricsBegin, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splice([]byte(tt.doc), []byte("T\n"))
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
}

func TestInventoryHasLibraryAndDeclaredMetrics(t *testing.T) {
	m, err := configdoc.FindModule(".")
	require.NoError(t, err)
	inv, err := inventory(m)
	require.NoError(t, err)
	byName := map[string]configdoc.Metric{}
	for _, mt := range inv {
		byName[mt.Name] = mt
	}
	for name, typ := range map[string]string{
		"grpc_server_handling_seconds":       "histogram",
		"grpc_server_handled_total":          "counter",
		"go_goroutines":                      "gauge",
		"strata_pagecache_hits_total":        "counter",
		"strata_bridge_lag_bytes":            "gauge",
		"pgproxy_pagestream_request_seconds": "histogram",
	} {
		require.Contains(t, byName, name)
		require.Equal(t, typ, byName[name].Type, name)
	}
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`rate(a_total[5m])`, []string{"a_total"}},
		{`sum by (le, type) (rate(x_bucket{type="get page", le!="+Inf"}[5m]))`, []string{"x_bucket"}},
		{`histogram_quantile(0.99, sum without (pod) (rate(h_bucket[1m])))`, []string{"h_bucket"}},
		{`a / (b + on (tenant) group_left c) > bool 0`, []string{"a", "b", "c"}},
		{`sum (rate (spaced_total [5m]))`, []string{"spaced_total"}},
		{`max(x{l=~"a|b}"})`, []string{"x"}},
		{`1 + 2`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			require.Equal(t, tt.want, metricNames(tt.expr))
		})
	}
}

func TestDashboardQueriesNameDeclaredMetrics(t *testing.T) {
	m, err := configdoc.FindModule(".")
	require.NoError(t, err)
	inv, err := inventory(m)
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(m.Root, dashboardPath))
	require.NoError(t, err)
	n, problems := checkDashboard(data, inv)
	require.Empty(t, problems)
	require.GreaterOrEqual(t, n, 20, "the dashboard lost its queries")
	for _, want := range []string{"strata_bridge_lag_bytes", "pgproxy_pagestream_request_seconds_bucket", "strata_pagecache_hits_total", "strata_walredo_request_duration_seconds_bucket"} {
		require.Contains(t, string(data), want)
	}
}

func TestCheckDashboardFindsProblems(t *testing.T) {
	inv := []configdoc.Metric{{Name: "real_total", Type: "counter"}, {Name: "lat_seconds", Type: "histogram"}}
	tests := []struct {
		name, json string
		problems   int
		queries    int
	}{
		{name: "ok", json: `{"panels":[{"targets":[{"expr":"rate(real_total[5m])"},{"expr":"histogram_quantile(0.9, rate(lat_seconds_bucket[1m]))"}]}]}`, queries: 2},
		{name: "unknown metric", json: `{"panels":[{"targets":[{"expr":"rate(typo_total[5m])"}]}]}`, problems: 1, queries: 1},
		{name: "bucket of a counter", json: `{"panels":[{"targets":[{"expr":"real_total_bucket"}]}]}`, problems: 1, queries: 1},
		{name: "no metric", json: `{"panels":[{"targets":[{"expr":"vector(1)"}]}]}`, problems: 1, queries: 1},
		{name: "expr not a string", json: `{"expr": 3}`, problems: 1},
		{name: "not json", json: `{`, problems: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, problems := checkDashboard([]byte(tt.json), inv)
			require.Len(t, problems, tt.problems, strings.Join(problems, "\n"))
			require.Equal(t, tt.queries, n)
		})
	}
}

func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{`rate(a[5m])`, `sum by (x) (b{c="d"})`, `{`, `"unterminated`, `a{b="}"}[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, name := range metricNames(expr) {
			if name == "" || strings.ContainsAny(name, " ({[\"") {
				t.Fatalf("bad name %q from %q", name, expr)
			}
		}
	})
}

// TestDeployConfigsAreValid loads every TOML file of deploy/config exactly as
// the service would (strict decode over the defaults, then Validate), so the
// container configs cannot name a key that does not exist.
func TestDeployConfigsAreValid(t *testing.T) {
	m, err := configdoc.FindModule(".")
	require.NoError(t, err)
	for _, s := range serviceConfigs() {
		t.Run(s.name, func(t *testing.T) {
			path := filepath.Join(m.Root, "deploy", "config", s.name+".toml")
			cfg := s.cfg.(config.Loadable)
			require.NoError(t, config.DecodeFile(path, cfg))
			require.NoError(t, cfg.Validate())
		})
	}
	entries, err := os.ReadDir(filepath.Join(m.Root, "deploy", "config"))
	require.NoError(t, err)
	require.Len(t, entries, len(serviceConfigs()), "one file per service, nothing else")
}
