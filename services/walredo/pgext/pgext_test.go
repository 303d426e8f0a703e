package pgext_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/services/walredo/pgext"
)

// The Makefile stamps sha256(strata_walredo.c)[:16 hex]; BuildID must agree.
func TestBuildIDMatchesSource(t *testing.T) {
	src, err := os.ReadFile("strata_walredo.c")
	require.NoError(t, err)
	sum := sha256.Sum256(src)
	require.Equal(t, hex.EncodeToString(sum[:])[:16], pgext.BuildID())
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{16}$`), pgext.BuildID())
}

func TestBuildReportsMissingHeaders(t *testing.T) {
	_, err := pgext.Build(t.Context(), ".", t.TempDir(), "/nonexistent/pg_config")
	require.ErrorIs(t, err, pgext.ErrBuild)
	require.Contains(t, err.Error(), "run make deps")
}
