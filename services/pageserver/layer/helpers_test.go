package layer

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

var (
	testTenant   = ids.TenantID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	testTimeline = ids.TimelineID{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf}
	fullKeys     = keyspace.Range{Start: keyspace.Min, End: keyspace.Max}
)

// entry is the test model of one stored value.
type entry struct {
	key   keyspace.Key
	lsn   lsn.LSN
	value []byte
}

func relKey(rel, blk uint32) keyspace.Key {
	return keyspace.Key{F1: keyspace.KindRel, F2: 1663, F3: 5, F4: rel, F5: 0, F6: blk}
}

func randomValue(rng *rand.Rand) []byte {
	var n int
	switch rng.IntN(6) {
	case 0:
		n = 0
	case 1, 2:
		n = rng.IntN(200)
	case 3:
		n = 8192 + 10 // page image plus a value header
	case 4:
		n = rng.IntN(3 * BlockSize) // may span several blocks
	default:
		n = 8192
	}
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(rng.Uint32())
	}
	return v
}

// randomEntries returns n sorted entries over a few relations with several
// versions per key.
func randomEntries(rng *rand.Rand, n int, lsns LSNRange) []entry {
	seen := map[ikey]bool{}
	var es []entry
	span := uint64(lsns.End - lsns.Start)
	for len(es) < n {
		k := relKey(16384+uint32(rng.IntN(3)), uint32(rng.IntN(n/2+1)))
		l := lsns.Start + lsn.LSN(rng.Uint64N(span))
		ik := makeIKey(k, l)
		if seen[ik] {
			continue
		}
		seen[ik] = true
		es = append(es, entry{k, l, randomValue(rng)})
	}
	sortEntries(es)
	return es
}

func sortEntries(es []entry) {
	sort.Slice(es, func(i, j int) bool {
		a, b := makeIKey(es[i].key, es[i].lsn), makeIKey(es[j].key, es[j].lsn)
		return bytes.Compare(a[:], b[:]) < 0
	})
}

func writeDelta(t testing.TB, dir string, keys keyspace.Range, lsns LSNRange, es []entry) (string, Summary) {
	t.Helper()
	w, err := NewDeltaWriter(dir, testTenant, testTimeline, keys, lsns)
	require.NoError(t, err)
	for _, e := range es {
		require.NoError(t, w.Put(e.key, e.lsn, e.value))
	}
	sum, err := w.Finish(context.Background())
	require.NoError(t, err)
	return w.Path(), sum
}

func writeImage(t testing.TB, dir string, keys keyspace.Range, at lsn.LSN, es []entry) (string, Summary) {
	t.Helper()
	w, err := NewImageWriter(dir, testTenant, testTimeline, keys, at)
	require.NoError(t, err)
	for _, e := range es {
		require.NoError(t, w.Put(e.key, e.value))
	}
	sum, err := w.Finish(context.Background())
	require.NoError(t, err)
	return w.Path(), sum
}

func openFile(t testing.TB, path string) *Reader {
	t.Helper()
	r, err := OpenFile(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// readAll iterates a layer and returns its entries.
func readAll(ctx context.Context, r *Reader) ([]entry, error) {
	it := r.Iter()
	defer it.Close()
	var out []entry
	for it.Next(ctx) {
		out = append(out, entry{it.Key(), it.LSN(), append([]byte{}, it.Value()...)})
	}
	return out, it.Err()
}

// memBlockReader serves blocks from a byte slice (an in-memory file).
type memBlockReader struct{ b []byte }

func (m memBlockReader) ReadBlock(ctx context.Context, blkno uint32, dst []byte) error {
	off := int64(blkno) * BlockSize
	if off >= int64(len(m.b)) {
		return io.EOF
	}
	if off+BlockSize > int64(len(m.b)) {
		copy(dst, m.b[off:])
		return io.ErrUnexpectedEOF
	}
	copy(dst, m.b[off:off+BlockSize])
	return nil
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}
