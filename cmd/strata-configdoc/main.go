// Command strata-configdoc regenerates the operator reference from the code:
// docs/config-reference.md (every service's TOML keys, flags, defaults and
// meanings, from the config structs) and the metrics table between the
// GENERATED METRICS markers of docs/operations.md (every metric the code
// declares). `go test ./cmd/strata-configdoc` fails when either is stale;
// `go test ./cmd/strata-configdoc -update` or `go run ./cmd/strata-configdoc`
// rewrites them.
//
// Usage:
//
//	strata-configdoc [-root DIR] [-check]
//
// Exit codes: 0 done (or up to date with -check), 1 error, 2 usage, 3 stale
// (-check).
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	fs := flag.NewFlagSet("strata-configdoc", flag.ContinueOnError)
	root := fs.String("root", ".", "a directory inside the repository checkout")
	check := fs.Bool("check", false, "only report whether the documents are stale (exit 3)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "strata-configdoc: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	docs, err := generate(*root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata-configdoc: %v\n", err)
		os.Exit(1)
	}
	stale, err := docs.stale()
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata-configdoc: %v\n", err)
		os.Exit(1)
	}
	if *check {
		for _, p := range stale {
			fmt.Fprintf(os.Stderr, "strata-configdoc: %s is stale: run go run ./cmd/strata-configdoc\n", p)
		}
		if len(stale) > 0 {
			os.Exit(3)
		}
		return
	}
	if err := docs.write(); err != nil {
		fmt.Fprintf(os.Stderr, "strata-configdoc: %v\n", err)
		os.Exit(1)
	}
	for _, p := range stale {
		fmt.Printf("wrote %s\n", p)
	}
}
