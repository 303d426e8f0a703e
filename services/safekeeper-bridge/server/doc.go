// Package server is the thin gRPC adapter of the safekeeper-bridge's
// BridgeService (proto strata.bridge.v1): it checks the caller's token
// scope (pageserverapi), converts requests and statuses, and maps the
// bridge's errors to gRPC codes in one place (status.go, with errors.Is).
// All behaviour lives in package timelines.
//
// It never returns or logs a primary's connection string.
//
// Concurrency: the adapter holds no state; calls may run concurrently.
package server
