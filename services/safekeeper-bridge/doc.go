// Package bridge is the safekeeper-bridge service: it takes WAL from
// PostgreSQL 15 primaries over physical streaming replication, keeps it in a
// durable spool until the pageserver has persisted it, streams it to the
// pageserver's IngestService, and reports progress to each primary's
// replication slot (design D2, §5). It relays raw WAL and never interprets
// records.
//
// This package holds the configuration and Run: it builds the pageserver
// client, the set of attached timelines (package timelines: spool ←
// replication client, spool → ingest client, base backup import,
// attachments file, status, metrics) and registers the BridgeService gRPC
// adapter (package server). Package ingesttest is a fake IngestService for
// tests. See docs/bridge.md.
//
// Configuration: one [[timeline]] table per configured timeline (tenant,
// timeline, the name of the environment variable holding the primary's
// connection string, slot name, optional start LSN); timelines attached
// through the API are kept in <spool_dir>/attachments.json (mode 0600) and
// restored at start. The safekeeperdata token comes from
// STRATA_BRIDGE_TOKEN or the file named by STRATA_BRIDGE_TOKEN_FILE
// (design D5).
//
// Failures: each timeline's replication and ingest clients reconnect with
// backoff on their own. A permanent error (WAL gap, missing slot, spool
// corruption, WAL of another system, a failed import) stops that timeline
// only; it is kept in its status and in the strata_bridge_stopped metric.
//
// Concurrency: Bridge.Run runs the timelines (each owned by the Manager,
// stopped on cancel or Detach) until ctx is cancelled, then closes the
// spools and the pageserver connection. Status may be called at any time.
package bridge
