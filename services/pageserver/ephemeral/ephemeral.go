package ephemeral

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/stratadb/strata/services/pageserver/pagecache"
)

// BlockSize is the block size of the file and of a page cache slot.
const BlockSize = pagecache.PageSize

// writeBufferBlocks is how many blocks are buffered in memory and then
// kept as one chunk or written with one pwrite: one syscall per 256 KiB
// instead of per 8 KiB block.
const writeBufferBlocks = 32

// ErrClosed is returned (wrapped) by operations on a closed file.
var ErrClosed = errors.New("ephemeral: file closed")

// ErrOutOfRange is returned (wrapped) for a read beyond the written size.
var ErrOutOfRange = errors.New("ephemeral: read beyond the end of the file")

const filePrefix = "ephemeral-"

// File is an ephemeral file. See the package doc.
type File struct {
	path  string
	cache *pagecache.Cache
	mem   *Memory
	id    pagecache.FileID

	mu   sync.RWMutex // guards everything below
	f    *os.File
	size uint64
	// tail holds the bytes from tailStart on: those not yet in a chunk.
	tail []byte
	// chunks[i] holds the bytes [i*ChunkSize, (i+1)*ChunkSize) when they
	// are kept in memory, nil when they were written to the file;
	// len(chunks) == tailStart/ChunkSize. Each non-nil one is a chunk of
	// mem's budget.
	chunks [][]byte
	// refs is 1 until Close, plus one per open Mapping: the chunks go
	// back to mem when it drops to 0.
	refs        int
	closed      bool // no more appends or reads
	closeCalled bool
}

// tailStart is the offset of tail[0]: everything before it is in a chunk.
func (f *File) tailStart() uint64 {
	return f.size / ChunkSize * ChunkSize
}

// Create creates dir/ephemeral-<seq>, replacing a stale file of that name.
// Full chunks are kept in memory while mem (which may be nil) has room,
// and written to the file otherwise.
func Create(dir string, seq uint64, cache *pagecache.Cache, mem *Memory) (*File, error) {
	path := filepath.Join(dir, fmt.Sprintf("%s%d", filePrefix, seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ephemeral: creating %s: %w", path, err)
	}
	return &File{path: path, cache: cache, mem: mem, id: cache.NewFileID(), f: f, tail: mem.buffer(), refs: 1}, nil
}

// RemoveStale deletes every ephemeral file in dir (left by a previous run).
func RemoveStale(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("ephemeral: listing %s: %w", dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), filePrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("ephemeral: removing stale %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Size returns the number of bytes appended.
func (f *File) Size() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.size
}

// Append appends data and returns the offset of its first byte. Only one
// goroutine may append at a time.
func (f *File) Append(data []byte) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, fmt.Errorf("%w: %s", ErrClosed, f.path)
	}
	start := f.size
	for len(data) > 0 {
		inTail := int(f.size - f.tailStart())
		n := copy(f.tail[inTail:], data)
		data = data[n:]
		f.size += uint64(n)
		if inTail+n < len(f.tail) {
			continue
		}
		// The buffer is a full chunk: keep it, or write it out and reuse
		// the buffer.
		if f.mem.reserve() {
			f.chunks = append(f.chunks, f.tail)
			f.tail = f.mem.buffer()
			continue
		}
		if err := f.flushTailLocked(f.size - ChunkSize); err != nil {
			// The file is now shorter than size says; refuse further use.
			f.closed = true
			_ = f.f.Close()
			return 0, err
		}
		f.chunks = append(f.chunks, nil)
		if f.mem != nil {
			f.mem.written.Add(1)
		}
	}
	return start, nil
}

// flushTailLocked writes the full write buffer, which starts at offset off,
// to the file and its blocks to the page cache.
func (f *File) flushTailLocked(off uint64) error {
	if _, err := f.f.WriteAt(f.tail, int64(off)); err != nil {
		return fmt.Errorf("ephemeral: writing blocks %d..%d of %s: %w", off/BlockSize, off/BlockSize+writeBufferBlocks-1, f.path, err)
	}
	for i := range writeBufferBlocks {
		w, err := f.cache.LockEphemeralForWrite(f.id, uint32(off/BlockSize)+uint32(i))
		if err != nil {
			// The block is in the file; the cache will read it on demand.
			continue
		}
		copy(w.Bytes(), f.tail[i*BlockSize:(i+1)*BlockSize])
		w.MarkValid()
		w.Release()
	}
	return nil
}

// ReadAt fills dst with the bytes at off. The range must lie within Size.
func (f *File) ReadAt(dst []byte, off uint64) error {
	f.mu.RLock()
	size, closed := f.size, f.closed
	f.mu.RUnlock()
	if closed {
		return fmt.Errorf("%w: %s", ErrClosed, f.path)
	}
	if off+uint64(len(dst)) > size || off+uint64(len(dst)) < off {
		return fmt.Errorf("%w: %s: %d bytes at offset %d, file has %d", ErrOutOfRange, f.path, len(dst), off, size)
	}
	for len(dst) > 0 {
		blk := off / BlockSize
		inBlk := off % BlockSize
		// The write buffer may fill up and become a chunk while we read,
		// and Close gives the chunks back: copy from memory under the lock
		// that guards them.
		f.mu.RLock()
		if f.closed {
			f.mu.RUnlock()
			return fmt.Errorf("%w: %s", ErrClosed, f.path)
		}
		var n int
		inFile := false
		if ts := f.tailStart(); off >= ts {
			n = copy(dst, f.tail[off-ts:f.size-ts])
		} else if c := f.chunks[off/ChunkSize]; c != nil {
			n = copy(dst, c[off%ChunkSize:])
		} else {
			inFile = true
		}
		f.mu.RUnlock()
		if inFile {
			g, err := f.cache.ReadEphemeral(f.id, uint32(blk), func(page []byte) error {
				if _, err := f.f.ReadAt(page, int64(blk)*BlockSize); err != nil {
					if errors.Is(err, os.ErrClosed) {
						// Closed while we read (the layer was flushed).
						return fmt.Errorf("%w: %s", ErrClosed, f.path)
					}
					return fmt.Errorf("ephemeral: reading block %d of %s: %w", blk, f.path, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			n = copy(dst, g.Bytes()[inBlk:])
			g.Release()
		}
		dst = dst[n:]
		off += uint64(n)
	}
	return nil
}

// Close closes and deletes the file and drops its cached blocks. Reads
// after Close fail with ErrClosed. The chunks kept in memory go back to the
// budget once no Mapping uses them.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closeCalled {
		return nil
	}
	f.closeCalled, f.closed = true, true
	f.cache.InvalidateFile(f.id)
	err := f.f.Close()
	if errors.Is(err, os.ErrClosed) {
		err = nil // closed by a failed write
	}
	if rerr := os.Remove(f.path); rerr != nil && !os.IsNotExist(rerr) && err == nil {
		err = rerr
	}
	f.unrefLocked()
	if err != nil {
		return fmt.Errorf("ephemeral: closing %s: %w", f.path, err)
	}
	return nil
}

// unrefLocked drops one reference; the last one gives the chunks and the
// write buffer back to the budget.
func (f *File) unrefLocked() {
	f.refs--
	if f.refs > 0 {
		return
	}
	var bufs [][]byte
	for _, c := range f.chunks {
		if c != nil {
			bufs = append(bufs, c)
		}
	}
	held := len(bufs)
	f.mem.release(held, append(bufs, f.tail))
	f.chunks, f.tail = nil, nil
}
