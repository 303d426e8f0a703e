package ephemeral

import (
	"fmt"
	"slices"
)

// Mapping is a read-only view of the bytes a file held when Map was
// called, for a reader that goes through most of the file once (the flush
// of a frozen in-memory layer, in key order): no page cache lookup, lock
// or system call per block, and the shared page cache is left to readers
// that come back. Chunks kept in memory are read where they are; chunks
// written to the file through a read-only mapping of it. Blocks appended
// after Map are not in it. A Mapping stays valid after the File is closed,
// until Mapping.Close (the file's chunks stay out of the budget's reuse
// until then). Not safe for concurrent use: Slice may reuse a buffer.
type Mapping struct {
	path   string
	size   uint64
	chunks [][]byte // the file's chunks at Map; nil: in data
	tail   []byte   // copy of the bytes after the last chunk
	// data maps the file's bytes [dataOff, dataOff+len(data)): every chunk
	// written to the file.
	data    []byte
	dataOff uint64
	unmap   func() error
	file    *File // holds a reference until Close
	scratch []byte
}

// Map returns a Mapping of the bytes appended so far.
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
	m := &Mapping{path: f.path, size: f.size, chunks: slices.Clone(f.chunks), tail: slices.Clone(f.tail[:f.size-ts])}
	first, last := -1, -1
	for i, c := range f.chunks {
		if c == nil {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first >= 0 {
		off, n := uint64(first)*ChunkSize, uint64(last-first+1)*ChunkSize
		// Chunks kept in memory between the written ones are holes in the
		// file: populating the whole mapping would give them zero pages in
		// the OS page cache. Then map without populating, and only the
		// written chunks are faulted in as they are read.
		populate := true
		for _, c := range f.chunks[first : last+1] {
			if c != nil {
				populate = false
				break
			}
		}
		data, unmap, err := mapFile(f.f, off, n, populate)
		if err != nil {
			return nil, fmt.Errorf("ephemeral: mapping bytes %d..%d of %s: %w", off, off+n, f.path, err)
		}
		m.data, m.dataOff, m.unmap = data, off, unmap
	}
	f.refs++
	m.file = f
	return m, nil
}

// Size returns the number of bytes mapped.
func (m *Mapping) Size() uint64 { return m.size }

// part returns the bytes of chunk c (the tail for the last one).
func (m *Mapping) part(c uint64) []byte {
	if c < uint64(len(m.chunks)) {
		if b := m.chunks[c]; b != nil {
			return b
		}
		o := c*ChunkSize - m.dataOff
		return m.data[o : o+ChunkSize]
	}
	return m.tail
}

// Slice returns the n bytes at off. They alias the mapping or a buffer of
// it: valid until the next Slice or Close, and must not be written.
func (m *Mapping) Slice(off uint64, n uint32) ([]byte, error) {
	end := off + uint64(n)
	if end > m.size || end < off {
		return nil, fmt.Errorf("%w: %s: %d bytes at offset %d, mapping has %d", ErrOutOfRange, m.path, n, off, m.size)
	}
	if n == 0 {
		return nil, nil
	}
	if c := off / ChunkSize; c == (end-1)/ChunkSize {
		s := off - c*ChunkSize
		return m.part(c)[s : s+uint64(n) : s+uint64(n)], nil
	}
	// Across chunks that may lie apart: copy.
	m.scratch = m.scratch[:0]
	for off < end {
		p := m.part(off / ChunkSize)[off%ChunkSize:]
		k := min(uint64(len(p)), end-off)
		m.scratch = append(m.scratch, p[:k]...)
		off += k
	}
	return m.scratch, nil
}

// Close releases the mapping; slices from it must no longer be used.
func (m *Mapping) Close() error {
	var err error
	if m.unmap != nil {
		err = m.unmap()
	}
	if m.file != nil {
		m.file.mu.Lock()
		m.file.unrefLocked()
		m.file.mu.Unlock()
	}
	m.chunks, m.tail, m.data, m.unmap, m.file, m.scratch = nil, nil, nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("ephemeral: unmapping %s: %w", m.path, err)
	}
	return nil
}
