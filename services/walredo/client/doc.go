// Package client implements redo.Redoer over gRPC: the pageserver's handle
// on a remote walredo service. Errors come back as the redo sentinels, so
// errors.Is(err, redo.ErrRecordFailed) and friends work across the wire, and
// a *redo.RecordError carries the failing record's LSN (decoded from the
// google.rpc.ErrorInfo detail services/walredo/server attaches; see its
// doc.go for the wire contract).
//
// Transport: Apply runs on one long-lived bidirectional ApplyStream per
// Client, opened on first use; concurrent callers are multiplexed on it
// with request ids and answered in completion order. Each request carries
// the caller's remaining deadline (the server stops work at it), a caller
// that gives up sends a cancel for its id, and a per-request failure is an
// answer on the stream, not the stream's end. When the stream ends
// (transport failure, server restart or shutdown) the pending calls fail
// with the stream's status, mapped as for a unary call; a call lost with
// an UNAVAILABLE stream is retried once on a new stream (redo has no side
// effects), and the next Apply opens a new stream anyway. WithUnary
// selects one unary Apply per request instead. Mask is always unary.
// LoopbackDialOptions are the transport settings measured for a server on
// the same host.
//
// Allocation: request messages are pooled and reused after Send (gRPC
// marshals in Send); the response page is decoded into a fresh 8 KB buffer
// by protobuf and copied into the caller's page.
//
// It does not own the connection: the caller dials it (with credentials
// carrying a pageserverapi token) and closes it; closing the connection
// ends the stream. Close ends the stream and waits for its receive
// goroutine, the only goroutine a Client owns.
//
// Concurrency: a Client is safe for concurrent use, as is the
// grpc.ClientConn it wraps.
package client
