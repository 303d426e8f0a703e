// Package metrics owns the Prometheus plumbing every Strata service shares
// (design D10): a per-process registry (never the global default one, so
// tests can run several services in one process) with the Go and process
// collectors, and the HTTP server that exposes it on /metrics next to a
// liveness endpoint /healthz.
//
// Metric definitions belong to the packages that update them; they register
// on the *prometheus.Registry passed down from Run.
package metrics
