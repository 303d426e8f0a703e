package inmemory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/value"
)

// Errors.
var (
	// ErrFrozen is returned (wrapped) by Put on a frozen layer.
	ErrFrozen = errors.New("inmemory: layer is frozen")
	// ErrLSNOrder is returned (wrapped) by Put for an LSN outside the layer
	// or below the layer's newest LSN.
	ErrLSNOrder = errors.New("inmemory: put out of LSN order")
)

// maxValueLen bounds one value; a page image plus headers is far below it.
const maxValueLen = 1 << 30

type version struct {
	lsn      lsn.LSN
	off      uint64
	n        uint32
	willInit bool
}

// versions are one key's versions by ascending LSN, in chunks that are
// never moved or regrown: appending never copies earlier versions (a
// doubling slice would allocate about twice what it keeps). Chunk 0 is
// first (one version inline: one allocation per new key), chunk 1 holds 4,
// chunk 2 16, every later one chunkLen. Every chunk slice is created at
// full length and its header never changes, so readers take (chunks, n)
// under the layer's lock and read versions [0, n) without it while Put
// writes element n and beyond. Put replaces a version a reader may hold
// (same key, same LSN) by copying its chunk and the chunk list.
type versions struct {
	chunks [][]version
	n      int
	first  [1]version
	list   [1][]version // chunks' backing array until the second chunk
}

// chunkLen is the size of chunks from the fourth on: 1.5 KiB.
const chunkLen = 64

// chunkOf returns the chunk and the index in it of version i, and the
// length of that chunk.
func chunkOf(i int) (chunk, idx, length int) {
	switch {
	case i < 1:
		return 0, i, 1
	case i < 5:
		return 1, i - 1, 4
	case i < 21:
		return 2, i - 5, 16
	}
	return 3 + (i-21)/chunkLen, (i - 21) % chunkLen, chunkLen
}

func newVersions(v version) *versions {
	kv := &versions{first: [1]version{v}, n: 1}
	kv.list[0] = kv.first[:]
	kv.chunks = kv.list[:]
	return kv
}

// snapshot returns the versions a reader may read without the lock.
func (kv *versions) snapshot() snapshot { return snapshot{chunks: kv.chunks, n: kv.n} }

// last returns the newest version.
func (kv *versions) last() version {
	c, i, _ := chunkOf(kv.n - 1)
	return kv.chunks[c][i]
}

// add appends v. The caller holds the layer's lock.
func (kv *versions) add(v version) {
	c, i, length := chunkOf(kv.n)
	if c == len(kv.chunks) {
		kv.chunks = append(kv.chunks, make([]version, length))
	}
	kv.chunks[c][i] = v
	kv.n++
}

// replaceLast replaces the newest version by v, copying what a reader may
// hold. The caller holds the layer's lock.
func (kv *versions) replaceLast(v version) {
	c, i, _ := chunkOf(kv.n - 1)
	chunk := slices.Clone(kv.chunks[c])
	chunk[i] = v
	chunks := slices.Clone(kv.chunks)
	chunks[c] = chunk
	kv.chunks = chunks
}

// snapshot is a stable view of one key's versions [0, n).
type snapshot struct {
	chunks [][]version
	n      int
}

func (s snapshot) at(i int) version {
	c, j, _ := chunkOf(i)
	return s.chunks[c][j]
}

// Layer is an in-memory layer. See the package doc.
type Layer struct {
	file  *ephemeral.File
	start lsn.LSN

	mu      sync.RWMutex
	index   map[keyspace.Key]*versions
	end     lsn.LSN // exclusive; valid when frozen
	frozen  bool
	maxLSN  lsn.LSN // newest LSN put
	entries int
	// The key of the last put and its versions: consecutive records often
	// change the same page (a bulk INSERT fills one heap page after the
	// other), and then Put needs no map lookup.
	lastKey      keyspace.Key
	lastVersions *versions
}

// New returns an open layer starting at start, writing to file.
func New(file *ephemeral.File, start lsn.LSN) *Layer {
	return &Layer{file: file, start: start, index: make(map[keyspace.Key]*versions)}
}

// Start returns the inclusive start LSN.
func (l *Layer) Start() lsn.LSN { return l.start }

// End returns the exclusive end LSN and whether the layer is frozen.
func (l *Layer) End() (lsn.LSN, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.end, l.frozen
}

// Size returns the bytes appended to the ephemeral file.
func (l *Layer) Size() uint64 { return l.file.Size() }

// Len returns the number of versions stored.
func (l *Layer) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.entries
}

// MaxLSN returns the newest LSN put (Invalid when empty).
func (l *Layer) MaxLSN() lsn.LSN {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.maxLSN
}

