// Package config owns the helpers every Strata service uses to build its
// configuration (design D9): strict TOML decoding, the value types that
// appear in config structs (Duration, ByteSize, Secret), collection of
// validation problems, the standard load sequence and reading secrets from the
// environment.
//
// The load sequence (Load) is: defaults already in the struct, then the TOML
// file named by -config/--config if any, then command-line flags (flags win),
// then Validate. Unknown TOML keys are errors, so a typo never silently falls
// back to a default. The result is a plain struct value that the service
// copies and passes down; this package keeps no global state.
//
// Secrets never come from TOML files or flags (design D5): Secret refuses to
// be decoded from text and has no flag.Value, and SecretFromEnvOrFile reads
// them from an environment variable or from a file named by one. A Secret
// prints as "[redacted]" through fmt, encoding/json, TOML and log/slog.
//
// ByteSize units are powers of 1024 only, whether spelled the IEC way ("KiB",
// "MiB") or the PostgreSQL way ("kB", "MB"), because postgresql.conf, which
// Strata's users also edit, means 1024*1024 by "MB". Values print in IEC
// units ("64MiB").
//
// It does not define any service's config struct, and does no file watching
// or reloading.
//
// Concurrency: the functions are safe for concurrent use; the value types are
// plain values. Problems is not safe for concurrent use.
package config
