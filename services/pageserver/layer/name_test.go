package layer

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

func TestFileNameRoundTrip(t *testing.T) {
	keys := keyspace.Range{Start: relKey(16384, 0x70B6), End: relKey(16384, 0x80B6)}
	tests := []struct {
		name string
		fn   FileName
		text string
	}{
		{"L0 delta", FileName{KindDelta, fullKeys, LSNRange{0x1696070, 0x16960E9}},
			"000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000001696070-00000000016960E9"},
		{"image", FileName{KindImage, keys, LSNRange{0x346BC568, 0x346BC569}},
			keys.String() + "__00000000346BC568"},
		{"delta at LSN 0", FileName{KindDelta, keys, LSNRange{0, 1}}, keys.String() + "__0000000000000000-0000000000000001"},
		{"image at LSN 0", FileName{KindImage, keys, LSNRange{0, 1}}, keys.String() + "__0000000000000000"},
		{"delta to max", FileName{KindDelta, keys, LSNRange{5, ^lsn.LSN(0)}}, keys.String() + "__0000000000000005-FFFFFFFFFFFFFFFF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.text, tc.fn.String())
			got, err := ParseFileName(tc.text)
			require.NoError(t, err)
			require.Equal(t, tc.fn, got)
		})
	}
	require.Equal(t, DeltaFileName(fullKeys, LSNRange{1, 2}), Summary{Kind: KindDelta, Keys: fullKeys, LSNs: LSNRange{1, 2}}.FileName())
	require.Equal(t, ImageFileName(fullKeys, 7), Summary{Kind: KindImage, Keys: fullKeys, LSNs: LSNRange{7, 8}}.FileName())
}

func TestParseFileNameRejects(t *testing.T) {
	k0, k1 := keyspace.Min.String(), keyspace.Max.String()
	good := k0 + "-" + k1 + "__0000000000000001-0000000000000002"
	_, err := ParseFileName(good)
	require.NoError(t, err)
	for _, bad := range []string{
		"",
		"garbage",
		good + "-v1-00000001",
		good + "x",
		"." + good + ".tmp-123",
		k0 + "-" + k1 + "__0000000000000002-0000000000000002",      // empty LSN range
		k0 + "-" + k1 + "__0000000000000003-0000000000000002",      // inverted
		k1 + "-" + k0 + "__0000000000000001-0000000000000002",      // inverted keys
		k0 + "-" + k0 + "__0000000000000001",                       // empty key range
		k0 + "-" + k1 + "__000000000000001-0000000000000002",       // 15 digits
		k0 + "-" + k1 + "__00000000000000001",                      // 17 digits
		k0 + "-" + k1 + "__00000000000000a1",                       // lowercase
		k0 + "-" + k1 + "__000000000000000G",                       // not hex
		k0 + "-" + k1 + "__0000000000000001_0000000000000002",      // wrong separator
		k0 + "_" + k1 + "__0000000000000001",                       // wrong key separator
		k0[:35] + "a-" + k1 + "__0000000000000001",                 // lowercase key
		k0 + "-" + k1 + "__FFFFFFFFFFFFFFFF",                       // image at max LSN
		k0 + "-" + k1 + "___0000000000000001",                      // extra underscore
		k0 + "-" + k1 + "__+000000000000001",                       // sign
		k0 + "-" + k1[:34] + "__0000000000000001-0000000000000002", // short key
	} {
		t.Run(bad, func(t *testing.T) {
			_, err := ParseFileName(bad)
			require.ErrorIs(t, err, ErrInvalidName)
		})
	}
}

func FuzzParseFileName(f *testing.F) {
	keys := keyspace.Range{Start: relKey(16384, 1), End: relKey(16384, 9)}
	f.Add(DeltaFileName(fullKeys, LSNRange{0x1696070, 0x16960E9}))
	f.Add(ImageFileName(keys, 0x346BC568))
	f.Add(ImageFileName(keys, 0))
	f.Add("garbage__")
	f.Add(keys.String() + "__0000000000000001-0000000000000001")
	f.Fuzz(func(t *testing.T, s string) {
		fn, err := ParseFileName(s)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidName)
			return
		}
		require.Equal(t, s, fn.String(), "a parsed name must round-trip")
		require.False(t, fn.Keys.IsEmpty())
		require.False(t, fn.LSNs.IsEmpty())
	})
}
