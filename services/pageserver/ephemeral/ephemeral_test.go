package ephemeral

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/services/pageserver/pagecache"
)

func newCache(t testing.TB) *pagecache.Cache {
	t.Helper()
	c, err := pagecache.New(pagecache.Config{SizeBytes: pagecache.MinSizeBytes}, prometheus.NewRegistry())
	require.NoError(t, err)
	return c
}

func TestAppendReadAcrossBlocksAndEviction(t *testing.T) {
	for _, tc := range []struct {
		name string
		mem  *Memory
	}{
		{"no budget", nil},
		{"budget of 3 chunks", NewMemory(3 * ChunkSize)},
		{"budget for all", NewMemory(1 << 30)},
	} {
		t.Run(tc.name, func(t *testing.T) { testAppendRead(t, tc.mem) })
	}
}

func testAppendRead(t *testing.T, mem *Memory) {
	cache := newCache(t)
	dir := t.TempDir()
	f, err := Create(dir, 1, cache, mem)
	require.NoError(t, err)
	defer f.Close()

	r := rand.New(rand.NewPCG(1, 1))
	var model []byte
	var offs []uint64
	var lens []int
	for i := 0; i < 3000; i++ {
		n := r.IntN(3 * BlockSize)
		if i%7 == 0 {
			n = r.IntN(40)
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		off, err := f.Append(b)
		require.NoError(t, err)
		require.Equal(t, uint64(len(model)), off)
		model = append(model, b...)
		offs = append(offs, off)
		lens = append(lens, n)
	}
	require.Equal(t, uint64(len(model)), f.Size())
	// The file is much larger than the cache: reads must evict and re-read.
	require.Greater(t, len(model), cache.Slots()*BlockSize)

	// Whole chunks are kept in memory while the budget lasts; the others
	// are written to the file, and nothing else is.
	chunks := len(model) / ChunkSize
	kept := min(chunks, int(mem.Limit()/ChunkSize))
	require.Equal(t, uint64(kept*ChunkSize), mem.Used())
	if mem != nil {
		require.Equal(t, uint64((chunks-kept)*ChunkSize), mem.Written())
	}
	st, err := os.Stat(f.Path())
	require.NoError(t, err)
	if kept == chunks {
		require.Zero(t, st.Size(), "every chunk is in memory")
	} else {
		require.Equal(t, int64(chunks*ChunkSize), st.Size(), "only whole chunks reach the file")
	}

	for _, i := range r.Perm(len(offs)) {
		got := make([]byte, lens[i])
		require.NoError(t, f.ReadAt(got, offs[i]))
		require.True(t, bytes.Equal(model[offs[i]:offs[i]+uint64(lens[i])], got), "value %d", i)
	}
	err = f.ReadAt(make([]byte, 2), uint64(len(model)-1))
	require.ErrorIs(t, err, ErrOutOfRange)

	// A Mapping holds every byte appended, the write buffer's too, also
	// values that cross from a chunk in memory to one in the file.
	checkMapping := func(model []byte) {
		t.Helper()
		m, err := f.Map()
		require.NoError(t, err)
		defer func() { require.NoError(t, m.Close()) }()
		require.Equal(t, uint64(len(model)), m.Size())
		for _, i := range r.Perm(len(offs)) {
			got, err := m.Slice(offs[i], uint32(lens[i]))
			require.NoError(t, err)
			require.True(t, bytes.Equal(model[offs[i]:offs[i]+uint64(lens[i])], got), "value %d through a Mapping", i)
		}
		_, err = m.Slice(uint64(len(model)-1), 2)
		require.ErrorIs(t, err, ErrOutOfRange)
	}
	checkMapping(model)
	// Appends after Map; reads and a new mapping see every byte.
	for i := 0; i < 200; i++ {
		b := bytes.Repeat([]byte{byte(i)}, 1+r.IntN(2*BlockSize))
		off, err := f.Append(b)
		require.NoError(t, err)
		model = append(model, b...)
		offs = append(offs, off)
		lens = append(lens, len(b))
	}
	for _, i := range r.Perm(len(offs)) {
		got := make([]byte, lens[i])
		require.NoError(t, f.ReadAt(got, offs[i]))
		require.True(t, bytes.Equal(model[offs[i]:offs[i]+uint64(lens[i])], got), "value %d after Map", i)
	}
	checkMapping(model)
	require.NoError(t, f.Close())
	require.Zero(t, mem.Used(), "Close gives the budget back")
}

// TestBudgetSharedByFiles: a file that finds the budget spent writes its
// chunks, and keeps them in memory again once another file gives chunks
// back — a file can hold memory chunks before and after file chunks, and
// Map and ReadAt read each from where it is.
func TestBudgetSharedByFiles(t *testing.T) {
	cache := newCache(t)
	dir := t.TempDir()
	mem := NewMemory(2 * ChunkSize)
	a, err := Create(dir, 1, cache, mem)
	require.NoError(t, err)
	b, err := Create(dir, 2, cache, mem)
	require.NoError(t, err)
	defer b.Close()

	chunk := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, ChunkSize) }
	var model []byte
	appendChunk := func(f *File, i int) {
		_, err := f.Append(chunk(i))
		require.NoError(t, err)
		if f == b {
			model = append(model, chunk(i)...)
		}
	}
	appendChunk(b, 1) // b: memory
	appendChunk(a, 9) // a: memory; the budget is spent
	appendChunk(b, 2) // b: file
	appendChunk(b, 3) // b: file
	m, err := a.Map() // a's chunk stays reserved while mapped
	require.NoError(t, err)
	require.NoError(t, a.Close())
	require.Equal(t, uint64(2*ChunkSize), mem.Used())
	got, err := m.Slice(ChunkSize-10, 10)
	require.NoError(t, err)
	require.Equal(t, chunk(9)[:10], got)
	require.NoError(t, m.Close())
	require.Equal(t, uint64(ChunkSize), mem.Used())
	appendChunk(b, 4) // b: memory again
	tail := []byte("partial tail")
	_, err = b.Append(tail)
	require.NoError(t, err)
	model = append(model, tail...)
	require.Equal(t, uint64(2*ChunkSize), mem.Written())

	mb, err := b.Map()
	require.NoError(t, err)
	for _, span := range [][2]uint64{{0, uint64(len(model))}, {ChunkSize - 5, 10}, {3*ChunkSize - 5, 10}, {4*ChunkSize - 3, 8}, {2 * ChunkSize, 7}} {
		got, err := mb.Slice(span[0], uint32(span[1]))
		require.NoError(t, err)
		require.True(t, bytes.Equal(model[span[0]:span[0]+span[1]], got), "Slice %v", span)
		buf := make([]byte, span[1])
		require.NoError(t, b.ReadAt(buf, span[0]))
		require.True(t, bytes.Equal(model[span[0]:span[0]+span[1]], buf), "ReadAt %v", span)
	}
	require.NoError(t, b.Close())
	got, err = mb.Slice(4*ChunkSize-3, 8)
	require.NoError(t, err, "a Mapping outlives Close")
	require.True(t, bytes.Equal(model[4*ChunkSize-3:4*ChunkSize+5], got))
	require.NoError(t, mb.Close())
	require.Zero(t, mem.Used())

	// Freed buffers are reused, and the budget is never exceeded.
	c, err := Create(dir, 3, cache, mem)
	require.NoError(t, err)
	for i := range 5 {
		appendChunk(c, i)
		require.LessOrEqual(t, mem.Used(), mem.Limit())
	}
	require.NoError(t, c.Close())
	require.Zero(t, mem.Used())
}

