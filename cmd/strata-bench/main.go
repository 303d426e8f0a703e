package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// marker separates the generated part of RESULTS.md from the kept one.
const marker = "<!-- strata-bench: detailed sections below are kept -->"

// pkgRun is one `go test -bench` invocation: a package and a fixed benchtime
// chosen so the whole run stays well under 20 minutes on 2 cores.
type pkgRun struct {
	Pkg       string
	Bench     string // -bench regexp
	Benchtime string
	CPU       string // -cpu, empty for the default
}

var runs = []pkgRun{
	{"./internal/lsn/", ".", "200ms", ""},
	{"./internal/seqwait/", ".", "200ms", ""},
	{"./internal/auth/", ".", "200ms", ""},
	{"./internal/pgwal/rmgr/", ".", "200ms", ""},
	{"./internal/pgwal/", ".", "3x", ""},
	{"./internal/pgtest/", ".", "2x", ""},
	{"./services/walredo/pool/", ".", "2000x", ""},
	{"./services/walredo/client/", ".", "2000x", ""},
	{"./services/pageserver/pagecache/", "MaterializedHit|ImmutableHit", "300ms", "1"},
	{"./services/pageserver/pagecache/", "ParallelHit", "300ms", "2"},
	{"./services/pageserver/ephemeral/", ".", "200ms", ""},
	{"./services/pageserver/layer/", "Get", "20000x", ""},
	{"./services/pageserver/layer/", "Writ", "40x", ""},
	{"./services/pageserver/timeline/", ".", "300ms", ""},
	{"./services/pageserver/timeline/metadata/", ".", "200ms", ""},
	{"./services/pageserver/tenant/", ".", "200ms", ""},
	{"./services/pageserver/tenantmgr/", ".", "50x", ""},
	{"./services/pageserver/walingest/", ".", "3x", ""},
	{"./services/pageserver/basebackup/", ".", "5x", ""},
	{"./services/pageserver/importer/", ".", "3x", ""},
	{"./services/safekeeper-bridge/spool/", ".", "200ms", ""},
	{"./services/pgproxy/", ".", "2s", ""},
	{"./services/pgproxy/pagestream/", ".", "200ms", ""},
}

// result is one benchmark line: iterations and every reported unit.
type result struct {
	Pkg    string
	Name   string // without the -GOMAXPROCS suffix
	N      int64
	Values map[string]float64 // "ns/op", "MB/s", "B/op", "allocs/op", custom units
}

func main() {
	out := flag.String("o", "bench/RESULTS.md", "markdown file to rewrite")
	only := flag.String("pkg", "", "run only the packages containing this substring (for trying the tool)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, log, *out, *only, os.Args); err != nil {
		log.Error("strata-bench failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, out, only string, args []string) error {
	start := time.Now()
	var all []result
	var failed []string
	for _, r := range runs {
		if only != "" && !strings.Contains(r.Pkg, only) {
			continue
		}
		t0 := time.Now()
		res, err := runPkg(ctx, r)
		log.Info("benchmarks run", "pkg", r.Pkg, "bench", r.Bench, "results", len(res), "took", time.Since(t0).Round(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Warn("package failed; its rows will be missing", "pkg", r.Pkg, "err", err)
			failed = append(failed, fmt.Sprintf("%s (%v)", r.Pkg, err))
		}
		all = append(all, res...)
	}
	kept, err := keptSections(out)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	writeMarkdown(&buf, all, failed, machineInfo(ctx), time.Since(start), strings.Join(args[1:], " "))
	buf.WriteString("\n" + marker + "\n")
	buf.WriteString(kept)
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("strata-bench: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("strata-bench: rename %s: %w", tmp, err)
	}
	log.Info("wrote results", "file", out, "benchmarks", len(all), "took", time.Since(start).Round(time.Second))
	return nil
}

// keptSections returns what follows the marker in the existing file, or
// the whole file when it has no marker yet (first run), or "" when absent.
func keptSections(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("strata-bench: read %s: %w", path, err)
	}
	s := string(b)
	if i := strings.Index(s, marker); i >= 0 {
		return strings.TrimLeft(s[i+len(marker):], "\n"), nil
	}
	return s, nil
}

func goTestArgs(r pkgRun) []string {
	a := []string{"test", "-run", "^$", "-bench", r.Bench, "-benchmem", "-benchtime", r.Benchtime, "-count", "1", "-timeout", "15m", "-json"}
	if r.CPU != "" {
		a = append(a, "-cpu", r.CPU)
	}
	return append(a, r.Pkg)
}

// runPkg runs one package's benchmarks and parses the results from the
// test2json stream. Results parsed before a failure are returned too.
func runPkg(ctx context.Context, r pkgRun) ([]result, error) {
	cmd := exec.CommandContext(ctx, "go", goTestArgs(r)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("strata-bench: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("strata-bench: start go test: %w", err)
	}
	text, perr := collectOutput(stdout)
	werr := cmd.Wait()
	res := parseBench(r.Pkg, text)
	if perr != nil {
		return res, perr
	}
	if werr != nil {
		msg := failureLines(text)
		if msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		if len(msg) > 400 {
			msg = msg[len(msg)-400:]
		}
		return res, fmt.Errorf("strata-bench: go test %s: %w: %s", r.Pkg, werr, msg)
	}
	return res, nil
}

// collectOutput concatenates the Output of every test2json event.
func collectOutput(rd io.Reader) (string, error) {
	var sb strings.Builder
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Action string
			Output string
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// go test prints build errors as plain text.
			sb.WriteString(sc.Text() + "\n")
			continue
		}
		if ev.Action == "output" {
			sb.WriteString(ev.Output)
		}
	}
	if err := sc.Err(); err != nil {
		return sb.String(), fmt.Errorf("strata-bench: read go test output: %w", err)
	}
	return sb.String(), nil
}

var (
	nameRE   = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?$`)
	resultRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*\S)\s*$`)
	valuesRE = regexp.MustCompile(`^\s*(\d+)\s+(.*\S)\s*$`)
)

