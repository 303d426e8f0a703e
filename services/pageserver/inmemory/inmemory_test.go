package inmemory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/value"
)

func newLayer(t testing.TB, start lsn.LSN) *Layer {
	t.Helper()
	c, err := pagecache.New(pagecache.Config{SizeBytes: 64 * pagecache.PageSize}, prometheus.NewRegistry())
	require.NoError(t, err)
	// A budget of 4 chunks: bigger layers keep some chunks in memory and
	// write the rest to the file.
	f, err := ephemeral.Create(t.TempDir(), 1, c, ephemeral.NewMemory(4*ephemeral.ChunkSize))
	require.NoError(t, err)
	l := New(f, start)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

type got struct {
	at  lsn.LSN
	val string
}

func collect(t *testing.T, l *Layer, k keyspace.Key, upto lsn.LSN) ([]got, bool) {
	t.Helper()
	var out []got
	complete, _, _, err := l.Get(context.Background(), k, upto, nil, func(at lsn.LSN, val []byte) (bool, error) {
		out = append(out, got{at, string(val)})
		return false, nil
	})
	require.NoError(t, err)
	return out, complete
}

func TestPutGetOrderAndWillInit(t *testing.T) {
	l := newLayer(t, 100)
	k := keyspace.Key{F4: 1, F6: 7}
	img := value.AppendImage(nil, []byte("base"))
	rec1 := value.AppendRecord(nil, 110, false, []byte("r1"))
	rec2 := value.AppendRecord(nil, 130, false, []byte("r2"))
	require.NoError(t, l.Put(k, 110, img))
	require.NoError(t, l.Put(k, 120, rec1))
	require.NoError(t, l.Put(keyspace.Key{F4: 2}, 125, img))
	require.NoError(t, l.Put(k, 140, rec2))

	vs, complete := collect(t, l, k, 139)
	require.True(t, complete, "walk ends at the image")
	require.Equal(t, []got{{120, string(rec1)}, {110, string(img)}}, vs)

	vs, complete = collect(t, l, k, 1000)
	require.True(t, complete)
	require.Len(t, vs, 3)
	require.Equal(t, lsn.LSN(140), vs[0].at)

	vs, complete = collect(t, l, k, 109)
	require.False(t, complete)
	require.Empty(t, vs)

	last, ok := l.LastLSN(k, 135)
	require.True(t, ok)
	require.Equal(t, lsn.LSN(120), last)
	_, ok = l.LastLSN(keyspace.Key{F4: 9}, 135)
	require.False(t, ok)

	// The visitor can stop early.
	n := 0
	_, oldest, _, err := l.Get(context.Background(), k, 1000, nil, func(lsn.LSN, []byte) (bool, error) { n++; return true, nil })
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, lsn.LSN(140), oldest)
	require.Equal(t, 4, l.Len())
	require.Equal(t, lsn.LSN(140), l.MaxLSN())
}

func TestOrderingFreezeAndReplace(t *testing.T) {
	l := newLayer(t, 100)
	k := keyspace.Key{F6: 1}
	require.ErrorIs(t, l.Put(k, 99, value.AppendImage(nil, []byte("x"))), ErrLSNOrder)
	require.NoError(t, l.Put(k, 200, value.AppendImage(nil, []byte("first"))))
	require.NoError(t, l.Put(k, 200, value.AppendImage(nil, []byte("second"))))
	vs, _ := collect(t, l, k, 200)
	require.Equal(t, []got{{200, string(value.AppendImage(nil, []byte("second")))}}, vs, "last write at one LSN wins")
	require.ErrorIs(t, l.Put(k, 150, value.AppendImage(nil, []byte("x"))), ErrLSNOrder)
	require.Error(t, l.Put(k, 300, nil))

	require.ErrorIs(t, l.Freeze(200), ErrLSNOrder)
	require.NoError(t, l.Freeze(201))
	end, frozen := l.End()
	require.True(t, frozen)
	require.Equal(t, lsn.LSN(201), end)
	require.ErrorIs(t, l.Put(k, 300, value.AppendImage(nil, []byte("x"))), ErrFrozen)
	require.ErrorIs(t, l.Freeze(400), ErrFrozen)
	vs, _ = collect(t, l, k, 1000)
	require.Len(t, vs, 1, "frozen layers stay readable")
}

