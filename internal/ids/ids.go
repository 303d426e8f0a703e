package ids

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// Len is the size of an id in bytes.
const Len = 16

// ID is the common representation of tenant and timeline ids.
type ID [Len]byte

// TenantID identifies a tenant.
type TenantID ID

// TimelineID identifies a timeline.
type TimelineID ID

// parse decodes exactly 32 lowercase hex characters.
func parse(kind, s string) (ID, error) {
	var id ID
	if len(s) != 2*Len {
		return id, fmt.Errorf("%w: %s id %q has %d characters, want 32 lowercase hexadecimal characters", ErrInvalid, kind, s, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return id, fmt.Errorf("%w: %s id %q: character %q at %d is not lowercase hexadecimal", ErrInvalid, kind, s, c, i)
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: %s id %q: %v", ErrInvalid, kind, s, err)
	}
	return id, nil
}

func generate() ID {
	var id ID
	// crypto/rand.Read never returns an error on supported platforms (Go
	// 1.24+ documents that it crashes the program instead).
	_, _ = rand.Read(id[:])
	return id
}

// ParseTenantID parses the 32-hex-character form.
func ParseTenantID(s string) (TenantID, error) {
	id, err := parse("tenant", s)
	return TenantID(id), err
}

// ParseTimelineID parses the 32-hex-character form.
func ParseTimelineID(s string) (TimelineID, error) {
	id, err := parse("timeline", s)
	return TimelineID(id), err
}

// NewTenantID returns a random tenant id.
func NewTenantID() TenantID { return TenantID(generate()) }

// NewTimelineID returns a random timeline id.
func NewTimelineID() TimelineID { return TimelineID(generate()) }

// String returns the 32 lowercase hex characters.
func (id TenantID) String() string { return hex.EncodeToString(id[:]) }

// String returns the 32 lowercase hex characters.
func (id TimelineID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether every byte is zero (an unset id).
func (id TenantID) IsZero() bool { return id == TenantID{} }

// IsZero reports whether every byte is zero (an unset id).
func (id TimelineID) IsZero() bool { return id == TimelineID{} }

// MarshalText implements encoding.TextMarshaler.
func (id TenantID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *TenantID) UnmarshalText(b []byte) error {
	v, err := ParseTenantID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (id TimelineID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *TimelineID) UnmarshalText(b []byte) error {
	v, err := ParseTimelineID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
