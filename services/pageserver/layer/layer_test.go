package layer

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// modelVersions returns the model's versions of key in [from, to).
func modelVersions(es []entry, key keyspace.Key, lsns LSNRange) []Version {
	var out []Version
	for _, e := range es {
		if e.key == key && lsns.Contains(e.lsn) {
			out = append(out, Version{LSN: e.lsn, Value: e.value})
		}
	}
	return out
}

func normalize(vs []Version) []Version {
	for i := range vs {
		if len(vs[i].Value) == 0 {
			vs[i].Value = nil
		}
	}
	return vs
}

func checkDeltaMatches(t *testing.T, r *Reader, es []entry, rng *rand.Rand, lsns LSNRange) {
	t.Helper()
	ctx := context.Background()
	got, err := readAll(ctx, r)
	require.NoError(t, err)
	require.Equal(t, len(es), len(got))
	for i := range es {
		require.Equal(t, es[i].key, got[i].key, "entry %d", i)
		require.Equal(t, es[i].lsn, got[i].lsn, "entry %d", i)
		require.Equal(t, len(es[i].value), len(got[i].value), "entry %d", i)
		if len(es[i].value) > 0 {
			require.Equal(t, es[i].value, got[i].value, "entry %d", i)
		}
	}
	keys := map[keyspace.Key]bool{}
	for _, e := range es {
		keys[e.key] = true
	}
	for k := range keys {
		// Whole range, then a random sub-range, both directions.
		for _, q := range []LSNRange{lsns, {lsns.Start + lsn.LSN(rng.IntN(100)), lsns.Start + lsn.LSN(rng.IntN(1000))}} {
			want := normalize(modelVersions(es, k, q))
			vs, err := r.Versions(ctx, k, q)
			require.NoError(t, err)
			require.Equal(t, want, normalize(vs), "key %s range %s", k, q)
			var rev []Version
			require.NoError(t, r.VisitReverse(ctx, k, q, func(l lsn.LSN, v []byte) bool {
				rev = append(rev, Version{l, append([]byte(nil), v...)})
				return true
			}))
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			require.Equal(t, want, normalize(rev), "reverse key %s range %s", k, q)
		}
	}
}

func TestDeltaRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, 7, 300, 2000} {
		t.Run("", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(n), 42))
			lsns := LSNRange{0x1000, 0x1400}
			es := randomEntries(rng, n, lsns)
			dir := t.TempDir()
			path, sum := writeDelta(t, dir, fullKeys, lsns, es)
			require.Equal(t, filepath.Join(dir, DeltaFileName(fullKeys, lsns)), path)
			require.Equal(t, []string{filepath.Base(path)}, dirNames(t, dir), "no temp file left behind")
			r := openFile(t, path)
			require.Equal(t, sum, r.Summary())
			require.Equal(t, KindDelta, sum.Kind)
			require.Equal(t, testTenant, sum.Tenant)
			require.Equal(t, testTimeline, sum.Timeline)
			require.Equal(t, uint64(n), sum.Entries)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, int64(sum.Blocks)*BlockSize, fi.Size())
			checkDeltaMatches(t, r, es, rng, lsns)
			_, err = r.Image(context.Background(), es[0].key, nil)
			require.ErrorIs(t, err, ErrWrongKind)
		})
	}
}

func TestImageRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	keys := keyspace.Range{Start: relKey(16384, 0), End: relKey(16384, 1000)}
	var es []entry
	for blk := uint32(0); blk < 1000; blk += 1 + uint32(rng.IntN(3)) {
		es = append(es, entry{relKey(16384, blk), 0x5000, randomValue(rng)})
	}
	dir := t.TempDir()
	path, sum := writeImage(t, dir, keys, 0x5000, es)
	require.Equal(t, ImageFileName(keys, 0x5000), filepath.Base(path))
	require.Equal(t, lsn.LSN(0x5000), sum.ImageLSN())
	r := openFile(t, path)
	ctx := context.Background()
	present := map[keyspace.Key][]byte{}
	for _, e := range es {
		present[e.key] = e.value
	}
	buf := make([]byte, 0, 3*BlockSize)
	for blk := uint32(0); blk < 1000; blk++ {
		k := relKey(16384, blk)
		v, err := r.Image(ctx, k, buf)
		if want, ok := present[k]; ok {
			require.NoError(t, err)
			require.Equal(t, len(want), len(v))
			if len(want) > 0 {
				require.Equal(t, want, v)
			}
		} else {
			require.ErrorIs(t, err, ErrNotFound)
		}
	}
	got, err := readAll(ctx, r)
	require.NoError(t, err)
	require.Len(t, got, len(es))
	// Versions on an image layer: the one value, only if the range covers
	// the image LSN.
	vs, err := r.Versions(ctx, es[0].key, LSNRange{0, 0x5000})
	require.NoError(t, err)
	require.Empty(t, vs)
	vs, err = r.Versions(ctx, es[0].key, LSNRange{0x5000, 0x5001})
	require.NoError(t, err)
	require.Len(t, vs, 1)
}

