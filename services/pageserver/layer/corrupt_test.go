package layer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// smallLayerEntries has values that stay inside a block, cross one
// boundary and cross several, plus an empty one.
func smallLayerEntries() []entry {
	big := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*31)
		}
		return b
	}
	return []entry{
		{relKey(16384, 1), 0x10, []byte("small")},
		{relKey(16384, 1), 0x20, big(8192+10, 1)},
		{relKey(16384, 2), 0x10, big(300, 2)},
		{relKey(16384, 3), 0x30, big(20000, 3)},
		{relKey(16384, 4), 0x40, nil},
	}
}

var smallLSNs = LSNRange{0x10, 0x50}

// probeKeys are the keys a corruption check reads: every stored key and
// absent ones around them.
var probeKeys = []keyspace.Key{relKey(16384, 0), relKey(16384, 1), relKey(16384, 2), relKey(16384, 3), relKey(16384, 4), relKey(16384, 5)}

// readEverything opens the layer held in data and reads it every way; it
// returns the errors it saw and fails the test on any wrong data. Between
// them the reads touch every block of the file.
func readEverything(t *testing.T, name string, data []byte, blocks uint32, kind Kind, es []entry) []error {
	t.Helper()
	ctx := context.Background()
	r, err := Open(ctx, name, memBlockReader{data}, blocks)
	if err != nil {
		return []error{err}
	}
	var errs []error
	// Comparisons are by hand (require.Equal is too slow for ~10^5 runs);
	// a mismatch fails through require with the details.
	it := r.Iter()
	i := 0
	for it.Next(ctx) {
		if i >= len(es) || it.Key() != es[i].key || it.LSN() != es[i].lsn || !bytes.Equal(it.Value(), es[i].value) {
			require.Failf(t, "iterator returned wrong data without error", "entry %d", i)
		}
		i++
	}
	if err := it.Err(); err != nil {
		errs = append(errs, err)
	} else if i != len(es) {
		require.Failf(t, "iterator returned a wrong number of entries without error", "%d, want %d", i, len(es))
	}
	it.Close()
	lsns := r.Summary().LSNs
	for _, k := range probeKeys {
		want := modelVersions(es, k, LSNRange{0, ^lsn.LSN(0)})
		vs, err := r.Versions(ctx, k, LSNRange{0, ^lsn.LSN(0)})
		if err != nil {
			errs = append(errs, err)
		} else if !sameVersions(want, vs) {
			require.Equal(t, normalize(want), normalize(vs), "Versions returned wrong data without error")
		}
		var rev []Version
		err = r.VisitReverse(ctx, k, lsns, func(l lsn.LSN, v []byte) bool {
			rev = append([]Version{{l, append([]byte(nil), v...)}}, rev...)
			return true
		})
		if err != nil {
			errs = append(errs, err)
		} else if !sameVersions(want, rev) {
			require.Equal(t, normalize(want), normalize(rev), "VisitReverse returned wrong data without error")
		}
		if kind == KindImage {
			v, err := r.Image(ctx, k, nil)
			switch {
			case errors.Is(err, ErrNotFound):
				require.Empty(t, want, "Image said not found for a stored key")
			case err != nil:
				errs = append(errs, err)
			default:
				require.Len(t, want, 1)
				require.True(t, bytes.Equal(want[0].Value, v), "Image returned a wrong value without error")
			}
		}
	}
	return errs
}

func sameVersions(a, b []Version) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].LSN != b[i].LSN || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func requireCorruptAt(t *testing.T, err error, file string, blk uint32) {
	t.Helper()
	require.ErrorIs(t, err, ErrCorrupt)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, file, ce.File)
	require.Equal(t, blk, ce.Block, "error: %v", err)
	require.Contains(t, err.Error(), file)
}

func buildSmallLayers(t *testing.T) (deltaPath string, delta []byte, imagePath string, image []byte, imageEntries []entry) {
	dir := t.TempDir()
	deltaPath, _ = writeDelta(t, dir, fullKeys, smallLSNs, smallLayerEntries())
	for _, e := range smallLayerEntries() {
		if len(imageEntries) == 0 || imageEntries[len(imageEntries)-1].key != e.key {
			imageEntries = append(imageEntries, entry{e.key, 0x40, e.value})
		}
	}
	imagePath, _ = writeImage(t, dir, fullKeys, 0x40, imageEntries)
	return deltaPath, readFile(t, deltaPath), imagePath, readFile(t, imagePath), imageEntries
}

