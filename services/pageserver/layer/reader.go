package layer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// Reader reads one immutable layer file through a BlockReader. Every block
// it reads is checksum-verified; every structural fact it relies on is
// checked, so a damaged file yields an error wrapping ErrCorrupt (naming
// the file and block), never wrong data.
//
// A Reader is safe for concurrent use. Each read borrows a cursor (two
// block buffers and a value buffer) from a pool, so steady-state reads do
// not allocate.
type Reader struct {
	name   string
	br     BlockReader
	closer io.Closer
	sum    Summary
	pool   sync.Pool
	// preverified: br checks block checksums itself (VerifiedBlockReader).
	preverified bool
}

// Version is one value of a key at an LSN.
type Version struct {
	LSN   lsn.LSN
	Value []byte
}

// Open opens the layer file called name (used in errors, and checked
// against the header when its base name parses as a layer file name) whose
// blocks br reads. blocks is the file's size in blocks as the caller knows
// it (FileBlockReader.Blocks); pass it so a truncated file is caught before
// any read. Open reads and verifies the header and the index root.
func Open(ctx context.Context, name string, br BlockReader, blocks uint32) (*Reader, error) {
	r := &Reader{name: name, br: br}
	_, r.preverified = br.(VerifiedBlockReader)
	r.pool.New = func() any { return r.newCursor() }
	c := r.getCursor()
	defer r.putCursor(c)
	if err := r.readBlock(ctx, 0, c.data); err != nil {
		return nil, err
	}
	c.dataValid = false
	sum, err := decodeHeader(c.data[:PayloadSize])
	if err != nil {
		return nil, corruptf(name, 0, "header: %v", err)
	}
	if sum.Blocks != blocks {
		blk := min(sum.Blocks, blocks)
		return nil, corruptf(name, blk, "header says %d blocks, the file has %d (truncated or extended)", sum.Blocks, blocks)
	}
	if fn, err := ParseFileName(filepath.Base(name)); err == nil {
		if fn.Kind != sum.Kind || fn.Keys != sum.Keys || fn.LSNs != sum.LSNs {
			return nil, corruptf(name, 0, "header describes %s layer %s but the file is named %s", sum.Kind, sum.FileName(), fn)
		}
	}
	r.sum = sum
	if _, err := c.loadNode(ctx, sum.root, sum.depth-1); err != nil {
		return nil, err
	}
	return r, nil
}

// OpenFile opens the layer file at path with a FileBlockReader; Close
// closes the file.
func OpenFile(ctx context.Context, path string) (*Reader, error) {
	fbr, err := OpenFileBlockReader(path)
	if err != nil {
		return nil, err
	}
	if fbr.Size()%BlockSize != 0 {
		_ = fbr.Close()
		return nil, corruptf(path, fbr.Blocks(), "file size %d is not a multiple of %d (truncated)", fbr.Size(), BlockSize)
	}
	r, err := Open(ctx, path, fbr, fbr.Blocks())
	if err != nil {
		_ = fbr.Close()
		return nil, err
	}
	r.closer = fbr
	return r, nil
}

// Close closes the file if the Reader opened it (OpenFile).
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Summary returns what the header says.
func (r *Reader) Summary() Summary { return r.sum }

// Name is the name given to Open.
func (r *Reader) Name() string { return r.name }

// Visit calls fn for every value of key with an LSN in lsns, oldest first,
// until fn returns false. value is valid only until fn returns; copy what
// you keep.
func (r *Reader) Visit(ctx context.Context, key keyspace.Key, lsns LSNRange, fn func(l lsn.LSN, value []byte) bool) error {
	if lsns.IsEmpty() {
		return nil
	}
	c := r.getCursor()
	defer r.putCursor(c)
	var kb [keyspace.Size]byte
	key.Put(kb[:])
	target := makeIKey(key, lsns.Start)
	n, leaf, pos, err := c.seek(ctx, target[:])
	if err != nil {
		return err
	}
	for {
		if pos == n.count {
			if leaf+1 >= r.sum.indexStart+r.sum.leafBlocks {
				return nil
			}
			leaf++
			if n, err = c.loadNode(ctx, leaf, 0); err != nil {
				return err
			}
			pos = 0
			continue
		}
		ik := n.keyAt(pos)
		if !bytes.Equal(ik[:keyspace.Size], kb[:]) {
			return nil
		}
		l := lsn.LSN(binary.BigEndian.Uint64(ik[keyspace.Size:]))
		if l >= lsns.End {
			return nil
		}
		v, err := c.readEntry(ctx, leaf, n.valueAt(pos), ik)
		if err != nil {
			return err
		}
		if !fn(l, v) {
			return nil
		}
		pos++
	}
}