func TestEmptyLayer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dpath, dsum := writeDelta(t, dir, fullKeys, LSNRange{1, 2}, nil)
	ipath, isum := writeImage(t, dir, fullKeys, 5, nil)
	require.Equal(t, uint32(2), dsum.Blocks, "header + one empty leaf")
	require.Equal(t, uint32(2), isum.Blocks)
	for _, p := range []string{dpath, ipath} {
		r := openFile(t, p)
		got, err := readAll(ctx, r)
		require.NoError(t, err)
		require.Empty(t, got)
		vs, err := r.Versions(ctx, relKey(1, 1), LSNRange{0, 100})
		require.NoError(t, err)
		require.Empty(t, vs)
		require.NoError(t, r.VisitReverse(ctx, relKey(1, 1), LSNRange{0, 100}, func(lsn.LSN, []byte) bool {
			t.Fatal("no entries expected")
			return false
		}))
	}
	_, err := openFile(t, ipath).Image(ctx, relKey(1, 1), nil)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestSingleEntry(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := relKey(16384, 3)
	page := make([]byte, 8192)
	for i := range page {
		page[i] = byte(i * 7)
	}
	path, sum := writeDelta(t, dir, fullKeys, LSNRange{0x10, 0x20}, []entry{{k, 0x18, page}})
	require.Equal(t, uint64(1), sum.Entries)
	require.Equal(t, uint32(8192), sum.MaxValueLen)
	r := openFile(t, path)
	vs, err := r.Versions(ctx, k, LSNRange{0, 0x100})
	require.NoError(t, err)
	require.Equal(t, []Version{{0x18, page}}, vs)
	for _, other := range []keyspace.Key{relKey(16384, 2), relKey(16384, 4), keyspace.Min, relKey(16383, 3)} {
		vs, err := r.Versions(ctx, other, LSNRange{0, 0x100})
		require.NoError(t, err)
		require.Empty(t, vs, "key %s", other)
	}
}

// TestManyEntries writes more than 100k entries (a three-level index) and
// reads every one back through the index and the iterator.
func TestManyEntries(t *testing.T) {
	ctx := context.Background()
	const keys, versions = 40_000, 3 // 120k entries
	dir := t.TempDir()
	lsns := LSNRange{0x100, 0x10000}
	w, err := NewDeltaWriter(dir, testTenant, testTimeline, fullKeys, lsns)
	require.NoError(t, err)
	val := func(i, v int) []byte { return []byte{byte(i), byte(i >> 8), byte(i >> 16), byte(v), 0xEE} }
	for i := 0; i < keys; i++ {
		for v := 0; v < versions; v++ {
			require.NoError(t, w.Put(relKey(16384, uint32(i)), lsn.LSN(0x100+v*0x10), val(i, v)))
		}
	}
	sum, err := w.Finish(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(keys*versions), sum.Entries)
	require.Equal(t, uint64(keys), sum.DistinctKeys)
	require.Equal(t, uint8(3), sum.depth)
	r := openFile(t, w.Path())
	n := 0
	it := r.Iter()
	for it.Next(ctx) {
		i, v := n/versions, n%versions
		require.Equal(t, relKey(16384, uint32(i)), it.Key())
		require.Equal(t, val(i, v), it.Value())
		n++
	}
	require.NoError(t, it.Err())
	it.Close()
	require.Equal(t, keys*versions, n)
	for i := 0; i < keys; i++ {
		var got [][]byte
		require.NoError(t, r.VisitReverse(ctx, relKey(16384, uint32(i)), lsns, func(l lsn.LSN, v []byte) bool {
			got = append(got, append([]byte(nil), v...))
			return true
		}))
		require.Equal(t, [][]byte{val(i, 2), val(i, 1), val(i, 0)}, got)
	}
}

