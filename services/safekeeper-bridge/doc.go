// Package bridge is the safekeeper-bridge service: it takes WAL from
// PostgreSQL 15 primaries over physical streaming replication, keeps it in a
// durable spool until the pageserver has persisted it, streams it to the
// pageserver's IngestService, and reports progress to each primary's
// replication slot (design D2, §5). It relays raw WAL and never interprets
// records.
//
// This package holds the configuration, Run, and the wiring of one
// timeline: spool (durable WAL, package spool) ← replication client
// (package replication) and spool → ingest client (package ingest), with
// the ingest client's disk_consistent_lsn fed back to the replication
// client so that the slot never advances past what the pageserver has
// persisted. Package ingesttest is a fake IngestService for tests.
//
// Configuration: one [[timeline]] table per attached timeline (tenant,
// timeline, the name of the environment variable holding the primary's
// connection string, slot name, optional start LSN). The safekeeperdata
// token comes from STRATA_BRIDGE_TOKEN or the file named by
// STRATA_BRIDGE_TOKEN_FILE (design D5).
//
// Failures: each timeline's replication and ingest clients reconnect with
// backoff on their own. A permanent error (WAL gap, missing slot, spool
// corruption, WAL of another system) stops that timeline only; it is kept
// in Status and in the strata_bridge_stopped metric.
//
// Not yet: the BridgeService gRPC API (attach/detach/list/status; the
// gRPC server runs with health and reflection only), BASE_BACKUP streaming
// into ManagementService.ImportBaseBackup, and lag in seconds.
//
// Concurrency: Bridge.Run owns one goroutine per timeline, each owning an
// errgroup with the two clients; all stop when the context is cancelled,
// and Run closes the spools before returning. Status may be called at any
// time.
package bridge