// TestCorruptionEveryByte flips every byte of a small delta layer (and of an
// image layer) and reads everything: each read returns the right data or an
// ErrCorrupt naming the file and the damaged block; a flip is never silent.
func TestCorruptionEveryByte(t *testing.T) {
	deltaPath, delta, imagePath, image, imageEntries := buildSmallLayers(t)
	require.GreaterOrEqual(t, len(delta)/BlockSize, 6, "the test file must have data blocks, values spanning blocks, an index")
	cases := []struct {
		name string
		data []byte
		kind Kind
		es   []entry
	}{
		{deltaPath, delta, KindDelta, smallLayerEntries()},
		{imagePath, image, KindImage, imageEntries},
	}
	for _, tc := range cases {
		blocks := uint32(len(tc.data) / BlockSize)
		require.Empty(t, readEverything(t, tc.name, tc.data, blocks, tc.kind, tc.es), "intact file")
		buf := append([]byte(nil), tc.data...)
		step := 1
		if testing.Short() {
			step = 7
		}
		for pos := 0; pos < len(buf); pos += step {
			// One bit (rotating) at every position; the whole byte at
			// every 16th.
			flips := []byte{1 << (pos % 8)}
			if pos%16 == 0 {
				flips = append(flips, 0xFF)
			}
			for _, x := range flips {
				buf[pos] ^= x
				errs := readEverything(t, tc.name, buf, blocks, tc.kind, tc.es)
				require.NotEmpty(t, errs, "flip %#x at byte %d went unnoticed", x, pos)
				for _, err := range errs {
					var ce *CorruptError
					if !errors.As(err, &ce) || ce.File != tc.name || ce.Block != uint32(pos/BlockSize) {
						requireCorruptAt(t, err, tc.name, uint32(pos/BlockSize))
					}
				}
				buf[pos] ^= x
			}
		}
	}
}

func TestCorruptionSwappedBlocks(t *testing.T) {
	deltaPath, delta, _, _, _ := buildSmallLayers(t)
	buf := append([]byte(nil), delta...)
	b1 := append([]byte(nil), buf[BlockSize:2*BlockSize]...)
	copy(buf[BlockSize:], buf[2*BlockSize:3*BlockSize])
	copy(buf[2*BlockSize:], b1)
	errs := readEverything(t, deltaPath, buf, uint32(len(buf)/BlockSize), KindDelta, smallLayerEntries())
	require.NotEmpty(t, errs)
	for _, err := range errs {
		require.ErrorIs(t, err, ErrCorrupt)
	}
}

// TestCorruptionTruncated truncates the file at many lengths: OpenFile
// fails with ErrCorrupt naming the first missing or partial block.
func TestCorruptionTruncated(t *testing.T) {
	for _, name := range []string{"delta", "image"} {
		t.Run(name, func(t *testing.T) {
			deltaPath, delta, imagePath, image, _ := buildSmallLayers(t)
			path, data := deltaPath, delta
			if name == "image" {
				path, data = imagePath, image
			}
			var lengths []int
			for l := 0; l < len(data); l += 509 {
				lengths = append(lengths, l)
			}
			for b := 1; b*BlockSize <= len(data); b++ {
				lengths = append(lengths, b*BlockSize-1, b*BlockSize, b*BlockSize+1)
			}
			for _, l := range lengths {
				if l >= len(data) {
					continue
				}
				require.NoError(t, os.WriteFile(path, data[:l], 0o644))
				_, err := OpenFile(context.Background(), path)
				requireCorruptAt(t, err, path, uint32(l/BlockSize))

				// A BlockReader that believes the file is whole still
				// finds the truncation.
				_, err = Open(context.Background(), path, memBlockReader{data[:l]}, uint32(len(data)/BlockSize))
				require.ErrorIs(t, err, ErrCorrupt, "length %d", l)
			}
			// Extended by a block: also corrupt.
			require.NoError(t, os.WriteFile(path, append(append([]byte(nil), data...), make([]byte, BlockSize)...), 0o644))
			_, err := OpenFile(context.Background(), path)
			requireCorruptAt(t, err, path, uint32(len(data)/BlockSize))
		})
	}
}

// TestCorruptionOnDisk flips a byte in each block of a real file and reads
// through OpenFile: the error names the path and block.
func TestCorruptionOnDisk(t *testing.T) {
	deltaPath, delta, _, _, _ := buildSmallLayers(t)
	ctx := context.Background()
	for blk := 0; blk < len(delta)/BlockSize; blk++ {
		buf := append([]byte(nil), delta...)
		buf[blk*BlockSize+100] ^= 0x40
		require.NoError(t, os.WriteFile(deltaPath, buf, 0o644))
		r, err := OpenFile(ctx, deltaPath)
		if err != nil {
			requireCorruptAt(t, err, deltaPath, uint32(blk))
			continue
		}
		_, err = readAll(ctx, r)
		requireCorruptAt(t, err, deltaPath, uint32(blk))
		require.NoError(t, r.Close())
	}
}

