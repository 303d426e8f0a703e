package layer

import (
	"fmt"
	"strings"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// Layer file names encode the key range and LSN range, as Neon's do
// (neon-anchor.md §5.4), so the layer map can be rebuilt from a directory
// listing:
//
//	delta: <keystart 36 hex>-<keyend 36 hex>__<lsnstart 16 hex>-<lsnend 16 hex>
//	image: <keystart 36 hex>-<keyend 36 hex>__<lsn 16 hex>
//
// Hex digits are uppercase; ParseFileName accepts only this canonical form,
// so a name parses if and only if it round-trips.

const lsnHexLen = 16

// DeltaFileName is the name of a delta layer over keys and lsns.
func DeltaFileName(keys keyspace.Range, lsns LSNRange) string {
	return fmt.Sprintf("%s-%s__%016X-%016X", keys.Start, keys.End, uint64(lsns.Start), uint64(lsns.End))
}

// ImageFileName is the name of an image layer over keys at LSN at.
func ImageFileName(keys keyspace.Range, at lsn.LSN) string {
	return fmt.Sprintf("%s-%s__%016X", keys.Start, keys.End, uint64(at))
}

// FileName is a parsed layer file name.
type FileName struct {
	Kind Kind
	Keys keyspace.Range
	// LSNs is the delta's LSN range, or [lsn, lsn+1) for an image.
	LSNs LSNRange
}

// String returns the canonical name.
func (n FileName) String() string {
	if n.Kind == KindImage {
		return ImageFileName(n.Keys, n.LSNs.Start)
	}
	return DeltaFileName(n.Keys, n.LSNs)
}

// ParseFileName parses a layer file name (the base name, without directory).
// It rejects anything but the canonical form, an empty key range, an empty
// delta LSN range, and an image at the largest LSN (its range would not be
// representable).
func ParseFileName(name string) (FileName, error) {
	var fn FileName
	keysPart, lsnPart, ok := strings.Cut(name, "__")
	if !ok {
		return fn, fmt.Errorf("%w: %q has no \"__\"", ErrInvalidName, name)
	}
	if len(keysPart) != 2*2*keyspace.Size+1 || keysPart[2*keyspace.Size] != '-' {
		return fn, fmt.Errorf("%w: %q: key range must be <36 hex>-<36 hex>", ErrInvalidName, name)
	}
	var err error
	for i, s := range []string{keysPart[:2*keyspace.Size], keysPart[2*keyspace.Size+1:]} {
		if !isUpperHex(s) {
			return fn, fmt.Errorf("%w: %q: key %q is not uppercase hexadecimal", ErrInvalidName, name, s)
		}
		k, perr := keyspace.Parse(s)
		if perr != nil {
			return fn, fmt.Errorf("%w: %q: %v", ErrInvalidName, name, perr)
		}
		if i == 0 {
			fn.Keys.Start = k
		} else {
			fn.Keys.End = k
		}
	}
	if fn.Keys.IsEmpty() {
		return fn, fmt.Errorf("%w: %q: empty key range", ErrInvalidName, name)
	}
	switch len(lsnPart) {
	case lsnHexLen:
		fn.Kind = KindImage
		if fn.LSNs.Start, err = parseLSNHex(lsnPart); err != nil {
			return fn, fmt.Errorf("%w: %q: %v", ErrInvalidName, name, err)
		}
		if fn.LSNs.Start == lsn.LSN(^uint64(0)) {
			return fn, fmt.Errorf("%w: %q: image LSN is the largest LSN", ErrInvalidName, name)
		}
		fn.LSNs.End = fn.LSNs.Start + 1
	case 2*lsnHexLen + 1:
		fn.Kind = KindDelta
		if lsnPart[lsnHexLen] != '-' {
			return fn, fmt.Errorf("%w: %q: LSN range must be <16 hex>-<16 hex>", ErrInvalidName, name)
		}
		if fn.LSNs.Start, err = parseLSNHex(lsnPart[:lsnHexLen]); err != nil {
			return fn, fmt.Errorf("%w: %q: %v", ErrInvalidName, name, err)
		}
		if fn.LSNs.End, err = parseLSNHex(lsnPart[lsnHexLen+1:]); err != nil {
			return fn, fmt.Errorf("%w: %q: %v", ErrInvalidName, name, err)
		}
		if fn.LSNs.IsEmpty() {
			return fn, fmt.Errorf("%w: %q: empty LSN range", ErrInvalidName, name)
		}
	default:
		return fn, fmt.Errorf("%w: %q: LSN part must be 16 hex digits (image) or 16-16 (delta)", ErrInvalidName, name)
	}
	return fn, nil
}

func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func parseLSNHex(s string) (lsn.LSN, error) {
	if len(s) != lsnHexLen || !isUpperHex(s) {
		return 0, fmt.Errorf("LSN %q is not 16 uppercase hexadecimal digits", s)
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= '9' {
			v = v<<4 | uint64(c-'0')
		} else {
			v = v<<4 | uint64(c-'A'+10)
		}
	}
	return lsn.LSN(v), nil
}
