// Package bridge is the safekeeper-bridge service: it takes WAL from a
// PostgreSQL 15 primary over physical streaming replication, keeps it in a
// durable spool until the pageserver has persisted it, streams it to the
// pageserver's IngestService, and reports progress to the primary's
// replication slot (design D2, §5). It relays raw WAL and never interprets
// records.
//
// This file set holds only the configuration and Run; the components live in
// the sub-packages (replication, spool, ingest).
package bridge