func TestIterateIsKeyThenLSNOrder(t *testing.T) {
	l := newLayer(t, 1)
	r := rand.New(rand.NewPCG(3, 4))
	type kv struct {
		k  keyspace.Key
		at lsn.LSN
	}
	var want []kv
	at := lsn.LSN(1)
	for i := 0; i < 2000; i++ {
		at += lsn.LSN(1 + r.IntN(3))
		k := keyspace.Key{F4: uint32(r.IntN(50)), F6: uint32(r.IntN(4))}
		require.NoError(t, l.Put(k, at, value.AppendRecord(nil, at, false, []byte(fmt.Sprint(i)))))
		want = append(want, kv{k, at})
	}
	var prev *kv
	n := 0
	require.NoError(t, l.Iterate(context.Background(), func(k keyspace.Key, at lsn.LSN, val []byte) error {
		cur := kv{k, at}
		if prev != nil {
			c := prev.k.Compare(k)
			require.True(t, c < 0 || (c == 0 && prev.at < at), "order violated at %v after %v", cur, *prev)
		}
		v, err := value.Decode(val)
		require.NoError(t, err)
		require.Equal(t, at, v.RecordStart)
		prev = &cur
		n++
		return nil
	}))
	require.Equal(t, len(want), n)
	require.Equal(t, l.Size(), l.file.Size())
}

func TestConcurrentReadersAndWriter(t *testing.T) {
	l := newLayer(t, 1)
	keys := []keyspace.Key{{F6: 1}, {F6: 2}, {F6: 3}}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				select {
				case <-done:
					return
				default:
				}
				prev := lsn.LSN(1 << 62)
				var err error
				_, _, buf, err = l.Get(context.Background(), keys[w], 1<<62, buf, func(at lsn.LSN, val []byte) (bool, error) {
					if at >= prev {
						return true, fmt.Errorf("not newest first: %s after %s", at, prev)
					}
					prev = at
					v, err := value.Decode(val)
					if err != nil || v.RecordStart != at {
						return true, fmt.Errorf("bad value at %s: %v", at, err)
					}
					return false, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 1; i <= 3000; i++ {
		at := lsn.LSN(i + 1)
		require.NoError(t, l.Put(keys[i%3], at, value.AppendRecord(nil, at, false, make([]byte, 100+i%500))))
	}
	close(done)
	wg.Wait()
}

// TestManyVersionsOfOneKey crosses every chunk boundary of a key's
// versions, replacing versions (same LSN) at and around the boundaries,
// and checks reads against a model while a snapshot taken earlier keeps
// reading what it saw.
func TestManyVersionsOfOneKey(t *testing.T) {
	l := newLayer(t, 1)
	k := keyspace.Key{F4: 3, F6: 9}
	type ver struct {
		at  lsn.LSN
		val string
	}
	var model []ver
	var early snapshot
	var earlyModel []ver
	for i := range 300 {
		at := lsn.LSN(10 + 10*i)
		val := value.AppendRecord(nil, at, false, []byte(fmt.Sprint("v", i)))
		require.NoError(t, l.Put(k, at, val))
		model = append(model, ver{at, string(val)})
		if i%7 == 0 || i == 4 || i == 20 || i == 84 {
			// A second put at the same LSN wins.
			val = value.AppendRecord(nil, at, false, []byte(fmt.Sprint("w", i)))
			require.NoError(t, l.Put(k, at, val))
			model[len(model)-1].val = string(val)
		}
		if i == 50 {
			early = l.versionsOf(k)
			earlyModel = slices.Clone(model)
		}
	}
	require.Equal(t, len(model), l.Len())
	for _, upto := range []lsn.LSN{9, 10, 15, 20, 55, 215, 216, 1000, 3005, 5000} {
		var want []got
		for i := len(model) - 1; i >= 0; i-- {
			if model[i].at <= upto {
				want = append(want, got{model[i].at, model[i].val})
			}
		}
		vs, complete := collect(t, l, k, upto)
		require.False(t, complete)
		require.Equal(t, want, vs, "upto %s", upto)
		last, ok := l.LastLSN(k, upto)
		require.Equal(t, len(want) > 0, ok)
		if ok {
			require.Equal(t, want[0].at, last)
		}
	}
	require.Equal(t, len(earlyModel), early.n)
	for i := range early.n {
		require.Equal(t, earlyModel[i].at, early.at(i).lsn, "version %d of the early snapshot", i)
	}
	i := 0
	require.NoError(t, l.Iterate(context.Background(), func(key keyspace.Key, at lsn.LSN, val []byte) error {
		require.Equal(t, k, key)
		require.Equal(t, model[i], ver{at, string(val)})
		i++
		return nil
	}))
	require.Equal(t, len(model), i)
}
