// Package client implements redo.Redoer over gRPC: the pageserver's handle
// on a remote walredo service. Errors come back as the redo sentinels, so
// errors.Is(err, redo.ErrRecordFailed) and friends work across the wire, and
// a *redo.RecordError carries the failing record's LSN (decoded from the
// google.rpc.ErrorInfo detail services/walredo/server attaches; see its
// doc.go for the wire contract).
//
// It does not own the connection: the caller dials it (with credentials
// carrying a pageserverapi token) and closes it.
//
// Concurrency: a Client is safe for concurrent use, as is the
// grpc.ClientConn it wraps.
package client