// reseal recomputes the header CRC and every block CRC of a file image, so
// that fuzzing reaches the structural checks behind them.
func reseal(b []byte) {
	if len(b) >= BlockSize {
		binary.BigEndian.PutUint32(b[hdrCRCOffset:], crc32.Checksum(b[:headerLen], castagnoli))
	}
	for blk := 0; (blk+1)*BlockSize <= len(b); blk++ {
		sealBlock(b[blk*BlockSize:(blk+1)*BlockSize], uint32(blk))
	}
}

// FuzzOpenAndRead treats the input as a layer file whose checksums are
// fixed up, then opens and reads it every way: no panic, no hang, and every
// error is ErrCorrupt.
func FuzzOpenAndRead(f *testing.F) {
	dir := f.TempDir()
	dpath, _ := writeDelta(f, dir, fullKeys, smallLSNs, smallLayerEntries())
	ipath, _ := writeImage(f, dir, fullKeys, 0x40, []entry{{relKey(16384, 1), 0x40, []byte("img")}, {relKey(16384, 2), 0x40, make([]byte, 9000)}})
	epath, _ := writeDelta(f, dir, fullKeys, LSNRange{1, 2}, nil)
	for _, p := range []string{dpath, ipath, epath} {
		f.Add(readFile(f, p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16*BlockSize {
			return
		}
		data = append([]byte(nil), data...)
		reseal(data)
		ctx := context.Background()
		r, err := Open(ctx, "fuzz", memBlockReader{data}, uint32(len(data)/BlockSize))
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		check := func(err error) {
			if err != nil {
				require.ErrorIs(t, err, ErrCorrupt)
			}
		}
		_, err = readAll(ctx, r)
		check(err)
		for _, k := range probeKeys {
			_, err := r.Versions(ctx, k, LSNRange{0, ^lsn.LSN(0)})
			check(err)
			check(r.VisitReverse(ctx, k, LSNRange{0, ^lsn.LSN(0)}, func(lsn.LSN, []byte) bool { return true }))
			if r.Summary().Kind == KindImage {
				if _, err := r.Image(ctx, k, nil); !errors.Is(err, ErrNotFound) {
					check(err)
				}
			}
		}
	})
}

// FuzzDecodeHeader: decodeHeader never panics, and a header it accepts
// re-encodes to the same bytes.
func FuzzDecodeHeader(f *testing.F) {
	dir := f.TempDir()
	dpath, _ := writeDelta(f, dir, fullKeys, smallLSNs, smallLayerEntries())
	ipath, _ := writeImage(f, filepath.Join(dir), fullKeys, 0x40, nil)
	for _, p := range []string{dpath, ipath} {
		f.Add(readFile(f, p)[:headerLen+4])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p := make([]byte, BlockSize)
		copy(p, in)
		if len(in) >= headerLen {
			// Fix the CRC so the fuzzer explores the fields.
			binary.BigEndian.PutUint32(p[hdrCRCOffset:], crc32.Checksum(p[:headerLen], castagnoli))
		}
		s, err := decodeHeader(p[:PayloadSize])
		if err != nil {
			return
		}
		again := make([]byte, BlockSize)
		encodeHeader(again, &s)
		require.Equal(t, p[:PayloadSize], again[:PayloadSize])
	})
}

// FuzzDecodeNode: decodeNode and lowerBound never panic or index out of
// range, and lowerBound is a lower bound.
func FuzzDecodeNode(f *testing.F) {
	p := make([]byte, PayloadSize)
	encodeNode(p, 0, []indexEntry{{makeIKey(relKey(1, 1), 5), 0}, {makeIKey(relKey(1, 2), 5), 40}})
	f.Add(append([]byte(nil), p...), []byte{0, 1})
	f.Add([]byte{0, 0, 0xFF, 0xFF}, []byte{})
	f.Fuzz(func(t *testing.T, in, target []byte) {
		p := make([]byte, PayloadSize)
		copy(p, in)
		n, err := decodeNode(p)
		if err != nil {
			return
		}
		i := n.lowerBound(target)
		require.True(t, i >= 0 && i <= n.count)
		if i < n.count {
			_ = n.valueAt(i)
			require.GreaterOrEqual(t, bytes.Compare(n.keyAt(i), target), 0)
		}
	})
}
