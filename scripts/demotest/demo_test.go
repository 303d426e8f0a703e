package demotest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMakeDemo runs `make demo` and requires exit 0, the dropped table back
// on the branch with all its rows, and each timed step reported.
func TestMakeDemo(t *testing.T) {
	if os.Getenv("STRATA_DEMO_TEST") != "1" {
		t.Skip("set STRATA_DEMO_TEST=1 to run `make demo` (about a minute; starts PostgreSQL and the stack)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	start := time.Now()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "demo")
	cmd.Dir = root
	// KEEP=1 would leave servers running after the test.
	cmd.Env = append(os.Environ(), "KEEP=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("make demo took %s; output:\n%s", time.Since(start).Round(time.Second), out.String())
	require.NoError(t, err)

	s := out.String()
	require.Contains(t, s, "customers is back on the branch: 10000 rows")
	// The side-by-side row: dropped on the primary, all rows on the branch.
	require.Regexp(t, regexp.MustCompile(`(?m)^\s+customers\s+\(dropped\)\s+10000$`), s)
	require.Regexp(t, regexp.MustCompile(`Times: attach [0-9.]+ s, branch creation [0-9.]+ s, boot [0-9.]+ s`), s)
	require.Less(t, time.Since(start), 5*time.Minute, "make demo must finish in under 5 minutes once packages are installed")
}
