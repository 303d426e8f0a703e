// Package redo is the WAL-redo contract the pageserver consumes: the request
// and result types, the Redoer interface and the errors an implementation
// returns. It owns no processes; services/walredo/pool implements Redoer
// in-process, and the gRPC client will implement it over the network.
//
// A request names one block (tenant, buffer tag), an optional 8 KB base
// image (nil means an all-zero page, for chains that start with a full-page
// image or an init record) and the WAL records to apply, oldest first, each
// with its start and end LSN and its raw bytes including the 24-byte
// XLogRecord header. The end LSN is what redo stamps on the page (the
// MAXALIGNed end of the record, page headers crossed included), so the caller
// must pass the value the WAL decoder computed.
//
// Concurrency: the types are plain values; a Redoer is safe for concurrent
// use. Apply writes the page into a caller-provided 8 KB buffer so the hot
// path allocates no page per request.
package redo
