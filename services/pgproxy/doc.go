// Package pgproxy is the compute-facing PostgreSQL-wire front door (design
// D4, D5, D7): computes and tools (psql) connect with a JWT as password and
// speak Neon's page_service commands, which pgproxy turns into gRPC calls on
// the pageserver, forwarding the client's token.
//
// This file set holds only the configuration and Run, which wires the
// components: wire (protocol server, authentication, limits), session
// (commands, permission checks, pagestream pipelining), pagestream (byte
// formats), upstream (the gRPC connection). Run serves the PostgreSQL-wire
// listener and the metrics endpoint under one errgroup until its context is
// cancelled, then shuts down gracefully (see wire). User documentation:
// docs/pgproxy.md.
//
// internal/fakeps is a test-only stand-in for the pageserver's gRPC
// services.
package pgproxy