// Put stores an encoded value (package value) for key at at. LSNs must not
// go down across puts; a second put of the same key at the same LSN
// replaces the first (the last write of a record wins).
func (l *Layer) Put(key keyspace.Key, at lsn.LSN, encoded []byte) error {
	if len(encoded) == 0 || len(encoded) > maxValueLen {
		return fmt.Errorf("inmemory: value of %d bytes for %s at %s", len(encoded), key.Describe(), at)
	}
	l.mu.RLock()
	frozen, maxLSN := l.frozen, l.maxLSN
	l.mu.RUnlock()
	if frozen {
		return fmt.Errorf("%w: put of %s at %s", ErrFrozen, key.Describe(), at)
	}
	if at < l.start || at < maxLSN {
		return fmt.Errorf("%w: %s at %s, layer starts at %s and holds versions up to %s", ErrLSNOrder, key.Describe(), at, l.start, maxLSN)
	}
	off, err := l.file.Append(encoded)
	if err != nil {
		return err
	}
	v := version{lsn: at, off: off, n: uint32(len(encoded)), willInit: value.WillInit(encoded)}

	l.mu.Lock()
	defer l.mu.Unlock()
	kv := l.lastVersions
	if kv == nil || l.lastKey != key {
		kv = l.index[key]
	}
	switch {
	case kv == nil:
		kv = newVersions(v)
		l.index[key] = kv
		l.entries++
	case kv.last().lsn == at:
		kv.replaceLast(v)
	default:
		kv.add(v)
		l.entries++
	}
	l.lastKey, l.lastVersions = key, kv
	l.maxLSN = at
	return nil
}

// Freeze closes the layer to puts; end (exclusive) must be above every LSN
// put.
func (l *Layer) Freeze(end lsn.LSN) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.frozen {
		return fmt.Errorf("%w: already frozen at %s", ErrFrozen, l.end)
	}
	if end <= l.maxLSN || end < l.start {
		return fmt.Errorf("%w: freeze at %s but the layer [%s, …) holds versions up to %s", ErrLSNOrder, end, l.start, l.maxLSN)
	}
	l.end, l.frozen = end, true
	return nil
}

// Visitor receives versions from newest to oldest. val is only valid during
// the call. Return stop = true to end the walk.
type Visitor func(at lsn.LSN, val []byte) (stop bool, err error)

// Get calls visit for every version of key with LSN ≤ upto, newest first,
// stopping after a will-init value (an image or an initializing record) or
// when visit says stop. It reports whether a will-init value ended the walk,
// and the LSN of the oldest version visited. buf is scratch space for the
// values (grown as needed) and is returned for reuse.
func (l *Layer) Get(ctx context.Context, key keyspace.Key, upto lsn.LSN, buf []byte, visit Visitor) (complete bool, oldest lsn.LSN, _ []byte, err error) {
	vs := l.versionsOf(key)
	i := newestAtOrBelow(vs, upto)
	for ; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return false, oldest, buf, err
		}
		v := vs.at(i)
		buf = slices.Grow(buf[:0], int(v.n))[:v.n]
		if err := l.file.ReadAt(buf, v.off); err != nil {
			return false, oldest, buf, fmt.Errorf("inmemory: reading %s at %s: %w", key.Describe(), v.lsn, err)
		}
		oldest = v.lsn
		stop, err := visit(v.lsn, buf)
		if err != nil {
			return false, oldest, buf, err
		}
		if v.willInit {
			return true, oldest, buf, nil
		}
		if stop {
			return false, oldest, buf, nil
		}
	}
	return false, oldest, buf, nil
}

// versionsOf returns a snapshot of key's versions (see versions).
func (l *Layer) versionsOf(key keyspace.Key) snapshot {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if kv := l.index[key]; kv != nil {
		return kv.snapshot()
	}
	return snapshot{}
}

// newestAtOrBelow returns the index of the newest version with lsn ≤ upto, or -1.
func newestAtOrBelow(vs snapshot, upto lsn.LSN) int {
	lo, hi := 0, vs.n
	for lo < hi {
		m := (lo + hi) / 2
		if vs.at(m).lsn <= upto {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// LastLSN returns the LSN of the newest version of key at or below upto,
// and whether there is one. The page cache's inexact-LSN lookups use it.
func (l *Layer) LastLSN(key keyspace.Key, upto lsn.LSN) (lsn.LSN, bool) {
	vs := l.versionsOf(key)
	if i := newestAtOrBelow(vs, upto); i >= 0 {
		return vs.at(i).lsn, true
	}
	return lsn.Invalid, false
}

// Keys returns every key, sorted. For a frozen layer the result is final.
func (l *Layer) Keys() []keyspace.Key {
	l.mu.RLock()
	keys := make([]keyspace.Key, 0, len(l.index))
	for k := range l.index {
		keys = append(keys, k)
	}
	l.mu.RUnlock()
	slices.SortFunc(keys, keyspace.Key.Compare)
	return keys
}

// Iterate calls fn for every version in (key, LSN) order — the order a
// delta layer file is written in. val is only valid during the call and
// must not be modified (it is read-only memory).
//
// It reads the values from a mapping of the ephemeral file (see
// ephemeral.File.Map), not through the page cache: a flush goes through the
// whole file once, most of it long evicted from the cache, and would cost
// a cache miss and a pread per block. Versions put after Iterate starts are
// not visited (a frozen layer has none).
func (l *Layer) Iterate(ctx context.Context, fn func(key keyspace.Key, at lsn.LSN, val []byte) error) error {
	m, err := l.file.Map()
	if err != nil {
		return err
	}
	defer m.Close()
	for _, k := range l.Keys() {
		vs := l.versionsOf(k)
		for i := range vs.n {
			if err := ctx.Err(); err != nil {
				return err
			}
			v := vs.at(i)
			if v.off >= m.Size() {
				break // put after Map (a key's versions are appended in order)
			}
			val, err := m.Slice(v.off, v.n)
			if err != nil {
				return fmt.Errorf("inmemory: reading %s at %s: %w", k.Describe(), v.lsn, err)
			}
			if err := fn(k, v.lsn, val); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close releases the ephemeral file (after the layer was flushed or when
// the timeline shuts down).
func (l *Layer) Close() error { return l.file.Close() }
