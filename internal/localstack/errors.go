package localstack

import "errors"

var (
	// ErrNotInitialized: the directory holds no stack (run `stratactl init`).
	ErrNotInitialized = errors.New("localstack: no stack in directory")
	// ErrExists: init refuses to overwrite an existing stack.
	ErrExists = errors.New("localstack: stack already exists")
	// ErrUnknownService: a service name that is not one of Services.
	ErrUnknownService = errors.New("localstack: unknown service")
	// ErrBinaryNotFound: a service binary is in none of the searched places.
	ErrBinaryNotFound = errors.New("localstack: binary not found")
	// ErrNotReady: a service did not become healthy in time, or exited.
	ErrNotReady = errors.New("localstack: service not ready")
	// ErrUnsupportedFormat: stack.toml has a format_version we cannot read.
	ErrUnsupportedFormat = errors.New("localstack: unsupported stack format")
	// ErrBoot: booting PostgreSQL on a fullbackup failed.
	ErrBoot = errors.New("localstack: boot failed")
)
