package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/configdoc"
	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/metrics"
	"github.com/stratadb/strata/services/pageserver"
	"github.com/stratadb/strata/services/pgproxy"
	bridge "github.com/stratadb/strata/services/safekeeper-bridge"
	"github.com/stratadb/strata/services/walredo"
)

// Paths of the generated documents, relative to the repository root.
const (
	configReferencePath = "docs/config-reference.md"
	operationsPath      = "docs/operations.md"
	metricsBegin        = "<!-- BEGIN GENERATED METRICS (strata-configdoc) -->"
	metricsEnd          = "<!-- END GENERATED METRICS -->"
	generator           = "go run ./cmd/strata-configdoc"
)

// serviceConfigs lists every service with its defaults, in the order of the
// reference. A new service is added here.
func serviceConfigs() []struct {
	name string
	cfg  any
} {
	ps, wr, br, px := pageserver.DefaultConfig(), walredo.DefaultConfig(), bridge.DefaultConfig(), pgproxy.DefaultConfig()
	return []struct {
		name string
		cfg  any
	}{
		{"pageserver", &ps},
		{"walredo", &wr},
		{"safekeeper-bridge", &br},
		{"pgproxy", &px},
	}
}

// metricDirs are the directories scanned for metric declarations.
var metricDirs = []string{"services", "internal", "cmd"}

// generated holds the wanted content of each generated file.
type generated struct {
	root  string
	files map[string][]byte // relative path -> content
}

func generate(dir string) (*generated, error) {
	m, err := configdoc.FindModule(dir)
	if err != nil {
		return nil, err
	}
	g := &generated{root: m.Root, files: map[string][]byte{}}

	var svcs []configdoc.Service
	for _, s := range serviceConfigs() {
		ref, err := configdoc.Describe(m, s.cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		svcs = append(svcs, configdoc.Service{Name: s.name, Ref: ref})
	}
	var buf bytes.Buffer
	if err := configdoc.RenderConfigReference(&buf, generator, svcs); err != nil {
		return nil, err
	}
	g.files[configReferencePath] = buf.Bytes()

	inv, err := inventory(m)
	if err != nil {
		return nil, err
	}
	ops, err := os.ReadFile(filepath.Join(m.Root, operationsPath))
	if err != nil {
		return nil, err
	}
	spliced, err := splice(ops, renderMetrics(inv))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", operationsPath, err)
	}
	g.files[operationsPath] = spliced
	return g, nil
}

// stale lists the generated files whose content on disk differs.
func (g *generated) stale() ([]string, error) {
	var out []string
	for _, p := range g.paths() {
		have, err := os.ReadFile(filepath.Join(g.root, p))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if !bytes.Equal(have, g.files[p]) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (g *generated) write() error {
	for _, p := range g.paths() {
		if err := os.WriteFile(filepath.Join(g.root, p), g.files[p], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (g *generated) paths() []string {
	ps := make([]string, 0, len(g.files))
	for p := range g.files {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// inventory is every metric a Strata process can export: those declared in
// the source, plus those registered by libraries (the gRPC server metrics of
// go-grpc-middleware, the Go runtime and process collectors), learnt by
// building them exactly as the services do.
func inventory(m configdoc.Module) ([]configdoc.Metric, error) {
	declared, err := configdoc.ScanMetrics(m, metricDirs...)
	if err != nil {
		return nil, err
	}
	lib, err := libraryMetrics()
	if err != nil {
		return nil, err
	}
	all := append(declared, lib...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, nil
}

// recorder is a prometheus.Registerer that keeps what is registered.
type recorder struct{ collectors []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return false }

var (
	descRE   = regexp.MustCompile(`fqName: "((?:[^"\\]|\\.)*)", help: "((?:[^"\\]|\\.)*)"`)
	labelsRE = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

func libraryMetrics() ([]configdoc.Metric, error) {
	var out []configdoc.Metric
	// The gRPC server metrics, registered by grpcserver.New exactly as in
	// every gRPC service. Desc has no name accessor; its String is stable
	// in client_golang ("Desc{fqName: ..., help: ...}").
	a, err := auth.NewAuthenticator(auth.ModeTrust, nil)
	if err != nil {
		return nil, err
	}
	rec := &recorder{}
	srv, err := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: rec, Auth: a})
	if err != nil {
		return nil, err
	}
	srv.Stop()
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			sm := descRE.FindStringSubmatch(d.String())
			if sm == nil {
				return nil, fmt.Errorf("cannot read metric descriptor %s", d)
			}
			typ := "gauge"
			switch {
			case strings.HasSuffix(sm[1], "_total"):
				typ = "counter"
			case strings.HasPrefix(sm[2], "Histogram"):
				typ = "histogram"
			}
			var labels []string
			if lm := labelsRE.FindStringSubmatch(d.String()); lm != nil && lm[1] != "" {
				labels = strings.Split(lm[1], ",")
			}
			out = append(out, configdoc.Metric{Name: sm[1], Type: typ, Help: sm[2], Labels: labels, File: "internal/grpcserver (go-grpc-middleware)"})
		}
	}
	// The Go runtime and process collectors of metrics.NewRegistry: no
	// labels, so Gather returns every family.
	fams, err := metrics.NewRegistry().Gather()
	if err != nil {
		return nil, err
	}
	for _, f := range fams {
		out = append(out, configdoc.Metric{Name: f.GetName(), Type: strings.ToLower(f.GetType().String()), Help: f.GetHelp(), File: "internal/metrics (client_golang collectors)"})
	}
	return out, nil
}

// serviceOf says which processes export a metric, from where it is declared.
func serviceOf(mt configdoc.Metric) string {
	switch {
	case strings.HasPrefix(mt.File, "services/"):
		return strings.SplitN(strings.TrimPrefix(mt.File, "services/"), "/", 2)[0]
	case strings.HasPrefix(mt.File, "internal/grpcserver"):
		return "pageserver, walredo, safekeeper-bridge"
	case strings.HasPrefix(mt.File, "internal/metrics"):
		return "all"
	}
	return mt.File
}

func renderMetrics(inv []configdoc.Metric) []byte {
	var b strings.Builder
	b.WriteString("| metric | type | labels | exported by | meaning |\n|---|---|---|---|---|\n")
	runtimeDone := false
	for _, mt := range inv {
		if strings.HasPrefix(mt.Name, "go_") || strings.HasPrefix(mt.Name, "process_") {
			if !runtimeDone {
				b.WriteString("| `go_*`, `process_*` | — | — | all | Go runtime and process metrics of client_golang's standard collectors |\n")
				runtimeDone = true
			}
			continue
		}
		labels := "—"
		if len(mt.Labels) > 0 {
			labels = "`" + strings.Join(mt.Labels, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", mt.Name, mt.Type, labels, serviceOf(mt),
			strings.ReplaceAll(mt.Help, "|", `\|`))
	}
	return []byte(b.String())
}

// splice replaces what lies between the metrics markers of doc.
func splice(doc, table []byte) ([]byte, error) {
	begin := bytes.Index(doc, []byte(metricsBegin))
	end := bytes.Index(doc, []byte(metricsEnd))
	if begin < 0 || end < begin {
		return nil, fmt.Errorf("markers %q and %q not found in order", metricsBegin, metricsEnd)
	}
	var out bytes.Buffer
	out.Write(doc[:begin+len(metricsBegin)])
	out.WriteString("\n")
	out.Write(table)
	out.Write(doc[end:])
	return out.Bytes(), nil
}
