package replication

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

func TestParseTimelineHistory(t *testing.T) {
	// As PostgreSQL 15 writes them (writeTimeLineHistory), with a comment.
	ends, err := parseTimelineHistory([]byte("1\t0/4E99988\tno recovery target specified\n\n# comment\n2\t1/A0000D8\tat restore point \"x\"\n"))
	require.NoError(t, err)
	require.Equal(t, map[uint32]lsn.LSN{1: lsn.MustParse("0/4E99988"), 2: lsn.MustParse("1/A0000D8")}, ends)

	ends, err = parseTimelineHistory(nil)
	require.NoError(t, err)
	require.Empty(t, ends)

	for _, bad := range []string{"1\n", "x\t0/1\treason\n", "0\t0/1\tr\n", "1\tnot-an-lsn\tr\n", "1\t0/1\ta\n1\t0/2\tb\n", "99999999999\t0/1\tr\n"} {
		_, err := parseTimelineHistory([]byte(bad))
		require.Error(t, err, "%q", bad)
	}
}

func FuzzParseTimelineHistory(f *testing.F) {
	f.Add([]byte("1\t0/4E99988\tno recovery target specified\n"))
	f.Add([]byte("# c\n1\t0/1\tr\n2\tFFFFFFFF/FFFFFFFF\tr\n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		ends, err := parseTimelineHistory(content)
		if err != nil {
			return
		}
		for tli := range ends {
			require.NotZero(t, tli)
		}
	})
}