// NewestLSN returns the LSN of the newest entry of key with an LSN in
// lsns, reading only the index (no value). The read path uses it to check a
// cached page version without reading values.
func (r *Reader) NewestLSN(ctx context.Context, key keyspace.Key, lsns LSNRange) (lsn.LSN, bool, error) {
	if lsns.IsEmpty() {
		return lsn.Invalid, false, nil
	}
	c := r.getCursor()
	defer r.putCursor(c)
	var kb [keyspace.Size]byte
	key.Put(kb[:])
	target := makeIKey(key, lsns.End)
	n, leaf, pos, err := c.seek(ctx, target[:])
	if err != nil {
		return lsn.Invalid, false, err
	}
	pos--
	if pos < 0 {
		if leaf == r.sum.indexStart {
			return lsn.Invalid, false, nil
		}
		leaf--
		if n, err = c.loadNode(ctx, leaf, 0); err != nil {
			return lsn.Invalid, false, err
		}
		pos = n.count - 1
		if pos < 0 {
			return lsn.Invalid, false, nil
		}
	}
	ik := n.keyAt(pos)
	if !bytes.Equal(ik[:keyspace.Size], kb[:]) {
		return lsn.Invalid, false, nil
	}
	l := lsn.LSN(binary.BigEndian.Uint64(ik[keyspace.Size:]))
	if l < lsns.Start {
		return lsn.Invalid, false, nil
	}
	return l, true, nil
}

// VisitReverse calls fn for every value of key with an LSN in lsns, newest
// first, until fn returns false — the read path's order: it stops at the
// first image or will-init record. value is valid only until fn returns.
func (r *Reader) VisitReverse(ctx context.Context, key keyspace.Key, lsns LSNRange, fn func(l lsn.LSN, value []byte) bool) error {
	if lsns.IsEmpty() {
		return nil
	}
	c := r.getCursor()
	defer r.putCursor(c)
	var kb [keyspace.Size]byte
	key.Put(kb[:])
	target := makeIKey(key, lsns.End)
	n, leaf, pos, err := c.seek(ctx, target[:])
	if err != nil {
		return err
	}
	for {
		pos--
		if pos < 0 {
			if leaf == r.sum.indexStart {
				return nil
			}
			leaf--
			if n, err = c.loadNode(ctx, leaf, 0); err != nil {
				return err
			}
			pos = n.count
			continue
		}
		ik := n.keyAt(pos)
		if !bytes.Equal(ik[:keyspace.Size], kb[:]) {
			return nil
		}
		l := lsn.LSN(binary.BigEndian.Uint64(ik[keyspace.Size:]))
		if l < lsns.Start {
			return nil
		}
		v, err := c.readEntry(ctx, leaf, n.valueAt(pos), ik)
		if err != nil {
			return err
		}
		if !fn(l, v) {
			return nil
		}
	}
}

// Versions returns copies of every value of key with an LSN in lsns, oldest
// first. It allocates; the read path uses VisitReverse.
func (r *Reader) Versions(ctx context.Context, key keyspace.Key, lsns LSNRange) ([]Version, error) {
	var out []Version
	err := r.Visit(ctx, key, lsns, func(l lsn.LSN, v []byte) bool {
		out = append(out, Version{LSN: l, Value: append([]byte(nil), v...)})
		return true
	})
	return out, err
}

