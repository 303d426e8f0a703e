package spool

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

// FuzzOpen feeds arbitrary bytes as the newest segment: Open must recover a
// valid prefix or fail with an error, never panic, and whatever it keeps
// must read back.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir, Options{})
	require.NoError(f, err)
	require.NoError(f, s.Append(testStart, []byte("hello, WAL")))
	require.NoError(f, s.Append(testStart+10, make([]byte, 300)))
	_, err = s.Sync()
	require.NoError(f, err)
	require.NoError(f, s.Close())
	valid, err := os.ReadFile(filepath.Join(dir, "0000000100000000.spool"))
	require.NoError(f, err)
	f.Add(valid)
	f.Add(valid[:headerSize])
	f.Add(valid[:len(valid)-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "0000000100000000.spool"), content, 0o600))
		s, err := Open(dir, Options{})
		if err != nil {
			return
		}
		defer s.Close()
		end := s.FlushLSN()
		require.GreaterOrEqual(t, end, testStart)
		if end > testStart {
			rd, err := s.NewReader(testStart)
			require.NoError(t, err)
			defer rd.Close()
			for rd.Pos() < end {
				_, err := rd.Next(context.Background())
				require.NoError(t, err)
			}
		}
		require.NoError(t, s.Append(end, []byte("x")))
		_, err = s.Sync()
		require.NoError(t, err)
		require.Equal(t, end+lsn.LSN(1), s.FlushLSN())
	})
}
