// Package configdoc generates the operator reference documents from the code
// itself, so they cannot drift from it:
//
//   - the configuration reference (docs/config-reference.md): every TOML key
//     of every service, found by reflecting over the service's config struct
//     at run time (toml tags, embedded sections, [[tables]]), with its flag
//     (found by calling the struct's RegisterFlags and matching each flag's
//     target address to a field), its default (the value in DefaultConfig()),
//     and its meaning (the field's doc comment, read with go/parser from the
//     package's source files); plus the environment variables the service
//     package declares (exported string constants named *Env);
//   - the metric inventory: every Prometheus metric the code declares,
//     found by scanning the source with go/ast for prometheus.*Opts literals
//     (literal or constant names, and names passed to local constructor
//     closures), so dashboards and docs can be checked against it.
//
// It does not know which services exist (cmd/strata-configdoc lists them),
// does not write files (callers pass an io.Writer), and runs no service.
//
// Source files are located from the module root (the directory holding
// go.mod) and the package import path, so the generator and its tests must
// run inside a checkout of the repository.
//
// Concurrency: functions keep no state between calls and are safe for
// concurrent use. There is no on-disk format.
package configdoc
