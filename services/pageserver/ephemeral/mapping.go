package ephemeral

import "fmt"

// Mapping is a read-only view of the bytes a file held when Map was
// called, for a reader that goes through most of the file once (the flush
// of a frozen in-memory layer, in key order): no page cache lookup, lock
// or system call per block, and the shared page cache is left to readers
// that come back. Blocks appended after Map are not in it. A Mapping stays
// valid after the File is closed, until Mapping.Close. Safe for concurrent
// reads.
type Mapping struct {
	path  string
	data  []byte
	unmap func() error
}

// Map returns a Mapping of the bytes appended so far. It first writes the
// partly filled write buffer to the file (it is written again, whole, when
// it fills), so that the file holds every byte appended.
func (f *File) Map() (*Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, fmt.Errorf("%w: %s", ErrClosed, f.path)
	}
	if f.size == 0 {
		return &Mapping{path: f.path}, nil
	}
	ts := f.tailStart()
	if n := f.size - ts; n > 0 {
		if _, err := f.f.WriteAt(f.tail[:n], int64(ts)); err != nil {
			return nil, fmt.Errorf("ephemeral: writing the %d buffered bytes of %s: %w", n, f.path, err)
		}
	}
	data, unmap, err := mapFile(f.f, f.size)
	if err != nil {
		return nil, fmt.Errorf("ephemeral: mapping %d bytes of %s: %w", f.size, f.path, err)
	}
	return &Mapping{path: f.path, data: data, unmap: unmap}, nil
}

// Size returns the number of bytes mapped.
func (m *Mapping) Size() uint64 { return uint64(len(m.data)) }

// Slice returns the n bytes at off. They alias the mapping: valid until
// Close, and must not be written.
func (m *Mapping) Slice(off uint64, n uint32) ([]byte, error) {
	end := off + uint64(n)
	if end > uint64(len(m.data)) || end < off {
		return nil, fmt.Errorf("%w: %s: %d bytes at offset %d, mapping has %d", ErrOutOfRange, m.path, n, off, len(m.data))
	}
	return m.data[off:end:end], nil
}

// Close releases the mapping; slices from it must no longer be used.
func (m *Mapping) Close() error {
	if m.unmap == nil {
		return nil
	}
	err := m.unmap()
	m.data, m.unmap = nil, nil
	if err != nil {
		return fmt.Errorf("ephemeral: unmapping %s: %w", m.path, err)
	}
	return nil
}
