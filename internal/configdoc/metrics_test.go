package configdoc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeModule makes a module with one package "p" holding the given files.
func writeModule(t *testing.T, files map[string]string) Module {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/m\n\ngo 1.26\n"), 0o600))
	for name, src := range files {
		path := filepath.Join(root, "p", name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o750))
		require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
	}
	m, err := FindModule(root)
	require.NoError(t, err)
	require.Equal(t, "example.com/m", m.Path)
	return m
}

const promImport = "package p\n\nimport \"github.com/prometheus/client_golang/prometheus\"\n\n"

func TestScanMetrics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []Metric
	}{
		{
			name: "literals and vec labels",
			src: promImport + `func f() {
	_ = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a_total", Help: "A."}, []string{"kind", "outcome"})
	_ = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "ns", Subsystem: "sub", Name: "lat_seconds", Help: "L."})
}`,
			want: []Metric{
				{Name: "a_total", Type: "counter", Help: "A.", Labels: []string{"kind", "outcome"}, File: "p/m.go", Line: 6},
				{Name: "ns_sub_lat_seconds", Type: "histogram", Help: "L.", File: "p/m.go", Line: 7},
			},
		},
		{
			name: "constants and concatenation",
			src: promImport + `const prefix = "strata_"
const helpText = "H."
func f() { _ = prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "g", Help: helpText}) }`,
			want: []Metric{{Name: "strata_g", Type: "gauge", Help: "H.", File: "p/m.go", Line: 7}},
		},
		{
			name: "closure with const labels",
			src: promImport + `func f(reg prometheus.Registerer) {
	labels := prometheus.Labels{"tenant_id": "x"}
	gauge := func(name, help string) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "s", Name: name, Help: help, ConstLabels: labels}, nil)
	}
	_ = gauge("one", "First.")
	_ = gauge("two", "Second.")
}`,
			want: []Metric{
				{Name: "s_one", Type: "gauge", Help: "First.", Labels: []string{"tenant_id"}, File: "p/m.go", Line: 8},
				{Name: "s_two", Type: "gauge", Help: "Second.", Labels: []string{"tenant_id"}, File: "p/m.go", Line: 8},
			},
		},
		{
			name: "NewDesc through a top-level helper",
			src: promImport + `var labels = []string{"tenant_id", "timeline_id"}
func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("strata_bridge_"+name, help, labels, nil)
}
type row struct { d *prometheus.Desc; k prometheus.ValueType }
var rows = []row{
	{desc("lag_bytes", "Lag."), prometheus.GaugeValue},
	{desc("reconnects_total", "Reconnects."), prometheus.CounterValue},
}
var direct = prometheus.NewDesc("plain", "Plain.", nil, nil)`,
			want: []Metric{
				{Name: "plain", Type: "untyped", Help: "Plain.", File: "p/m.go", Line: 14},
				{Name: "strata_bridge_lag_bytes", Type: "gauge", Help: "Lag.", Labels: []string{"tenant_id", "timeline_id"}, File: "p/m.go", Line: 7},
				{Name: "strata_bridge_reconnects_total", Type: "counter", Help: "Reconnects.", Labels: []string{"tenant_id", "timeline_id"}, File: "p/m.go", Line: 7},
			},
		},
		{
			name: "aliased import, duplicate name kept once",
			src: "package p\n\nimport prom \"github.com/prometheus/client_golang/prometheus\"\n\n" + `func f() {
	_ = prom.NewCounter(prom.CounterOpts{Name: "dup_total"})
	_ = prom.NewCounter(prom.CounterOpts{Name: "dup_total"})
}`,
			want: []Metric{{Name: "dup_total", Type: "counter", File: "p/m.go", Line: 6}},
		},
		{
			name: "no prometheus import",
			src:  "package p\n\ntype CounterOpts struct{ Name string }\n\nvar _ = CounterOpts{Name: \"x\"}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := writeModule(t, map[string]string{"m.go": tt.src, "m_test.go": promImport + `var _ = prometheus.CounterOpts{Name: "test_only_total"}`})
			got, err := ScanMetrics(m, "p")
			require.NoError(t, err)
			if len(tt.want) == 0 {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestScanMetricsUnresolved(t *testing.T) {
	tests := []struct{ name, src string }{
		{"computed name", promImport + `import "fmt"
func f(i int) { _ = prometheus.CounterOpts{Name: fmt.Sprint(i)} }`},
		{"unknown identifier", promImport + `func f() { n := "x"; _ = prometheus.CounterOpts{Name: n} }`},
		{"parameter of a method", promImport + `type T struct{}
func (T) m(name string) { _ = prometheus.CounterOpts{Name: name} }`},
		{"helper never called", promImport + `func mk(name string) prometheus.CounterOpts { return prometheus.CounterOpts{Name: name} }`},
		{"helper called with a variable", promImport + `func mk(name string) prometheus.CounterOpts { return prometheus.CounterOpts{Name: name} }
func g(s string) { _ = mk(s) }`},
		{"no name", promImport + `var _ = prometheus.CounterOpts{Help: "h"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := writeModule(t, map[string]string{"m.go": tt.src})
			_, err := ScanMetrics(m, "p")
			require.ErrorIs(t, err, ErrUnresolvedMetric)
			require.Contains(t, err.Error(), "p/m.go:")
		})
	}
}

func TestScanMetricsSkipsTestdataAndNestedModules(t *testing.T) {
	m := writeModule(t, map[string]string{
		"m.go":                promImport + `var _ = prometheus.CounterOpts{Name: "kept_total"}`,
		"testdata/x/x.go":     promImport + `var _ = prometheus.CounterOpts{Name: "testdata_total"}`,
		"nested/go.mod":       "module example.com/nested\n",
		"nested/n.go":         promImport + `var _ = prometheus.CounterOpts{Name: "nested_total"}`,
		"sub/broken_test.go":  "package sub\n\nthis is not go",
		"sub/sub.go":          promImport + `var _ = prometheus.GaugeOpts{Name: "sub_gauge"}`,
		".hidden/h.go":        promImport + `var _ = prometheus.CounterOpts{Name: "hidden_total"}`,
		"sub/deeper/empty.md": "not go",
	})
	got, err := ScanMetrics(m, "p")
	require.NoError(t, err)
	var names []string
	for _, mt := range got {
		names = append(names, mt.Name)
	}
	require.Equal(t, []string{"kept_total", "sub_gauge"}, names)
}

func TestScanMetricsErrors(t *testing.T) {
	m := writeModule(t, map[string]string{"m.go": "package p\n\nfunc {"})
	_, err := ScanMetrics(m, "p")
	require.ErrorIs(t, err, ErrSource)
	_, err = ScanMetrics(m, "missing")
	require.ErrorIs(t, err, ErrSource)
}
