package auth

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenFromEnv(t *testing.T) {
	const envVar, fileVar = "STRATA_TEST_TOKEN", "STRATA_TEST_TOKEN_FILE"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("  file.token.value\n"), 0o600))
	emptyFile := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(emptyFile, []byte("\n"), 0o600))
	bigFile := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(bigFile, []byte(strings.Repeat("a", MaxTokenBytes+1)), 0o600))

	for _, tc := range []struct {
		name       string
		env, file  string
		fileVarArg string
		want       string
		wantIs     error
		wantMsg    string
	}{
		{name: "env", env: " env.token.value ", fileVarArg: fileVar, want: "env.token.value"},
		{name: "file", file: tokenFile, fileVarArg: fileVar, want: "file.token.value"},
		{name: "both", env: "x", file: tokenFile, fileVarArg: fileVar, wantMsg: "both STRATA_TEST_TOKEN and STRATA_TEST_TOKEN_FILE are set"},
		{name: "neither", fileVarArg: fileVar, wantIs: ErrNoToken, wantMsg: "set STRATA_TEST_TOKEN or STRATA_TEST_TOKEN_FILE"},
		{name: "neither, no file var", wantIs: ErrNoToken, wantMsg: "set STRATA_TEST_TOKEN"},
		{name: "blank env", env: "   ", fileVarArg: fileVar, wantIs: ErrNoToken, wantMsg: "is blank"},
		{name: "empty file", file: emptyFile, fileVarArg: fileVar, wantIs: ErrNoToken, wantMsg: "is empty"},
		{name: "missing file", file: filepath.Join(dir, "missing"), fileVarArg: fileVar, wantIs: fs.ErrNotExist, wantMsg: fileVar},
		{name: "huge file", file: bigFile, fileVarArg: fileVar, wantMsg: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envVar, tc.env)
			t.Setenv(fileVar, tc.file)
			got, err := TokenFromEnv(envVar, tc.fileVarArg)
			if tc.want != "" {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			require.Error(t, err)
			require.Empty(t, got)
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			require.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}