// Image appends the value of key in an image layer to dst[:0] and returns
// it; a key the layer does not hold is ErrNotFound. With a dst of enough
// capacity (a page buffer) it does not allocate.
func (r *Reader) Image(ctx context.Context, key keyspace.Key, dst []byte) ([]byte, error) {
	if r.sum.Kind != KindImage {
		return dst[:0], fmt.Errorf("%w: Image on %s layer %s", ErrWrongKind, r.sum.Kind, r.name)
	}
	found := false
	err := r.Visit(ctx, key, r.sum.LSNs, func(_ lsn.LSN, v []byte) bool {
		dst = append(dst[:0], v...)
		found = true
		return false
	})
	if err != nil {
		return dst[:0], err
	}
	if !found {
		return dst[:0], fmt.Errorf("%w: %s in image layer %s", ErrNotFound, key, r.name)
	}
	return dst, nil
}

// cursor is the per-read state: one index block, one data block (each
// remembered so consecutive reads of the same block do not re-read it) and
// a buffer for values that span blocks.
type cursor struct {
	r        *Reader
	idx      []byte // leaf index block
	idxBlk   uint32
	idxValid bool
	// inner holds the last inner index node (the root, for a two-level
	// index), so that a seek does not re-read it after loading a leaf.
	inner      []byte
	innerBlk   uint32
	innerValid bool
	data       []byte
	dataBlk    uint32
	dataValid  bool
	val        []byte
}

func (r *Reader) newCursor() *cursor {
	buf := make([]byte, 3*BlockSize)
	return &cursor{r: r, idx: buf[:BlockSize:BlockSize], data: buf[BlockSize : 2*BlockSize : 2*BlockSize], inner: buf[2*BlockSize:]}
}

func (r *Reader) getCursor() *cursor { return r.pool.Get().(*cursor) }

func (r *Reader) putCursor(c *cursor) {
	// The cursor keeps its last index and data blocks: the file is
	// immutable, so the next read through this Reader may reuse them.
	// Do not pin a huge value buffer in the pool.
	if cap(c.val) > 4*BlockSize {
		c.val = nil
	}
	r.pool.Put(c)
}

// readBlock reads and verifies block blkno into dst.
func (r *Reader) readBlock(ctx context.Context, blkno uint32, dst []byte) error {
	if err := r.br.ReadBlock(ctx, blkno, dst); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corruptf(r.name, blkno, "block missing or partial (file truncated): %v", err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return err
		}
		return fmt.Errorf("layer: reading %s block %d: %w", r.name, blkno, err)
	}
	if r.preverified {
		return nil
	}
	if err := verifyBlock(dst, blkno); err != nil {
		return corruptf(r.name, blkno, "%v", err)
	}
	return nil
}

// loadNode reads index block blk into c.idx (unless it is there already)
// and checks that it is a node of the expected level with the count the
// layout implies.
func (c *cursor) loadNode(ctx context.Context, blk uint32, level uint8) (node, error) {
	r := c.r
	buf, bufBlk, bufValid := c.idx, &c.idxBlk, &c.idxValid
	if level > 0 {
		buf, bufBlk, bufValid = c.inner, &c.innerBlk, &c.innerValid
	}
	if !*bufValid || *bufBlk != blk {
		*bufValid = false
		if err := r.readBlock(ctx, blk, buf); err != nil {
			return node{}, err
		}
		*bufBlk, *bufValid = blk, true
	}
	n, err := decodeNode(buf[:PayloadSize])
	if err != nil {
		return node{}, corruptf(r.name, blk, "%v", err)
	}
	if n.level != level {
		return node{}, corruptf(r.name, blk, "index node has level %d, want %d", n.level, level)
	}
	if level == 0 {
		leafNo := uint64(blk - r.sum.indexStart)
		want := min(uint64(nodeCapacity), r.sum.Entries-leafNo*nodeCapacity)
		if uint64(n.count) != want {
			return node{}, corruptf(r.name, blk, "leaf %d holds %d entries, the layout implies %d", leafNo, n.count, want)
		}
	} else if n.count == 0 {
		return node{}, corruptf(r.name, blk, "empty inner index node")
	}
	return n, nil
}

