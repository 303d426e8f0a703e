// Package upstream owns pgproxy's gRPC connection to the pageserver: one
// shared client connection (HTTP/2 multiplexes every compute's calls), and
// the per-call credentials that forward each client's own token, so the
// pageserver checks the same token again (design D5, defence in depth).
//
// It does not own authentication of pgproxy's clients (wire), command
// semantics (session), or retries: a failed call is reported to the client,
// which decides.
//
// Concurrency: a Client is safe for concurrent use; Close it once.
package upstream
