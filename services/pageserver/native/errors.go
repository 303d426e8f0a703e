package native

import "errors"

var (
	// ErrCorrupt marks a payload that does not decode (wrong length, counts
	// that do not match the bytes, values PostgreSQL never writes).
	ErrCorrupt = errors.New("native: corrupt payload")
	// ErrUnknownSubtype is returned for a subtype this version does not know.
	ErrUnknownSubtype = errors.New("native: unknown record subtype")
	// ErrWrongPage means the record addresses another page than the key it
	// is applied under, or the key is of the wrong kind.
	ErrWrongPage = errors.New("native: record does not belong to this page")
	// ErrBadPage means the base page is not a whole 8 KB page.
	ErrBadPage = errors.New("native: base page is not BLCKSZ bytes")
)