// seek descends from the root to the leaf holding the first index key >=
// target and returns that leaf (loaded in c.idx), its block and the
// position (possibly n.count: the answer is the next leaf's first entry).
func (c *cursor) seek(ctx context.Context, target []byte) (node, uint32, int, error) {
	r := c.r
	blk, level := r.sum.root, r.sum.depth-1
	leafEnd := r.sum.indexStart + r.sum.leafBlocks
	for {
		n, err := c.loadNode(ctx, blk, level)
		if err != nil {
			return node{}, 0, 0, err
		}
		i := n.lowerBound(target)
		if level == 0 {
			return n, blk, i, nil
		}
		// The child holding target is the last one whose first key is <=
		// target.
		if i == n.count || !bytes.Equal(n.keyAt(i), target) {
			i = max(i-1, 0)
		}
		child := n.valueAt(i)
		lo, hi := uint64(leafEnd), uint64(blk) // inner nodes below this level
		if level == 1 {
			lo, hi = uint64(r.sum.indexStart), uint64(leafEnd)
		}
		if child < lo || child >= hi {
			return node{}, 0, 0, corruptf(r.name, blk, "index child block %d outside [%d, %d)", child, lo, hi)
		}
		blk, level = uint32(child), level-1
	}
}

// dataPos maps an offset in the entry stream to its block and position.
func dataPos(off uint64) (uint32, int) {
	return uint32(1 + off/PayloadSize), int(off % PayloadSize)
}

// loadData makes block blk the current data block.
func (c *cursor) loadData(ctx context.Context, blk uint32) error {
	if c.dataValid && c.dataBlk == blk {
		return nil
	}
	c.dataValid = false
	if err := c.r.readBlock(ctx, blk, c.data); err != nil {
		return err
	}
	c.dataBlk, c.dataValid = blk, true
	return nil
}

// readStream copies len(dst) bytes of the entry stream at off into dst.
// The caller has checked that they lie within DataBytes.
func (c *cursor) readStream(ctx context.Context, off uint64, dst []byte) error {
	for len(dst) > 0 {
		blk, in := dataPos(off)
		if err := c.loadData(ctx, blk); err != nil {
			return err
		}
		n := copy(dst, c.data[in:PayloadSize])
		dst = dst[n:]
		off += uint64(n)
	}
	return nil
}

// readEntry reads the entry at stream offset off, which index block idxBlk
// says has index key want, and returns its value: a slice of the data
// block when the value lies in one block, else of c.val. Valid until the
// cursor's next read.
func (c *cursor) readEntry(ctx context.Context, idxBlk uint32, off uint64, want []byte) ([]byte, error) {
	r := c.r
	if off > r.sum.DataBytes || r.sum.DataBytes-off < entryHeaderLen {
		return nil, corruptf(r.name, idxBlk, "index points at data offset %d, the data has %d bytes", off, r.sum.DataBytes)
	}
	var hdr [entryHeaderLen]byte
	if err := c.readStream(ctx, off, hdr[:]); err != nil {
		return nil, err
	}
	blk, _ := dataPos(off)
	if want != nil && !bytes.Equal(hdr[:ikeyLen], want) {
		return nil, corruptf(r.name, blk, "entry at data offset %d does not match its index entry in block %d", off, idxBlk)
	}
	return c.readValue(ctx, off, hdr[:])
}

// readValue checks the length in the entry header hdr read at off and
// returns the value.
func (c *cursor) readValue(ctx context.Context, off uint64, hdr []byte) ([]byte, error) {
	r := c.r
	vlen := binary.BigEndian.Uint32(hdr[ikeyLen:])
	start := off + entryHeaderLen
	if vlen > r.sum.MaxValueLen || uint64(vlen) > r.sum.DataBytes-start {
		blk, _ := dataPos(off)
		return nil, corruptf(r.name, blk, "value length %d at data offset %d exceeds the longest value %d or the data (%d bytes)", vlen, off, r.sum.MaxValueLen, r.sum.DataBytes)
	}
	if vlen == 0 {
		return c.data[:0], nil
	}
	blk, in := dataPos(start)
	if in+int(vlen) <= PayloadSize {
		if err := c.loadData(ctx, blk); err != nil {
			return nil, err
		}
		return c.data[in : in+int(vlen) : in+int(vlen)], nil
	}
	if cap(c.val) < int(vlen) {
		c.val = make([]byte, vlen)
	}
	c.val = c.val[:vlen]
	if err := c.readStream(ctx, start, c.val); err != nil {
		return nil, err
	}
	return c.val, nil
}

