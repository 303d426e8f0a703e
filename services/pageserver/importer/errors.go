package importer

import "errors"

var (
	// ErrUnsupported: the archive holds something Strata cannot import
	// (a user tablespace, another PostgreSQL version, an unknown tar entry
	// type).
	ErrUnsupported = errors.New("importer: unsupported")
	// ErrCorrupt: a file of the archive is malformed (bad backup_label,
	// control file, twophase or relmapper file size, duplicate file).
	ErrCorrupt = errors.New("importer: corrupt input")
	// ErrNoImportLSN: the import LSN cannot be determined (no backup_label
	// before the data files, and no Options.At).
	ErrNoImportLSN = errors.New("importer: import LSN unknown")
	// ErrIncomplete: a required file is missing (pg_control) or the WAL
	// ends before the requested LSN.
	ErrIncomplete = errors.New("importer: incomplete input")
)
