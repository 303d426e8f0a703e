// Command strata-bench runs every benchmark in the tree (each beside its
// baseline, in the same `go test` process) and rewrites bench/RESULTS.md:
// one summary table — metric, Strata, baseline measured in the same run,
// ratio, target met or not — the machine it ran on, the exact command, and
// every benchmark line of the run. Everything below the marker line
// ("<!-- strata-bench: detailed sections below are kept -->") in the existing
// file is kept verbatim: the per-issue write-ups.
//
// It owns only the go test child processes it starts, one package at a
// time, and stops them when its context is cancelled (Ctrl-C).
//
//	go run ./cmd/strata-bench            # what `make bench` runs
//	go run ./cmd/strata-bench -pkg ./internal/lsn/ -o /tmp/r.md
package main
