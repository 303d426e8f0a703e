// Package grpcserver builds the gRPC server every Strata service runs, so
// that all of them behave alike (design D5, D10; ecosystem.md A5 item 6):
//
//   - interceptors, outermost first: Prometheus server metrics, panic
//     recovery (a panic becomes codes.Internal and is logged with its stack,
//     it never takes the process down), slog logging of failed calls, and
//     authentication (internal/auth: claims in the context; health and
//     reflection stay open);
//   - message-size and concurrent-stream limits, keepalive enforcement;
//   - the standard health service and server reflection;
//   - a codec that is gRPC's protobuf codec, except that a message type
//     implementing RawReceiver receives the request's bytes as gRPC's
//     receive buffers (the pageserver's Ingest feeds WAL from them without
//     the copies of protobuf decoding).
//
// Service adapters register themselves on the returned *grpc.Server before
// Serve. Serve owns the serving goroutine and stops gracefully when its
// context is cancelled.
package grpcserver
