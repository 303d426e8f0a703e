package config

import (
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as Go duration text in TOML and flags
// ("250ms", "5m", "1h30m"). A bare number without unit is rejected (except
// "0"), so "5" is never silently 5 nanoseconds.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does ("5m0s"); the text parses back.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error { return d.Set(string(b)) }

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%w: duration %q (want e.g. \"250ms\", \"5m\", \"1h30m\")", ErrSyntax, s)
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a size in bytes written with an optional binary unit in TOML
// and flags: "4096", "4096B", "8KiB", "64MiB", "1GiB", "2TiB", or the
// PostgreSQL spellings "8kB", "64MB", "1GB", "2TB", which also mean powers of
// 1024 (see the package documentation). Units are case-insensitive, may be
// separated from the number by spaces, and the number is a non-negative
// integer. A TOML integer is taken as bytes.
type ByteSize uint64

// Byte size units.
const (
	Byte ByteSize = 1
	KiB           = 1024 * Byte
	MiB           = 1024 * KiB
	GiB           = 1024 * MiB
	TiB           = 1024 * GiB
	PiB           = 1024 * TiB
)

var byteUnits = []struct {
	names []string // lower case
	size  ByteSize
	iec   string
}{
	{[]string{"pib", "pb"}, PiB, "PiB"},
	{[]string{"tib", "tb"}, TiB, "TiB"},
	{[]string{"gib", "gb"}, GiB, "GiB"},
	{[]string{"mib", "mb"}, MiB, "MiB"},
	{[]string{"kib", "kb"}, KiB, "KiB"},
	{[]string{"b", ""}, Byte, "B"},
}

// ParseByteSize parses the text forms described on ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	text := strings.TrimSpace(s)
	end := 0
	for end < len(text) && text[end] >= '0' && text[end] <= '9' {
		end++
	}
	if end == 0 {
		return 0, fmt.Errorf("%w: byte size %q (want e.g. \"4096\", \"8KiB\", \"64MiB\", \"1GiB\")", ErrSyntax, s)
	}
	n, err := strconv.ParseUint(text[:end], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: byte size %q is too large", ErrSyntax, s)
	}
	unit := strings.ToLower(strings.TrimSpace(text[end:]))
	for _, u := range byteUnits {
		for _, name := range u.names {
			if unit != name {
				continue
			}
			hi, lo := bits.Mul64(n, uint64(u.size))
			if hi != 0 {
				return 0, fmt.Errorf("%w: byte size %q is too large", ErrSyntax, s)
			}
			return ByteSize(lo), nil
		}
	}
	return 0, fmt.Errorf("%w: byte size %q has unknown unit %q (want B, KiB, MiB, GiB, TiB, PiB)", ErrSyntax, s, text[end:])
}

// String formats b in the largest IEC unit that divides it exactly: "64MiB",
// "1536KiB", "1000B", "0B". The text parses back to b.
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	for _, u := range byteUnits {
		if b%u.size == 0 {
			return strconv.FormatUint(uint64(b/u.size), 10) + u.iec
		}
	}
	return strconv.FormatUint(uint64(b), 10) + "B" // unreachable: Byte divides everything
}

// Bytes returns b as a uint64.
func (b ByteSize) Bytes() uint64 { return uint64(b) }

// Int returns b as an int, capped at math.MaxInt, for APIs that take int sizes.
func (b ByteSize) Int() int {
	if uint64(b) > math.MaxInt {
		return math.MaxInt
	}
	return int(b)
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error { return b.Set(string(text)) }

// Set implements flag.Value.
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

const redacted = "[redacted]"

// Secret is a credential (a JWT, a password). Every way of printing it —
// fmt verbs including %#v, encoding/json, TOML, log/slog — shows
// "[redacted]" (or "" when empty); only Value returns the real text. It
// cannot be decoded from text, so a Secret field in a TOML file is an error:
// use SecretFromEnvOrFile.
type Secret string

// Value returns the secret itself. Call it only where the secret is used.
func (s Secret) Value() string { return string(s) }

// IsSet reports whether the secret is not empty.
func (s Secret) IsSet() bool { return s != "" }

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format keeps every fmt verb (%v, %s, %q, %x, %d, ...) from printing the secret.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		_, _ = f.Write([]byte(strconv.Quote(s.String())))
	case 'v':
		if f.Flag('#') {
			_, _ = f.Write([]byte(s.GoString()))
			return
		}
		_, _ = f.Write([]byte(s.String()))
	default:
		_, _ = f.Write([]byte(s.String()))
	}
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler (used by encoding/json and
// TOML encoders): it returns the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText always fails with ErrSecretNotAllowed: secrets are not read
// from config files (design D5).
func (s *Secret) UnmarshalText([]byte) error { return ErrSecretNotAllowed }
