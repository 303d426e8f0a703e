package config

import (
	"fmt"
	"os"
	"strings"
)

// SecretFromEnvOrFile reads a secret from the environment variable envVar,
// or from the file named by the environment variable fileEnvVar (trailing
// newlines removed), as design D5 asks: never from flags or config files. It
// returns an empty Secret and no error when neither is set (the caller's
// Validate decides whether the secret is required), and an error wrapping
// ErrSecretConflict when both are set. Errors never contain the secret.
func SecretFromEnvOrFile(envVar, fileEnvVar string) (Secret, error) {
	direct, haveDirect := lookupNonEmpty(envVar)
	file, haveFile := lookupNonEmpty(fileEnvVar)
	switch {
	case haveDirect && haveFile:
		return "", fmt.Errorf("%w: both %s and %s are set", ErrSecretConflict, envVar, fileEnvVar)
	case haveDirect:
		return Secret(direct), nil
	case haveFile:
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("config: reading secret file named by %s: %w", fileEnvVar, err)
		}
		return Secret(strings.TrimRight(string(data), "\r\n")), nil
	}
	return "", nil
}

func lookupNonEmpty(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	v, ok := os.LookupEnv(name)
	return v, ok && v != ""
}
