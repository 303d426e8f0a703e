// Package pool runs per-tenant sets of WAL-redo children
// (services/walredo/process) and implements redo.Redoer on top of them.
//
// Rules it enforces:
//   - tenants never share a child: each tenant has its own set, at most
//     MaxChildrenPerTenant strong;
//   - at most MaxChildren children exist in total; when the cap is reached a
//     tenant that needs a child takes the place of another tenant's least
//     recently used idle child, or waits for one to become idle;
//   - idle children are stopped after IdleTimeout;
//   - a request that crashed its child is retried once on another (fresh)
//     child; a second crash fails the request with the record LSN the
//     child named in its last words. Consecutive crashes of a tenant delay
//     its next spawn with exponential backoff (the first respawn is
//     immediate, so the retry is not delayed);
//   - a request past its deadline kills its child and fails with
//     redo.ErrTimeout (no retry: a hung record would hang again).
//
// It does not own the template or the children's protocol (process), nor
// the network (the gRPC server wraps a Pool).
//
// Concurrency: all methods are safe for concurrent use. The pool owns one
// reaper goroutine and one goroutine per child being closed; Close stops
// them all, kills children serving requests and waits for everything.
package pool