// Iterator walks every entry of a layer in (key, LSN) order by reading the
// entry stream sequentially (not the index), checking order, ranges and
// counts as it goes. For compaction and tests. Not safe for concurrent use.
//
//	it := r.Iter()
//	defer it.Close()
//	for it.Next(ctx) { use(it.Key(), it.LSN(), it.Value()) }
//	if err := it.Err(); err != nil { ... }
type Iterator struct {
	r       *Reader
	c       *cursor
	off     uint64
	n       uint64
	key     keyspace.Key
	lsn     lsn.LSN
	val     []byte
	prev    ikey
	hasPrev bool
	err     error
	done    bool
}

// Iter returns an iterator positioned before the first entry.
func (r *Reader) Iter() *Iterator { return &Iterator{r: r, c: r.getCursor()} }

// Next advances to the next entry. It returns false at the end or on error
// (see Err).
func (it *Iterator) Next(ctx context.Context) bool {
	if it.done {
		return false
	}
	r := it.r
	if it.off == r.sum.DataBytes {
		it.done = true
		if it.n != r.sum.Entries {
			blk, _ := dataPos(max(it.off, 1) - 1)
			it.err = corruptf(r.name, blk, "entry stream holds %d entries, header says %d", it.n, r.sum.Entries)
		}
		return false
	}
	blk, _ := dataPos(it.off)
	fail := func(err error) bool {
		it.err, it.done, it.val = err, true, nil
		return false
	}
	if it.n == r.sum.Entries || r.sum.DataBytes-it.off < entryHeaderLen {
		return fail(corruptf(r.name, blk, "data after the last of %d entries at offset %d", r.sum.Entries, it.off))
	}
	var hdr [entryHeaderLen]byte
	if err := it.c.readStream(ctx, it.off, hdr[:]); err != nil {
		return fail(err)
	}
	var ik ikey
	copy(ik[:], hdr[:ikeyLen])
	key, _ := keyspace.FromBytes(ik[:keyspace.Size])
	l := ik.lsn()
	if !r.sum.Keys.Contains(key) || !r.sum.LSNs.Contains(l) {
		return fail(corruptf(r.name, blk, "entry key %s at %s outside the layer's %s at %s", key, l, r.sum.Keys, r.sum.LSNs))
	}
	if it.hasPrev {
		ordered := bytes.Compare(it.prev[:], ik[:]) < 0
		if r.sum.Kind == KindImage {
			ordered = bytes.Compare(it.prev[:keyspace.Size], ik[:keyspace.Size]) < 0
		}
		if !ordered {
			return fail(corruptf(r.name, blk, "entry key %s at %s is out of order", key, l))
		}
	}
	v, err := it.c.readValue(ctx, it.off, hdr[:])
	if err != nil {
		return fail(err)
	}
	it.key, it.lsn, it.val = key, l, v
	it.prev, it.hasPrev = ik, true
	it.off += entryHeaderLen + uint64(len(v))
	it.n++
	return true
}

// Key, LSN and Value describe the current entry; Value is valid until the
// next call to Next.
func (it *Iterator) Key() keyspace.Key { return it.key }

// LSN: see Key.
func (it *Iterator) LSN() lsn.LSN { return it.lsn }

// Value: see Key.
func (it *Iterator) Value() []byte { return it.val }

// Err is the error that ended the iteration, if any.
func (it *Iterator) Err() error { return it.err }

// Close releases the iterator's buffers. The iterator is unusable after.
func (it *Iterator) Close() {
	if it.c != nil {
		it.r.putCursor(it.c)
		it.c = nil
	}
	it.done = true
}
