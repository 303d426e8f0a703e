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
	cache := newCache(t)
	dir := t.TempDir()
	f, err := Create(dir, 1, cache)
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

	st, err := os.Stat(f.Path())
	require.NoError(t, err)
	const bufBytes = writeBufferBlocks * BlockSize
	require.Equal(t, int64(len(model)/bufBytes*bufBytes), st.Size(), "only whole write buffers reach the file")

	for _, i := range r.Perm(len(offs)) {
		got := make([]byte, lens[i])
		require.NoError(t, f.ReadAt(got, offs[i]))
		require.True(t, bytes.Equal(model[offs[i]:offs[i]+uint64(lens[i])], got), "value %d", i)
	}
	err = f.ReadAt(make([]byte, 2), uint64(len(model)-1))
	require.ErrorIs(t, err, ErrOutOfRange)

	// A Mapping holds every byte appended, the write buffer's too.
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
	// Appends after Map: the partial buffer Map wrote is written again,
	// whole, when it fills; reads and a new mapping see every byte.
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
}

func TestMappingOutlivesClose(t *testing.T) {
	cache := newCache(t)
	f, err := Create(t.TempDir(), 3, cache)
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
	f, err := Create(t.TempDir(), 2, cache)
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
	f, err := Create(dir, 3, cache)
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
	f, err := Create(b.TempDir(), 1, cache)
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
