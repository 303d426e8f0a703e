package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// ErrInvalid is returned (wrapped) for an unknown level or format.
var ErrInvalid = errors.New("logging: invalid setting")

// Formats accepted by New.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// ParseLevel parses "debug", "info", "warn" or "error" (case-insensitive).
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w: level %q (want debug, info, warn or error)", ErrInvalid, s)
}

// New returns a logger writing to w. The service name is attached to every
// record so that logs of a local stack can be told apart.
func New(w io.Writer, service, level, format string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch strings.ToLower(format) {
	case FormatText, "":
		h = slog.NewTextHandler(w, opts)
	case FormatJSON:
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("%w: format %q (want text or json)", ErrInvalid, format)
	}
	l := slog.New(h)
	if service != "" {
		l = l.With("service", service)
	}
	return l, nil
}

// Discard returns a logger that drops everything (for tests and tools).
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
