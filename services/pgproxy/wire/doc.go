// Package wire owns pgproxy's PostgreSQL v3 protocol server (design D4): the
// accept loop, per-connection limits, the start-up handshake (SSLRequest and
// GSSENCRequest answered 'N', or TLS when a certificate is configured;
// StartupMessage with application_name and `options=-c
// neon.compute_mode=...`), authentication (trust, or jwt: the cleartext
// password is a JWT verified with internal/auth, design D5), the simple-query
// loop, and the mapping of errors to ErrorResponse with a SQLSTATE.
//
// It does not own what a query means: each simple query is handed to a
// Handler (services/pgproxy/session), which may also take the connection
// over for a sub-protocol (CopyBoth pagestream, CopyOut backups) through
// the Conn it receives.
//
// Error codes (Error.Code): XX000 internal, 28P01 authentication failed,
// 28000 not allowed, 42601 syntax, 08006 the client must reconnect, 08P01
// protocol violation, 0A000 unsupported, 53300 too many connections, 57P01
// shutdown.
//
// Limits: MaxConnections (beyond it a client gets 53300 and is closed),
// MaxMessageBytes (any larger frontend message closes the connection),
// StartupTimeout (start-up and authentication must finish within it),
// IdleTimeout (between queries), WriteTimeout (per flush).
//
// Concurrency and shutdown: one goroutine per connection, owned by Serve,
// plus one watcher per connection that unblocks its reads on shutdown. When
// Serve's context is cancelled it stops accepting; connections waiting for a
// query get 57P01 and are closed; a Handler busy with a command sees its
// context cancelled and its reads unblocked, and has ShutdownTimeout to
// finish before its connection is closed under it. Serve returns after every
// connection goroutine has exited. A Conn is used by one Handler call at a
// time; within it, one goroutine may Receive while another sends (pgproto3
// keeps the read and write sides apart), which is what pagestream
// pipelining does.
package wire
