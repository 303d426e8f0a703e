package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "": slog.LevelInfo, "warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError} {
		got, err := ParseLevel(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := ParseLevel("loud")
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, `"loud"`)
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "pageserver", "warn", "json")
	require.NoError(t, err)
	l.Info("hidden")
	l.Warn("shown", "tenant_id", "ab")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	require.Equal(t, "shown", rec["msg"])
	require.Equal(t, "pageserver", rec["service"])
	require.Equal(t, "ab", rec["tenant_id"])

	buf.Reset()
	l, err = New(&buf, "", "debug", "text")
	require.NoError(t, err)
	l.Debug("dbg")
	require.Contains(t, buf.String(), "msg=dbg")

	_, err = New(&buf, "x", "info", "xml")
	require.ErrorIs(t, err, ErrInvalid)
	_, err = New(&buf, "x", "nope", "text")
	require.ErrorIs(t, err, ErrInvalid)
	Discard().Error("dropped")
}
