package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// DecodeFile decodes the TOML file at path into dst (a pointer to a struct),
// strictly: see Decode. Errors name the file.
func DecodeFile(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: reading config file: %w", err)
	}
	return Decode(data, path, dst)
}

// Decode decodes TOML data into dst (a pointer to a struct). Fields absent
// from data keep their current values, so dst should already hold the
// defaults. Keys that dst has no field for are an error wrapping
// ErrUnknownKeys that lists all of them ("server.listen_addr"); syntax and
// type errors wrap ErrDecode and carry "source:line:column" when the TOML
// library reports a position. source names data in errors (a file name).
func Decode(data []byte, source string, dst any) error {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(dst)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			key := ""
			if pe.LastKey != "" {
				key = fmt.Sprintf(" (key %s)", pe.LastKey)
			}
			return fmt.Errorf("%w %s:%d:%d%s: %s", ErrDecode, source, pe.Position.Line, pe.Position.Col, key, pe.Message)
		}
		// Type mismatches are plain errors that already say
		// "toml: line N (last key ...)".
		return fmt.Errorf("%w %s: %w", ErrDecode, source, err)
	}
	if unknown := unknownKeys(md); len(unknown) > 0 {
		return fmt.Errorf("%w in %s: %s", ErrUnknownKeys, source, strings.Join(unknown, ", "))
	}
	return nil
}

// unknownKeys lists the undecoded keys in file order. A whole unknown table
// is reported once, as "name (table)", rather than with every key inside it.
func unknownKeys(md toml.MetaData) []string {
	undecoded := md.Undecoded()
	if len(undecoded) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(undecoded))
	var out []string
	for _, k := range undecoded {
		seen[k.String()] = true
		if len(k) > 1 && seen[k[:len(k)-1].String()] {
			continue // inside an unknown table already reported
		}
		name := k.String()
		if t := md.Type(k...); t == "Hash" || t == "ArrayHash" {
			name += " (table)"
		}
		out = append(out, name)
	}
	return out
}
