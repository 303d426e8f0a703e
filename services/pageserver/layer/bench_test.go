package layer

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/value"
)

// Benchmarks, each beside its baseline (BENCH.md has the numbers):
//
//   - BenchmarkGetPageImage (newest version of a random key, an 8 KB page
//     image, copied into a page buffer) vs BenchmarkGetBaselinePread (pread
//     of one random 8 KB block of the same file). Both files sit in the OS
//     page cache.
//   - BenchmarkGetSmallRecord: the same for a 100-byte WAL record.
//   - BenchmarkDeltaWriter (stream a layer of 8 KB images, Finish with
//     fsync and rename) vs BenchmarkWriteBaselineAppend (append the same
//     number of bytes through the same buffer size, fsync). Both report the
//     file size as bytes/op, so MB/s compare directly.

const (
	benchKeys     = 4096 // 32 MiB of page images
	benchVersions = 4
	benchLayerLen = 2048 // values per written layer: 16 MiB
)

func benchPage(i int) []byte {
	page := make([]byte, 8192)
	for j := range page {
		page[j] = byte(i + j)
	}
	return value.AppendImage(nil, page)
}

func writeBenchLayer(b *testing.B, dir string, versions int, val func(i, v int) []byte) string {
	b.Helper()
	w, err := NewDeltaWriter(dir, testTenant, testTimeline, fullKeys, LSNRange{0x100, 0x100000})
	require.NoError(b, err)
	for i := 0; i < benchKeys; i++ {
		for v := 0; v < versions; v++ {
			require.NoError(b, w.Put(relKey(16384, uint32(i)), lsn.LSN(0x100+v*0x10), val(i, v)))
		}
	}
	_, err = w.Finish(context.Background())
	require.NoError(b, err)
	return w.Path()
}

func benchGet(b *testing.B, versions int, val func(i, v int) []byte) {
	path := writeBenchLayer(b, b.TempDir(), versions, val)
	_ = readFile(b, path) // warm the OS page cache
	benchGetFrom(b, openFile(b, path))
}

func benchGetFrom(b *testing.B, r *Reader) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	dst := make([]byte, 0, 2*BlockSize)
	lsns := LSNRange{0, 0x100000}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		k := relKey(16384, uint32(rng.IntN(benchKeys)))
		found := false
		err := r.VisitReverse(ctx, k, lsns, func(_ lsn.LSN, v []byte) bool {
			dst = append(dst[:0], v...)
			found = true
			return false // the newest is an image: stop, as the read path does
		})
		if err != nil || !found {
			b.Fatal(err, found)
		}
	}
}

func BenchmarkGetPageImage(b *testing.B) {
	benchGet(b, 1, func(i, _ int) []byte { return benchPage(i) })
}

func BenchmarkGetSmallRecord(b *testing.B) {
	rec := make([]byte, 100)
	benchGet(b, benchVersions, func(i, v int) []byte { return value.AppendRecord(nil, lsn.LSN(v), v == 0, rec) })
}

// BenchmarkGetPageImageInMemory reads blocks from memory (a copy per block,
// as a page-cache hit costs), so it shows the layer code's own cost:
// descent, checksums, copies. Its baseline is BenchmarkGetBaselineCopy.
func BenchmarkGetPageImageInMemory(b *testing.B) {
	path := writeBenchLayer(b, b.TempDir(), 1, func(i, _ int) []byte { return benchPage(i) })
	data := readFile(b, path)
	r, err := Open(context.Background(), path, memBlockReader{data}, uint32(len(data)/BlockSize))
	require.NoError(b, err)
	benchGetFrom(b, r)
}

// BenchmarkGetBaselineCopy copies one random 8 KB block of the same file
// from memory.
func BenchmarkGetBaselineCopy(b *testing.B) {
	path := writeBenchLayer(b, b.TempDir(), 1, func(i, _ int) []byte { return benchPage(i) })
	data := readFile(b, path)
	blocks := len(data) / BlockSize
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, BlockSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := rng.IntN(blocks) * BlockSize
		copy(buf, data[n:n+BlockSize])
	}
}

func BenchmarkGetBaselinePread(b *testing.B) {
	path := writeBenchLayer(b, b.TempDir(), 1, func(i, _ int) []byte { return benchPage(i) })
	_ = readFile(b, path)
	f, err := os.Open(path)
	require.NoError(b, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(b, err)
	blocks := st.Size() / BlockSize
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, BlockSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.ReadAt(buf, rng.Int64N(blocks)*BlockSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeltaWriter(b *testing.B) {
	dir := b.TempDir()
	vals := make([][]byte, benchLayerLen)
	for i := range vals {
		vals[i] = benchPage(i)
	}
	ctx := context.Background()
	var size int64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		w, err := NewDeltaWriter(dir, testTenant, testTimeline, fullKeys, LSNRange{lsn.LSN(i) + 1, lsn.LSN(i) + 2})
		if err != nil {
			b.Fatal(err)
		}
		for j, v := range vals {
			if err := w.Put(relKey(16384, uint32(j)), lsn.LSN(i)+1, v); err != nil {
				b.Fatal(err)
			}
		}
		sum, err := w.Finish(ctx)
		if err != nil {
			b.Fatal(err)
		}
		size = int64(sum.Blocks) * BlockSize
		b.SetBytes(size)
		b.StopTimer()
		_ = os.Remove(w.Path())
		b.StartTimer()
	}
}

func BenchmarkWriteBaselineAppend(b *testing.B) {
	dir := b.TempDir()
	// The size of the layer BenchmarkDeltaWriter writes: 2048 entries of
	// 8224 bytes, plus header and index blocks.
	w, err := NewDeltaWriter(b.TempDir(), testTenant, testTimeline, fullKeys, LSNRange{1, 2})
	require.NoError(b, err)
	for j := 0; j < benchLayerLen; j++ {
		require.NoError(b, w.Put(relKey(16384, uint32(j)), 1, benchPage(j)))
	}
	sum, err := w.Finish(context.Background())
	require.NoError(b, err)
	size := int64(sum.Blocks) * BlockSize
	chunk := make([]byte, BlockSize)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		path := filepath.Join(dir, "raw")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		bw := bufio.NewWriterSize(f, writeBufferSize)
		for n := int64(0); n < size; n += BlockSize {
			if _, err := bw.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = os.Remove(path)
		b.StartTimer()
	}
}
