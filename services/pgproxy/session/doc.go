// Package session owns what pgproxy's commands mean: parsing the simple
// queries (ParseCommand: pagestream_v2/v3, basebackup, fullbackup,
// tenant_list, tenant_create, branch_create, timeline_list,
// identify_system, set), the permission check of each against the
// connection's token (design D5: tenant commands need that tenant or
// pageserverapi; tenant_list and tenant_create need pageserverapi), and
// their translation into pageserver gRPC calls carrying the client's token
// (management results as text rows, backups as CopyOut, pagestream as
// CopyBoth).
//
// Pagestream pipelining: a reader decodes requests continuously and queues
// them in order (at most MaxInFlight); a dispatcher folds consecutive
// GetPage requests of the same relation and LSNs (up to MaxBatch) into one
// GetPagesRequest on one shared GetPages stream per connection and sends
// the other requests as unary calls; a writer answers strictly in request
// order and flushes when the next answer is not ready. Failed requests
// (LSN timeout, not found, a broken GetPages stream) are answered with a
// pagestream Error message; the stream stays open, and a broken GetPages
// stream is reopened on the next GetPage.
//
// It does not own the wire protocol or authentication of the connection
// (services/pgproxy/wire), the byte formats (services/pgproxy/pagestream),
// or the gRPC connection (services/pgproxy/upstream).
//
// Concurrency: a Handler is shared by all connections and immutable; each
// HandleQuery call runs on its connection's goroutine, and a pagestream
// starts goroutines that all end before HandleQuery returns.
package session
