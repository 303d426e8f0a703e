// Package pagestream owns the byte formats of Neon's pagestream
// sub-protocol (versions 2 and 3), the messages a compute exchanges with
// page_service inside CopyData frames after `pagestream_vN <tenant>
// <timeline>` (reference neon-anchor.md §1.4–§1.6, design D7).
//
// Every integer is big-endian. A request is a 1-byte tag, a header (V2:
// request_lsn, not_modified_since; V3: reqid, request_lsn,
// not_modified_since) and a body that depends on the tag. A V2 response is a
// tag and a payload; a V3 response echoes the request's header and body
// before its payload, except Error, which echoes the header only.
//
// DecodeRequest and AppendResponse are the server side (pgproxy);
// AppendRequest and DecodeResponse are the compute side, used by Client and
// by tests. Decoders never panic and never allocate more than the input
// they are given: they are fuzzed.
//
// It does not own the libpq framing around the messages (services/pgproxy/wire
// and Client), the LSN semantics (the pageserver applies them), nor the
// mapping to gRPC (services/pgproxy/session).
//
// Concurrency: the codec functions are pure. A Client serializes its own
// sends and receives (see Client).
package pagestream
