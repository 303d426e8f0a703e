// Package pgext holds the strata_walredo PostgreSQL extension (C, built with
// PGXS by the Makefile beside this file) and what the Go side must know about
// it: the build id of the source it was compiled with, and a helper that runs
// the build (used by tests and by `make build`).
//
// The build id is the first 16 hex digits of the SHA-256 of
// strata_walredo.c. The Makefile compiles it into the .so; the child reports
// it in its handshake, and services/walredo/process refuses a child whose id
// differs from BuildID(), so a stale .so is caught before any request runs.
//
// The protocol spoken over the child's stdin/stdout is described and
// implemented in services/walredo/process (protocol.go).
package pgext

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed strata_walredo.c
var source []byte

// LibraryName is the file name of the built extension.
const LibraryName = "strata_walredo.so"

// BuildID returns the build id a .so compiled from this source reports.
func BuildID() string {
	sum := sha256.Sum256(source)
	return hex.EncodeToString(sum[:])[:16]
}

// Build runs `make` in srcDir (the directory of this file) with the given
// pg_config and build directory and returns the path of the built library.
// Missing server headers produce an error telling the user to run make deps.
func Build(ctx context.Context, srcDir, buildDir, pgConfig string) (string, error) {
	absBuild, err := filepath.Abs(buildDir)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	args := []string{"-C", srcDir, "BUILD_DIR=" + absBuild}
	if pgConfig != "" {
		args = append(args, "PG_CONFIG="+pgConfig)
	}
	out, err := exec.CommandContext(ctx, "make", args...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "run make deps") || strings.Contains(msg, "postgres.h") {
			return "", fmt.Errorf("%w: PostgreSQL 15 server headers are missing; run make deps (make -C services/walredo/pgext deps): %s", ErrBuild, msg)
		}
		return "", fmt.Errorf("%w: make %s: %v: %s", ErrBuild, strings.Join(args, " "), err, msg)
	}
	lib := filepath.Join(absBuild, LibraryName)
	if _, err := os.Stat(lib); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	return lib, nil
}