// TestGetBoundaries pins the range semantics: [Start, End), both ends, in
// both directions, with neighbouring keys and versions spanning leaves.
func TestGetBoundaries(t *testing.T) {
	ctx := context.Background()
	k := relKey(16384, 5)
	var es []entry
	es = append(es, entry{relKey(16384, 4), 10, []byte("prev")})
	const many = 600 // spans three leaves
	for i := 1; i <= many; i++ {
		es = append(es, entry{k, lsn.LSN(i * 10), []byte{byte(i), byte(i >> 8)}})
	}
	es = append(es, entry{relKey(16384, 6), 10, []byte("next")})
	path, _ := writeDelta(t, t.TempDir(), fullKeys, LSNRange{0, 100_000}, es)
	r := openFile(t, path)
	lsnsOf := func(q LSNRange, reverse bool, limit int) []lsn.LSN {
		var out []lsn.LSN
		visit := r.Visit
		if reverse {
			visit = r.VisitReverse
		}
		require.NoError(t, visit(ctx, k, q, func(l lsn.LSN, v []byte) bool {
			require.Equal(t, []byte{byte(l / 10), byte(l / 10 >> 8)}, v)
			out = append(out, l)
			return len(out) < limit
		}))
		return out
	}
	tests := []struct {
		name    string
		q       LSNRange
		reverse bool
		limit   int
		want    []lsn.LSN
	}{
		{"start inclusive, end exclusive", LSNRange{10, 30}, false, 100, []lsn.LSN{10, 20}},
		{"start just after", LSNRange{11, 31}, false, 100, []lsn.LSN{20, 30}},
		{"below all", LSNRange{0, 10}, false, 100, nil},
		{"single", LSNRange{30, 31}, false, 100, []lsn.LSN{30}},
		{"empty range", LSNRange{20, 20}, false, 100, nil},
		{"inverted range", LSNRange{30, 20}, true, 100, nil},
		{"above all", LSNRange{6001, 1 << 40}, false, 100, nil},
		{"reverse end exclusive", LSNRange{10, 40}, true, 100, []lsn.LSN{30, 20, 10}},
		{"reverse stops early", LSNRange{0, 1 << 62}, true, 2, []lsn.LSN{6000, 5990}},
		{"forward stops early", LSNRange{0, 1 << 62}, false, 1, []lsn.LSN{10}},
		{"reverse across leaves", LSNRange{2395, 2425}, true, 100, []lsn.LSN{2420, 2410, 2400}},
		{"forward across leaves", LSNRange{2395, 2425}, false, 100, []lsn.LSN{2400, 2410, 2420}},
		{"reverse from the top", LSNRange{5985, ^lsn.LSN(0)}, true, 100, []lsn.LSN{6000, 5990}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, lsnsOf(tc.q, tc.reverse, tc.limit))
		})
	}
	all := lsnsOf(LSNRange{0, ^lsn.LSN(0)}, false, 1000)
	require.Len(t, all, many)
	allRev := lsnsOf(LSNRange{0, ^lsn.LSN(0)}, true, 1000)
	require.Len(t, allRev, many)
	require.Equal(t, lsn.LSN(6000), allRev[0])
	for _, nb := range []keyspace.Key{relKey(16384, 4), relKey(16384, 6)} {
		vs, err := r.Versions(ctx, nb, LSNRange{0, 100})
		require.NoError(t, err)
		require.Len(t, vs, 1, "neighbour %s", nb)
	}
}

func TestWriterRejects(t *testing.T) {
	dir := t.TempDir()
	keys := keyspace.Range{Start: relKey(1, 10), End: relKey(1, 20)}
	w, err := NewDeltaWriter(dir, testTenant, testTimeline, keys, LSNRange{100, 200})
	require.NoError(t, err)
	require.NoError(t, w.Put(relKey(1, 12), 150, []byte("a")))
	tests := []struct {
		name string
		key  keyspace.Key
		l    lsn.LSN
		want error
	}{
		{"same key and LSN", relKey(1, 12), 150, ErrOutOfOrder},
		{"same key, older LSN", relKey(1, 12), 149, ErrOutOfOrder},
		{"older key, newer LSN", relKey(1, 11), 199, ErrOutOfOrder},
		{"key below range", relKey(1, 9), 150, ErrOutOfRange},
		{"key at range end", relKey(1, 20), 150, ErrOutOfRange},
		{"LSN below range", relKey(1, 13), 99, ErrOutOfRange},
		{"LSN at range end", relKey(1, 13), 200, ErrOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, w.Put(tc.key, tc.l, []byte("x")), tc.want)
		})
	}
	// Rejections leave the writer usable.
	require.NoError(t, w.Put(relKey(1, 12), 151, []byte("b")))
	require.NoError(t, w.Put(relKey(1, 13), 100, []byte("c")))
	_, err = w.Finish(context.Background())
	require.NoError(t, err)
	require.ErrorIs(t, w.Put(relKey(1, 14), 100, nil), ErrWriterClosed)
	_, err = w.Finish(context.Background())
	require.ErrorIs(t, err, ErrWriterClosed)
	w.Abort() // no effect on the finished file
	r := openFile(t, w.Path())
	got, err := readAll(context.Background(), r)
	require.NoError(t, err)
	require.Len(t, got, 3)

	iw, err := NewImageWriter(dir, testTenant, testTimeline, keys, 150)
	require.NoError(t, err)
	require.NoError(t, iw.Put(relKey(1, 12), []byte("a")))
	require.ErrorIs(t, iw.Put(relKey(1, 12), []byte("a")), ErrOutOfOrder)
	require.ErrorIs(t, iw.Put(relKey(1, 11), []byte("a")), ErrOutOfOrder)
	require.ErrorIs(t, iw.Put(relKey(1, 20), []byte("a")), ErrOutOfRange)
	iw.Abort()
	require.ErrorIs(t, iw.Put(relKey(1, 13), nil), ErrWriterClosed)
	_, err = os.Stat(iw.Path())
	require.True(t, errors.Is(err, os.ErrNotExist), "aborted layer must not exist")
	require.Equal(t, []string{filepath.Base(w.Path())}, dirNames(t, dir), "abort removes the temp file")

	_, err = NewDeltaWriter(dir, testTenant, testTimeline, keyspace.Range{Start: relKey(1, 2), End: relKey(1, 2)}, LSNRange{1, 2})
	require.ErrorIs(t, err, ErrInvalidRange)
	_, err = NewDeltaWriter(dir, testTenant, testTimeline, keys, LSNRange{2, 2})
	require.ErrorIs(t, err, ErrInvalidRange)
	_, err = NewImageWriter(dir, testTenant, testTimeline, keys, ^lsn.LSN(0))
	require.ErrorIs(t, err, ErrInvalidRange)
	_, err = NewDeltaWriter(filepath.Join(dir, "missing"), testTenant, testTimeline, keys, LSNRange{1, 2})
	require.Error(t, err)
}

