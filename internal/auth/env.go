package auth

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// TokenFromEnv returns the token a service presents to others. It is read
// from the environment variable envVar or, if that is unset or empty, from
// the file named by the environment variable fileEnvVar (e.g.
// STRATA_AUTH_TOKEN and STRATA_AUTH_TOKEN_FILE). Surrounding whitespace is
// trimmed. Tokens are never taken from command lines, which other users can
// read (design D5).
//
// Setting both variables is an error, so that a forgotten variable cannot
// silently shadow the intended one. Setting neither returns an error
// wrapping ErrNoToken, which callers in trust mode may ignore.
func TokenFromEnv(envVar, fileEnvVar string) (string, error) {
	direct := os.Getenv(envVar)
	file := ""
	if fileEnvVar != "" {
		file = os.Getenv(fileEnvVar)
	}
	switch {
	case direct != "" && file != "":
		return "", fmt.Errorf("auth: both %s and %s are set; set only one", envVar, fileEnvVar)
	case direct != "":
		token := strings.TrimSpace(direct)
		if token == "" {
			return "", fmt.Errorf("%w: %s is blank", ErrNoToken, envVar)
		}
		return token, nil
	case file != "":
		return tokenFromFile(file, fileEnvVar)
	case fileEnvVar != "":
		return "", fmt.Errorf("%w: set %s or %s", ErrNoToken, envVar, fileEnvVar)
	default:
		return "", fmt.Errorf("%w: set %s", ErrNoToken, envVar)
	}
}

func tokenFromFile(path, fileEnvVar string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("auth: token file from %s: %w", fileEnvVar, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("auth: token file %s: %w", path, err)
	}
	if len(data) > MaxTokenBytes {
		return "", fmt.Errorf("auth: token file %s is larger than %d bytes", path, MaxTokenBytes)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("%w: token file %s is empty", ErrNoToken, path)
	}
	return token, nil
}
