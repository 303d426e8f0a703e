package config

import "errors"

// ErrInvalid is wrapped by the error of Problems.Err: the configuration
// failed validation.
var ErrInvalid = errors.New("config: invalid")

// ErrUnknownKeys is returned (wrapped, naming the file and every key) when a
// TOML file holds keys that the config struct does not have.
var ErrUnknownKeys = errors.New("config: unknown keys")

// ErrDecode is returned (wrapped, with file name and line where known) when a
// TOML file cannot be parsed or a value has the wrong type or format.
var ErrDecode = errors.New("config: cannot decode")

// ErrSyntax is returned (wrapped) by Duration and ByteSize for malformed text.
var ErrSyntax = errors.New("config: invalid value")

// ErrSecretNotAllowed is returned when something tries to set a Secret from
// text (a TOML file): secrets come only from the environment or a secret file.
var ErrSecretNotAllowed = errors.New("config: secrets are read from the environment or a secret file, not from config files or flags")

// ErrSecretConflict is returned by SecretFromEnvOrFile when both the variable
// and the file variable are set.
var ErrSecretConflict = errors.New("config: secret given both directly and as a file")
