// Package pgproxy is the compute-facing PostgreSQL-wire front door (design
// D4, D5, D7): computes and tools (psql) connect with a JWT as password and
// speak Neon's page_service commands, which pgproxy turns into gRPC calls on
// the pageserver.
//
// This file set holds only the configuration and Run; the components live in
// the sub-packages (wire, pagestream, session, upstream).
package pgproxy
