package walingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/native"
	"github.com/stratadb/strata/services/pageserver/value"
)

// ErrNeedsRedo is returned by MemStore.Materialize when a key's chain holds
// a PostgreSQL WAL record, which only walredo can apply.
var ErrNeedsRedo = errors.New("walingest: page needs WAL redo")

// MemStore is an in-memory Store and PageReader for tests and benchmarks:
// every key maps to its versions in LSN order. It can materialize values
// whose chain is images and native records only (SLRU pages, VM pages,
// metadata). Safe for concurrent use.
type MemStore struct {
	mu       sync.Mutex
	versions map[keyspace.Key][]Version
	bytes    int
}

// Version is one value of a key.
type Version struct {
	LSN     lsn.LSN
	Encoded []byte
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{versions: make(map[keyspace.Key][]Version)}
}

// Put implements Store. Versions must arrive in LSN order; a second value
// for the same key and LSN is an error (the Ingester never writes one).
func (m *MemStore) Put(_ context.Context, key keyspace.Key, at lsn.LSN, encoded []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[key]
	if n := len(vs); n > 0 && vs[n-1].LSN >= at {
		return fmt.Errorf("walingest: memstore: %s put at %s after a version at %s", key.Describe(), at, vs[n-1].LSN)
	}
	m.versions[key] = append(vs, Version{LSN: at, Encoded: bytes.Clone(encoded)})
	m.bytes += len(encoded)
	return nil
}

// Latest implements Store.
func (m *MemStore) Latest(_ context.Context, key keyspace.Key) ([]byte, error) {
	m.mu.Lock()
	vs := m.versions[key]
	m.mu.Unlock()
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key.Describe())
	}
	v, err := value.Decode(vs[len(vs)-1].Encoded)
	if err != nil {
		return nil, err
	}
	if v.Kind != value.KindImage {
		return nil, fmt.Errorf("%w: metadata key %s holds a %s", ErrCorrupt, key.Describe(), v.Kind)
	}
	return v.Image, nil
}

// PageAt implements PageReader with Materialize.
func (m *MemStore) PageAt(_ context.Context, key keyspace.Key, at lsn.LSN) ([]byte, error) {
	return m.Materialize(key, at)
}

// Versions returns key's versions (shared, do not modify).
func (m *MemStore) Versions(key keyspace.Key) []Version {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[key]
}

// Keys returns every key with at least one version, in key order.
func (m *MemStore) Keys() []keyspace.Key {
	m.mu.Lock()
	keys := make([]keyspace.Key, 0, len(m.versions))
	for k := range m.versions {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	slices.SortFunc(keys, keyspace.Key.Compare)
	return keys
}

// Size returns the number of keys and the bytes of encoded values stored.
func (m *MemStore) Size() (keys, bytes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.versions), m.bytes
}

// Materialize returns the value of key as of at (inclusive): the newest
// image at or below at with every later native record applied. It fails
// with ErrNotFound if there is no image, and with ErrNeedsRedo if a
// PostgreSQL record is in the way.
func (m *MemStore) Materialize(key keyspace.Key, at lsn.LSN) ([]byte, error) {
	m.mu.Lock()
	vs := m.versions[key]
	m.mu.Unlock()
	end, _ := slices.BinarySearchFunc(vs, at+1, func(v Version, t lsn.LSN) int { return cmpLSN(v.LSN, t) })
	base := -1
	for i := end - 1; i >= 0; i-- {
		if value.WillInit(vs[i].Encoded) {
			base = i
			break
		}
	}
	if base < 0 {
		return nil, fmt.Errorf("%w: no image of %s at or below %s", ErrNotFound, key.Describe(), at)
	}
	first, err := value.Decode(vs[base].Encoded)
	if err != nil {
		return nil, err
	}
	if first.Kind != value.KindImage {
		return nil, fmt.Errorf("%w: %s at %s starts with a will-init WAL record", ErrNeedsRedo, key.Describe(), vs[base].LSN)
	}
	page := append([]byte(nil), first.Image...)
	for _, ver := range vs[base+1 : end] {
		v, err := value.Decode(ver.Encoded)
		if err != nil {
			return nil, err
		}
		if v.Kind != value.KindNative {
			return nil, fmt.Errorf("%w: %s has a WAL record at %s", ErrNeedsRedo, key.Describe(), ver.LSN)
		}
		if len(page) != pgtypes.BLCKSZ {
			return nil, fmt.Errorf("%w: native record on %d-byte value of %s", ErrCorrupt, len(page), key.Describe())
		}
		if err := native.Apply(v.NativeType, v.NativePayload, page, key, ver.LSN); err != nil {
			return nil, err
		}
	}
	return page, nil
}

func cmpLSN(a, b lsn.LSN) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