func TestMappingOutlivesClose(t *testing.T) {
	cache := newCache(t)
	f, err := Create(t.TempDir(), 3, cache, NewMemory(ChunkSize))
	require.NoError(t, err)
	empty, err := f.Map()
	require.NoError(t, err)
	require.Zero(t, empty.Size())
	require.NoError(t, empty.Close())

	want := bytes.Repeat([]byte("strata"), 3*BlockSize)
	off, err := f.Append(want)
	require.NoError(t, err)
	m, err := f.Map()
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = f.Map()
	require.ErrorIs(t, err, ErrClosed)
	got, err := m.Slice(off, uint32(len(want)))
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "a second Close is a no-op")
}

func TestConcurrentReadersDuringAppends(t *testing.T) {
	cache := newCache(t)
	f, err := Create(t.TempDir(), 2, cache, NewMemory(3*ChunkSize))
	require.NoError(t, err)
	defer f.Close()

	const n = 4000
	value := func(i int) []byte {
		b := make([]byte, 100+i%900)
		for j := range b {
			b[j] = byte(i + j)
		}
		return b
	}
	var mu sync.Mutex
	offs := make([]uint64, 0, n)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				k := len(offs)
				mu.Unlock()
				if k == 0 {
					continue
				}
				i := r.IntN(k)
				mu.Lock()
				off := offs[i]
				mu.Unlock()
				want := value(i)
				got := make([]byte, len(want))
				if err := f.ReadAt(got, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(want, got) {
					errs <- os.ErrInvalid
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		off, err := f.Append(value(i))
		require.NoError(t, err)
		mu.Lock()
		offs = append(offs, off)
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestCloseDeletesAndRemoveStale(t *testing.T) {
	cache := newCache(t)
	dir := t.TempDir()
	f, err := Create(dir, 3, cache, nil)
	require.NoError(t, err)
	_, err = f.Append(make([]byte, 3*BlockSize))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "second close is a no-op")
	_, err = os.Stat(f.Path())
	require.True(t, os.IsNotExist(err))
	require.ErrorIs(t, f.ReadAt(make([]byte, 1), 0), ErrClosed)
	_, err = f.Append([]byte{1})
	require.ErrorIs(t, err, ErrClosed)

	// Stale files of a previous run are removed; other files stay.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ephemeral-7"), []byte("old"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "metadata"), []byte("keep"), 0o600))
	require.NoError(t, RemoveStale(dir))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "metadata", entries[0].Name())
	require.ErrorContains(t, RemoveStale(filepath.Join(dir, "missing")), "ephemeral: listing")
}

func BenchmarkAppend(b *testing.B) {
	cache := newCache(b)
	f, err := Create(b.TempDir(), 1, cache, nil)
	require.NoError(b, err)
	defer f.Close()
	v := make([]byte, 8200)
	b.SetBytes(int64(len(v)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Append(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawAppend is the baseline: sequential writes of the same bytes
// to a plain file in 8 KB blocks.
func BenchmarkRawAppend(b *testing.B) {
	fh, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	require.NoError(b, err)
	defer fh.Close()
	v := make([]byte, 8200)
	var buf [BlockSize]byte
	fill := 0
	var off int64
	b.SetBytes(int64(len(v)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rest := v
		for len(rest) > 0 {
			n := copy(buf[fill:], rest)
			rest = rest[n:]
			fill += n
			if fill == BlockSize {
				if _, err := fh.WriteAt(buf[:], off); err != nil {
					b.Fatal(err)
				}
				off += BlockSize
				fill = 0
			}
		}
	}
}
