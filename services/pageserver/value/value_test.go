package value

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

func TestRoundTrip(t *testing.T) {
	img := AppendImage(nil, []byte("page"))
	v, err := Decode(img)
	require.NoError(t, err)
	require.Equal(t, KindImage, v.Kind)
	require.Equal(t, []byte("page"), v.Image)
	require.True(t, WillInit(img))

	for _, wi := range []bool{false, true} {
		rec := AppendRecord([]byte("prefix"), lsn.MustParse("1/2"), wi, []byte("raw record"))[len("prefix"):]
		v, err = Decode(rec)
		require.NoError(t, err)
		require.Equal(t, KindRecord, v.Kind)
		require.Equal(t, wi, v.WillInit)
		require.Equal(t, wi, WillInit(rec))
		require.Equal(t, lsn.MustParse("1/2"), v.RecordStart)
		require.Equal(t, []byte("raw record"), v.Record)
	}

	nat := AppendNative(nil, 7, []byte{1, 2})
	v, err = Decode(nat)
	require.NoError(t, err)
	require.Equal(t, KindNative, v.Kind)
	require.Equal(t, uint8(7), v.NativeType)
	require.Equal(t, []byte{1, 2}, v.NativePayload)
	require.False(t, WillInit(nat))
	require.Equal(t, "native", KindNative.String())
	require.Equal(t, "image", KindImage.String())
	require.Equal(t, "record", KindRecord.String())
	require.Equal(t, "kind9", Kind(9).String())
}

func TestCorrupt(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":        nil,
		"one byte":     {0},
		"image flags":  {0, 1},
		"short record": {1, 0, 1, 2},
		"record flags": {1, 2, 0, 0, 0, 0, 0, 0, 0, 0},
		"unknown kind": {9, 0},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(b)
			require.ErrorIs(t, err, ErrCorrupt)
			require.False(t, WillInit(b) && len(b) < 2)
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(AppendImage(nil, []byte("x")))
	f.Add(AppendRecord(nil, 5, true, []byte("r")))
	f.Add(AppendNative(nil, 1, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			return
		}
		var re []byte
		switch v.Kind {
		case KindImage:
			re = AppendImage(nil, v.Image)
		case KindRecord:
			re = AppendRecord(nil, v.RecordStart, v.WillInit, v.Record)
		case KindNative:
			re = AppendNative(nil, v.NativeType, v.NativePayload)
		}
		if string(re) != string(b) {
			t.Fatalf("re-encoding differs: %x vs %x", re, b)
		}
	})
}
