package metadata

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
)

func sample() Metadata {
	anc, _ := ids.ParseTimelineID("00112233445566778899aabbccddeeff")
	return Metadata{
		AncestorTimeline:  anc,
		AncestorLSN:       lsn.MustParse("0/16B5A50"),
		DiskConsistentLSN: lsn.MustParse("1/2000028"),
		PrevRecordLSN:     lsn.MustParse("1/2000000"),
		StartLSN:          lsn.MustParse("0/14EE1D0"),
		LatestGCCutoffLSN: lsn.MustParse("0/1000000"),
		PGVersion:         15,
		CreatedAt:         time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC),
	}
}

func TestRoundTrip(t *testing.T) {
	root := sample()
	root.AncestorTimeline = ids.TimelineID{}
	root.AncestorLSN = lsn.Invalid
	noTime := sample()
	noTime.CreatedAt = time.Time{}
	local := sample()
	local.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		in   Metadata
	}{
		{"branch", sample()},
		{"root", root},
		{"zero created-at", noTime},
		{"non-UTC created-at", local},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.in)
			require.NoError(t, err)
			require.Len(t, b, Size)
			got, err := Decode(b)
			require.NoError(t, err)
			require.True(t, tt.in.CreatedAt.Equal(got.CreatedAt))
			want := tt.in
			want.CreatedAt, got.CreatedAt = time.Time{}, time.Time{}
			require.Equal(t, want, got)
		})
	}
}

// TestLayout pins the byte layout documented in doc.go.
func TestLayout(t *testing.T) {
	m := sample()
	b, err := Encode(m)
	require.NoError(t, err)
	le := binary.LittleEndian
	require.Equal(t, []byte("STLM"), b[0:4])
	require.Equal(t, uint16(1), le.Uint16(b[4:]))
	require.Equal(t, uint16(80), le.Uint16(b[6:]))
	require.Equal(t, m.AncestorTimeline[:], b[8:24])
	require.Equal(t, uint64(m.AncestorLSN), le.Uint64(b[24:]))
	require.Equal(t, uint64(m.DiskConsistentLSN), le.Uint64(b[32:]))
	require.Equal(t, uint64(m.PrevRecordLSN), le.Uint64(b[40:]))
	require.Equal(t, uint64(m.StartLSN), le.Uint64(b[48:]))
	require.Equal(t, uint64(m.LatestGCCutoffLSN), le.Uint64(b[56:]))
	require.Equal(t, uint32(15), le.Uint32(b[64:]))
	require.Equal(t, uint64(m.CreatedAt.UnixNano()), le.Uint64(b[68:]))
	require.Equal(t, crc32.Checksum(b[:76], crc32.MakeTable(crc32.Castagnoli)), le.Uint32(b[76:]))
}

func TestEncodeInvalid(t *testing.T) {
	noLSN := sample()
	noLSN.AncestorLSN = lsn.Invalid
	noAncestor := sample()
	noAncestor.AncestorTimeline = ids.TimelineID{}
	noVersion := sample()
	noVersion.PGVersion = 0
	for name, m := range map[string]Metadata{"ancestor without LSN": noLSN, "LSN without ancestor": noAncestor, "PG version 0": noVersion} {
		t.Run(name, func(t *testing.T) {
			_, err := Encode(m)
			require.ErrorIs(t, err, ErrInvalid)
			err = Write(t.TempDir(), m)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

// reseal recomputes the checksum so that a test reaches the check after it.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[76:], crc32.Checksum(b[:76], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestDecodeCorrupt(t *testing.T) {
	good, err := Encode(sample())
	require.NoError(t, err)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name, errPart string
		in            []byte
	}{
		{"empty", "0 bytes", nil},
		{"short", "79 bytes", good[:79]},
		{"long", "81 bytes", append(bytes.Clone(good), 0)},
		{"magic", "bad magic", mut(func(b []byte) []byte { b[0] = 'X'; return reseal(b) })},
		{"version", "unsupported format version 2", mut(func(b []byte) []byte { b[4] = 2; return reseal(b) })},
		{"length field", "length field 81", mut(func(b []byte) []byte { b[6] = 81; return reseal(b) })},
		{"flipped data byte", "checksum", mut(func(b []byte) []byte { b[33] ^= 0x01; return b })},
		{"flipped crc byte", "checksum", mut(func(b []byte) []byte { b[79] ^= 0x80; return b })},
		{"ancestor LSN without ancestor", "both must be set", mut(func(b []byte) []byte { clear(b[8:24]); return reseal(b) })},
		{"PG version 0", "PostgreSQL version is 0", mut(func(b []byte) []byte { clear(b[64:68]); return reseal(b) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.in)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tt.errPart)
		})
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	_, err := Read(dir)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, Path(dir))

	m := sample()
	require.NoError(t, Write(dir, m))
	got, err := Read(dir)
	require.NoError(t, err)
	require.True(t, m.CreatedAt.Equal(got.CreatedAt))

	m.DiskConsistentLSN = lsn.MustParse("2/0")
	require.NoError(t, Write(dir, m))
	got, err = Read(dir)
	require.NoError(t, err)
	require.Equal(t, m.DiskConsistentLSN, got.DiskConsistentLSN)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temp file left behind")
	info, err := entries[0].Info()
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), info.Mode().Perm())

	// A flipped byte on disk is reported with the file's name.
	b, err := os.ReadFile(Path(dir))
	require.NoError(t, err)
	b[40] ^= 0xff
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), b, 0o600))
	_, err = Read(dir)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, Path(dir))
}

func FuzzDecode(f *testing.F) {
	good, err := Encode(sample())
	require.NoError(f, err)
	root := sample()
	root.AncestorTimeline, root.AncestorLSN = ids.TimelineID{}, 0
	rootBytes, err := Encode(root)
	require.NoError(f, err)
	f.Add(good)
	f.Add(rootBytes)
	f.Add([]byte{})
	f.Add(good[:40])
	f.Add(append(bytes.Clone(good), 1, 2, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		// Anything accepted must re-encode to exactly the same bytes.
		back, err := Encode(m)
		require.NoError(t, err)
		require.Equal(t, b, back)
	})
}

func BenchmarkEncode(b *testing.B) {
	m := sample()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	buf, err := Encode(sample())
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineChecksum is the floor under Encode and Decode: one
// CRC-32C over the 76 checksummed bytes.
func BenchmarkBaselineChecksum(b *testing.B) {
	buf := make([]byte, offCRC)
	b.ReportAllocs()
	for b.Loop() {
		_ = crc32.Checksum(buf, castagnoli)
	}
}