func TestFinishHonoursContext(t *testing.T) {
	dir := t.TempDir()
	w, err := NewDeltaWriter(dir, testTenant, testTimeline, fullKeys, LSNRange{1, 2})
	require.NoError(t, err)
	require.NoError(t, w.Put(relKey(1, 1), 1, []byte("x")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = w.Finish(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, dirNames(t, dir))
}

func TestRenamedFileRejected(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeDelta(t, dir, fullKeys, LSNRange{1, 2}, []entry{{relKey(1, 1), 1, []byte("x")}})
	other := filepath.Join(dir, DeltaFileName(fullKeys, LSNRange{1, 3}))
	require.NoError(t, os.Rename(path, other))
	_, err := OpenFile(context.Background(), other)
	require.ErrorIs(t, err, ErrCorrupt)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, other, ce.File)
	require.Equal(t, uint32(0), ce.Block)
	// Any other name is not checked.
	plain := filepath.Join(dir, "layer.bin")
	require.NoError(t, os.Rename(other, plain))
	_ = openFile(t, plain)
}

// TestConcurrentReaders shares one Reader between goroutines (run with
// -race): every read sees the right data.
func TestConcurrentReaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	lsns := LSNRange{0x1000, 0x1400}
	es := randomEntries(rng, 400, lsns)
	path, _ := writeDelta(t, t.TempDir(), fullKeys, lsns, es)
	r := openFile(t, path)
	ctx := context.Background()
	errc := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := g; i < len(es); i += 4 {
				vs, err := r.Versions(ctx, es[i].key, LSNRange{es[i].lsn, es[i].lsn + 1})
				if err == nil && (len(vs) != 1 || string(vs[0].Value) != string(es[i].value)) {
					err = errors.New("wrong value for entry")
				}
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		require.NoError(t, <-errc)
	}
}

// TestNewestLSNMatchesVisitReverse: the index-only lookup agrees with the
// first value VisitReverse yields, for every key and many LSN ranges,
// including ranges that end inside another leaf.
func TestNewestLSNMatchesVisitReverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	lsns := LSNRange{Start: 1000, End: 50000}
	es := randomEntries(rng, 3000, lsns)
	path, _ := writeDelta(t, t.TempDir(), fullKeys, lsns, es)
	r, err := OpenFile(context.Background(), path)
	require.NoError(t, err)
	defer r.Close()
	ctx := context.Background()
	keys := map[keyspace.Key]bool{}
	for _, e := range es {
		keys[e.key] = true
	}
	keys[relKey(99999, 1)] = true // absent key
	checked := 0
	for k := range keys {
		for i := 0; i < 5; i++ {
			lo := lsns.Start + lsn.LSN(rng.Uint64N(uint64(lsns.End-lsns.Start)))
			hi := lo + lsn.LSN(rng.Uint64N(uint64(lsns.End-lo)+1))
			q := LSNRange{Start: lo, End: hi}
			var want lsn.LSN
			wantOK := false
			require.NoError(t, r.VisitReverse(ctx, k, q, func(l lsn.LSN, _ []byte) bool {
				want, wantOK = l, true
				return false
			}))
			got, ok, err := r.NewestLSN(ctx, k, q)
			require.NoError(t, err)
			require.Equal(t, wantOK, ok, "%s %s", k, q)
			require.Equal(t, want, got, "%s %s", k, q)
			checked++
		}
	}
	require.Greater(t, checked, 1000)
}
