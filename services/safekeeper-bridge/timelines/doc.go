// Package timelines owns the set of timelines attached to one bridge
// process: for each, its durable spool, its replication client (package
// replication) and ingest client (package ingest), the lag tracker, and,
// for an attach with import, the base backup: slot first, BASE_BACKUP,
// base.tar staged on disk, streamed into the pageserver's
// ManagementService.ImportBaseBackup, then streaming from the backup's start
// LSN. It persists the timelines attached through the API and restores them
// at start; configured timelines ([[timeline]]) come from the caller.
//
// It does not serve gRPC (package server adapts it), does not interpret WAL
// (design D2), and does not read configuration files.
//
// # On-disk format: attachments.json, version 1
//
// <StateDir>/attachments.json, JSON, replaced atomically with
// internal/durable (temp file, fsync, rename, directory fsync), mode 0600
// because it holds the primaries' connection strings:
//
//	{"version": 1, "timelines": [{"tenant_id": "<32 hex>",
//	  "timeline_id": "<32 hex>", "slot_name": "...",
//	  "primary_conninfo": "...", "import": true, "imported": true,
//	  "start_lsn": "0/2000028"}]}
//
// Spools live in <StateDir>/<tenant>/<timeline>/ (package spool's format);
// a base backup is staged as <StateDir>/<tenant>/.<timeline>.base.tar.tmp-*
// and removed after the import.
//
// # Lag
//
// Status.Lag (metric strata_bridge_lag_seconds) is now minus the moment the
// bridge first learned that the primary's flush LSN had passed the
// pageserver's current last_record_lsn: the age of the oldest WAL the
// primary had flushed that the pageserver has not ingested; 0 when caught
// up. See lagTracker.
//
// # Concurrency
//
// Manager methods may be called from any goroutine. Run owns one goroutine
// per running timeline (each owning an errgroup with the two clients and the
// lag sampler); Detach stops one, and cancelling Run's context stops all,
// after which Run closes the spools. Lock order: Manager.mu before
// timeline.mu.
package timelines
