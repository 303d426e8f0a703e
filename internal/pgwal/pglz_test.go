package pgwal

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPGLZDecompress(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  []byte
		want []byte
	}{
		{"literals", []byte{0x00, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0x00, 'i'}, []byte("abcdefghi")},
		// "1234" then a match of length 16 at offset 4: the doubling copy of
		// the C code's comment.
		{"overlapping-match", []byte{0x20, '1', '1', '2', '3', '4', 0x0d, 0x04}, []byte("112341234123412341234")},
		// period-1 run: 'x' then a match of 18+200 at offset 1.
		{"long-run", []byte{0x02, 'x', 0x0f, 0x01, 200}, bytes.Repeat([]byte{'x'}, 219)},
		// match with a 12-bit offset: high nibble of the first byte.
		{"far-match", append(append([]byte{0x00}, []byte("abcdefgh")...), pglzFar()...), pglzFarWant()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, len(tc.want))
			require.NoError(t, pglzDecompress(tc.src, dst))
			require.Equal(t, tc.want, dst)
		})
	}
}

// pglzFar encodes 0x100 more literal bytes then a match 0x108 back.
func pglzFar() []byte {
	var out []byte
	for i := 0; i < 0x100; i += 8 {
		out = append(out, 0x00)
		for j := range 8 {
			out = append(out, byte(i+j))
		}
	}
	return append(out, 0x01, 0x10|0x05, 0x08) // len 8, offset 0x108
}

func pglzFarWant() []byte {
	want := []byte("abcdefgh")
	for i := range 0x100 {
		want = append(want, byte(i))
	}
	return append(want, []byte("abcdefgh")...)
}

func TestPGLZDecompressErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  []byte
		n    int
	}{
		{"offset-zero", []byte{0x03, 'a', 0x00, 0x00}, 4},
		{"offset-before-start", []byte{0x02, 'a', 0x00, 0x05}, 4},
		{"truncated-tag", []byte{0x02, 'a', 0x00}, 4},
		{"truncated-extension", []byte{0x02, 'a', 0x0f, 0x01}, 40},
		{"output-short", []byte{0x00, 'a', 'b'}, 3},
		{"input-left-over", []byte{0x00, 'a', 'b', 'c'}, 2},
		{"empty", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, pglzDecompress(tc.src, make([]byte, tc.n)), errPGLZ)
		})
	}
}