// parseBench finds the benchmark result lines in go test output. A result
// line is "BenchmarkName-P  N  v unit  v unit ..."; test2json may split it
// after the name when the benchmark logs, so a bare name line followed by a
// line starting with the iteration count is joined.
func parseBench(pkg, text string) []result {
	var res []result
	pending := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		trimmed := strings.TrimSpace(line)
		if m := resultRE.FindStringSubmatch(trimmed); m != nil {
			if r, ok := makeResult(pkg, m[1], m[2], m[3]); ok {
				res = append(res, r)
			}
			pending = ""
			continue
		}
		if m := nameRE.FindStringSubmatch(trimmed); m != nil {
			pending = m[1]
			continue
		}
		if pending != "" {
			if m := valuesRE.FindStringSubmatch(line); m != nil {
				if r, ok := makeResult(pkg, pending, m[1], m[2]); ok {
					res = append(res, r)
				}
				pending = ""
			}
		}
	}
	return res
}

func makeResult(pkg, name, n, rest string) (result, bool) {
	iters, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		return result{}, false
	}
	f := strings.Fields(rest)
	if len(f) < 2 || len(f)%2 != 0 {
		return result{}, false
	}
	vals := make(map[string]float64, len(f)/2)
	for i := 0; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return result{}, false
		}
		vals[f[i+1]] = v
	}
	if _, ok := vals["ns/op"]; !ok {
		return result{}, false
	}
	return result{Pkg: pkg, Name: name, N: iters, Values: vals}, true
}

type machine struct {
	CPU, Cores, Memory, Go, Postgres, Date, Load, Kernel string
}

func machineInfo(ctx context.Context) machine {
	m := machine{
		Cores: strconv.Itoa(runtime.NumCPU()),
		Go:    runtime.Version(),
		Date:  time.Now().UTC().Format("2006-01-02 15:04 MST"),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Postgres = "unknown"
	bindir := os.Getenv("STRATA_PG_BIN")
	if bindir == "" {
		if b, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
			bindir = strings.TrimSpace(string(b))
		} else {
			bindir = "/usr/lib/postgresql/15/bin"
		}
	}
	if b, err := exec.CommandContext(ctx, bindir+"/postgres", "--version").Output(); err == nil {
		m.Postgres = strings.TrimSpace(string(b))
	}
	for _, p := range []*string{&m.CPU, &m.Memory, &m.Load, &m.Kernel} {
		if *p == "" {
			*p = "unknown"
		}
	}
	return m
}

// sortResults orders results by package then name, for the full listing.
func sortResults(rs []result) []result {
	out := append([]result(nil), rs...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Pkg != out[j].Pkg {
			return out[i].Pkg < out[j].Pkg
		}
		return false
	})
	return out
}

// failureLines picks what explains a failed go test run out of its output:
// FAIL and panic lines and the test log lines around them.
func failureLines(text string) string {
	var keep []string
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "Benchmark") || t == "FAIL" || strings.HasPrefix(t, "ok ") {
			continue
		}
		if strings.Contains(t, "FAIL") || strings.Contains(t, "panic") || strings.Contains(t, "Error") || strings.Contains(t, "_test.go:") {
			keep = append(keep, t)
		}
	}
	return strings.Join(keep, " | ")
}
