// Package server is the thin gRPC adapter of WalRedoService
// (proto/strata/walredo/v1): it authorises the caller, validates and
// converts the request, calls the pool (services/walredo/pool, or any
// Backend) and maps the pool's errors to gRPC status codes in status.go.
//
// It owns no processes and no policy: pooling, retries and deadlines belong
// to the pool. It does not own the transport either (internal/grpcserver
// builds the gRPC server and authenticates calls; this package only checks
// that the caller holds the pageserverapi scope, the pageserver's token).
//
// Wire contract for errors (the client in services/walredo/client relies on
// it): every error the backend returns carries a google.rpc.ErrorInfo detail
// with Domain ErrorDomain, a Reason naming the redo sentinel
// (ReasonRecordFailed, ...) and, for record failures and crashes, the
// metadata keys MetaRecordLSN ("X/Y", absent when unknown) and MetaDetail
// (PostgreSQL's message). Generic gRPC clients can rely on the codes alone;
// the message also names the LSN.
//
// Buffers: the response page must stay untouched until gRPC has marshalled
// it, which happens after the handler returns, and grpcserver offers no hook
// after that point, so a pooled buffer cannot be handed out as the response.
// Instead the handler redoes into a pooled scratch page and copies the
// result into the request's own base-image bytes (owned by the decoded
// request, which nobody else references), so a request with a base image
// allocates no page. A request without one allocates exactly the response
// page. The scratch is never aliased with the base image because the pool
// retries a crashed request with the same base.
//
// ApplyStream (stream.go) is Apply pipelined: each request of a stream runs
// in its own goroutine (at most MaxInFlightPerStream at once; past that the
// server stops reading and HTTP/2 flow control pushes back), answers go out
// in completion order under the stream's one send lock, and an error is an
// ApplyStreamError answer carrying the code, message, reason, record LSN
// and detail that statusError would put in a unary status. Because Send
// marshals before it returns, a stream's answers are sent straight from the
// pooled scratch page: streaming allocates no response page. A request
// with timeout_micros runs under that deadline; a cancel message cancels
// its context. The handler always waits for the requests it started before
// returning.
//
// Shutdown: an open stream would hold a graceful gRPC stop for its whole
// timeout, so Drain (called by walredo.Run when shutdown begins) makes
// every stream answer what is running and end with UNAVAILABLE / CLOSED.
//
// Concurrency: a Server is safe for concurrent use; it holds no per-call
// state outside sync.Pools and the state of each open stream.
package server
