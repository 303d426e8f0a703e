// Package service owns the scaffolding every Strata service's Run shares:
// the config section common to all services (logging, metrics address, auth),
// building the logger, the Prometheus registry and the authenticator from it,
// and serving the gRPC server and the metrics endpoint under one errgroup
// that stops everything when the context is cancelled or one part fails.
//
// It holds no global state: each call builds fresh objects, so tests can run
// several services in one process.
package service
