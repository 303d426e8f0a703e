package layer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// writeBufferSize is the size of the buffer blocks are built in before
// they are written: large enough that writes cost few syscalls. A multiple
// of BlockSize.
const writeBufferSize = 256 << 10

// writer is the part shared by DeltaWriter and ImageWriter: it streams
// entries into data blocks of a temp file, keeps the index in memory (one
// indexEntry per entry, 40 bytes), and at Finish writes the index, the
// header, fsyncs and renames.
type writer struct {
	dir       string
	finalPath string
	tmpPath   string
	f         *os.File
	buf       []byte // writeBufferSize bytes: blocks are built in place
	bufUsed   int    // bytes of buf holding sealed blocks
	blk       []byte // the block being filled: buf[bufUsed:bufUsed+BlockSize]
	used      int
	nextBlk   uint32
	sum       Summary
	index     []indexEntry
	lastKey   keyspace.Key
	lastIKey  ikey
	hasLast   bool
	err       error // sticky: set by an I/O error, Finish or Abort
}

func newWriter(dir string, sum Summary) (*writer, error) {
	if sum.Keys.IsEmpty() {
		return nil, fmt.Errorf("%w: empty key range %s", ErrInvalidRange, sum.Keys)
	}
	if sum.LSNs.IsEmpty() {
		return nil, fmt.Errorf("%w: empty LSN range %s", ErrInvalidRange, sum.LSNs)
	}
	name := sum.FileName()
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("layer: creating temp file for %s in %s: %w", name, dir, err)
	}
	w := &writer{
		dir:       dir,
		finalPath: filepath.Join(dir, name),
		tmpPath:   f.Name(),
		f:         f,
		buf:       make([]byte, writeBufferSize),
		sum:       sum,
	}
	// Block 0 is written last, in place; reserve it (zeros) so the rest of
	// the file is one sequential stream.
	w.bufUsed = BlockSize
	w.blk = w.buf[BlockSize : 2*BlockSize]
	w.nextBlk = 1
	return w, nil
}

// fail records err as sticky and removes the temp file.
func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
	if w.f != nil {
		_ = w.f.Close()
		_ = os.Remove(w.tmpPath)
		w.f = nil
	}
}

func (w *writer) usable() error {
	if w.err == ErrWriterClosed {
		return ErrWriterClosed
	}
	if w.err != nil {
		return fmt.Errorf("%w: %w", ErrWriterClosed, w.err)
	}
	return nil
}

// put appends one entry; the caller has checked order and range.
func (w *writer) put(k keyspace.Key, ik ikey, value []byte) error {
	if len(value) > MaxValueLen {
		return fmt.Errorf("%w: %d bytes for key %s, limit %d", ErrValueTooLarge, len(value), k, MaxValueLen)
	}
	w.index = append(w.index, indexEntry{k: ik, val: w.sum.DataBytes})
	var hdr [entryHeaderLen]byte
	copy(hdr[:], ik[:])
	binary.BigEndian.PutUint32(hdr[ikeyLen:], uint32(len(value)))
	if err := w.appendData(hdr[:]); err != nil {
		return err
	}
	if err := w.appendData(value); err != nil {
		return err
	}
	w.sum.DataBytes += uint64(entryHeaderLen + len(value))
	w.sum.Entries++
	if !w.hasLast || w.lastKey != k {
		w.sum.DistinctKeys++
	}
	if uint32(len(value)) > w.sum.MaxValueLen {
		w.sum.MaxValueLen = uint32(len(value))
	}
	w.lastKey, w.lastIKey, w.hasLast = k, ik, true
	return nil
}

func (w *writer) appendData(p []byte) error {
	for len(p) > 0 {
		n := copy(w.blk[w.used:PayloadSize], p)
		w.used += n
		p = p[n:]
		if w.used == PayloadSize {
			if err := w.flushBlock(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushBlock seals the current block and hands it to the buffered writer.
func (w *writer) flushBlock() error {
	if w.nextBlk == math.MaxUint32 {
		w.fail(fmt.Errorf("%w: %s reached %d blocks", ErrTooLarge, w.tmpPath, w.nextBlk))
		return w.err
	}
	clear(w.blk[w.used:PayloadSize]) // the buffer is reused: zero the padding
	sealBlock(w.blk, w.nextBlk)
	w.nextBlk++
	w.bufUsed += BlockSize
	if w.bufUsed == len(w.buf) {
		if err := w.flushBuffer(); err != nil {
			return err
		}
	}
	w.blk = w.buf[w.bufUsed : w.bufUsed+BlockSize]
	w.used = 0
	return nil
}

// flushBuffer writes the sealed blocks in buf to the file.
func (w *writer) flushBuffer() error {
	if _, err := w.f.Write(w.buf[:w.bufUsed]); err != nil {
		w.fail(fmt.Errorf("layer: writing %s before block %d: %w", w.tmpPath, w.nextBlk, err))
		return w.err
	}
	w.bufUsed = 0
	return nil
}

// finish writes the index and header, fsyncs the file, renames it into
// place and fsyncs the directory. When it returns nil the layer file is
// durable under its final name.
func (w *writer) finish(ctx context.Context) (Summary, error) {
	if err := w.usable(); err != nil {
		return Summary{}, err
	}
	err := w.finishLocked(ctx)
	if err != nil {
		w.fail(err)
		return Summary{}, err
	}
	w.err = ErrWriterClosed
	w.index = nil
	return w.sum, nil
}

func (w *writer) finishLocked(ctx context.Context) error {
	if w.used > 0 {
		if err := w.flushBlock(); err != nil {
			return err
		}
	}
	if !w.sum.layout() {
		return fmt.Errorf("%w: %d entries, %d data bytes", ErrTooLarge, w.sum.Entries, w.sum.DataBytes)
	}
	if w.nextBlk != w.sum.indexStart {
		return fmt.Errorf("layer: internal error: data ends at block %d, layout says %d", w.nextBlk, w.sum.indexStart)
	}
	// Bottom-up bulk build: leaves first (contiguous, in key order), then
	// each level of inner nodes, the root last.
	level := w.index
	var next []indexEntry
	for depth := uint8(0); ; depth++ {
		next = next[:0]
		for i := 0; i < len(level) || i == 0; i += nodeCapacity {
			chunk := level[i:min(i+nodeCapacity, len(level))]
			var first ikey
			if len(chunk) > 0 {
				first = chunk[0].k
			}
			next = append(next, indexEntry{k: first, val: uint64(w.nextBlk)})
			clear(w.blk)
			encodeNode(w.blk, depth, chunk)
			w.used = PayloadSize
			if err := w.flushBlock(); err != nil {
				return err
			}
		}
		if len(next) == 1 {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		level = append([]indexEntry(nil), next...)
	}
	if w.nextBlk != w.sum.Blocks {
		return fmt.Errorf("layer: internal error: index ends at block %d, layout says %d", w.nextBlk, w.sum.Blocks)
	}
	if err := w.flushBuffer(); err != nil {
		return err
	}
	hdr := w.buf[:BlockSize]
	clear(hdr)
	encodeHeader(hdr, &w.sum)
	sealBlock(hdr, 0)
	if _, err := w.f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("layer: writing header of %s: %w", w.tmpPath, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("layer: fsync of %s: %w", w.tmpPath, err)
	}
	if err := w.f.Close(); err != nil {
		w.f = nil
		_ = os.Remove(w.tmpPath)
		return fmt.Errorf("layer: closing %s: %w", w.tmpPath, err)
	}
	w.f = nil
	if err := os.Rename(w.tmpPath, w.finalPath); err != nil {
		_ = os.Remove(w.tmpPath)
		return fmt.Errorf("layer: renaming %s to %s: %w", w.tmpPath, w.finalPath, err)
	}
	return durable.SyncDir(w.dir)
}

func (w *writer) abort() {
	w.fail(ErrWriterClosed)
	w.index = nil
}

// DeltaWriter writes a delta layer file: every (key, LSN, value) of a key
// range and LSN range, appended in strictly increasing (key, LSN) order.
// It writes to a temp file in dir (named ".<final name>.tmp-*", which
// durable.RemoveTemps cleans up after a crash); Finish makes the file
// durable under its final name. Not safe for concurrent use.
type DeltaWriter struct {
	w *writer
}

// NewDeltaWriter starts a delta layer in dir. Every entry must have a key in
// keys and an LSN in lsns; the file is named after these ranges.
func NewDeltaWriter(dir string, tenant ids.TenantID, timeline ids.TimelineID, keys keyspace.Range, lsns LSNRange) (*DeltaWriter, error) {
	w, err := newWriter(dir, Summary{Kind: KindDelta, Tenant: tenant, Timeline: timeline, Keys: keys, LSNs: lsns})
	if err != nil {
		return nil, err
	}
	return &DeltaWriter{w: w}, nil
}

// Put appends value for key at l. An entry out of order or out of range is
// rejected (the writer stays usable); an I/O error makes the writer
// unusable. value is copied before Put returns.
func (d *DeltaWriter) Put(key keyspace.Key, l lsn.LSN, value []byte) error {
	w := d.w
	if err := w.usable(); err != nil {
		return err
	}
	if !w.sum.Keys.Contains(key) || !w.sum.LSNs.Contains(l) {
		return fmt.Errorf("%w: key %s at %s, layer %s at %s", ErrOutOfRange, key, l, w.sum.Keys, w.sum.LSNs)
	}
	ik := makeIKey(key, l)
	if w.hasLast && bytes.Compare(ik[:], w.lastIKey[:]) <= 0 {
		return fmt.Errorf("%w: key %s at %s after key %s at %s (delta entries must be strictly increasing by key, then LSN)",
			ErrOutOfOrder, key, l, w.lastKey, w.lastIKey.lsn())
	}
	return w.put(key, ik, value)
}

// Reserve makes room in the in-memory index for n more entries: a writer
// that knows its entry count (a flush of an in-memory layer) saves the
// index's repeated growth and copying.
func (d *DeltaWriter) Reserve(n int) {
	if n > 0 {
		d.w.index = slices.Grow(d.w.index, n)
	}
}

// Entries is the number of entries put so far.
func (d *DeltaWriter) Entries() uint64 { return d.w.sum.Entries }

// DataBytes is the size of the entry stream so far (a good estimate of the
// file size).
func (d *DeltaWriter) DataBytes() uint64 { return d.w.sum.DataBytes }

// Path is the final path of the layer file.
func (d *DeltaWriter) Path() string { return d.w.finalPath }

// Finish writes the index and header, fsyncs the file, renames it to Path
// (replacing a file of the same name) and fsyncs the directory. The writer
// is unusable afterwards; on error the temp file is removed.
func (d *DeltaWriter) Finish(ctx context.Context) (Summary, error) { return d.w.finish(ctx) }

// Abort discards the layer. It is safe to call after Finish (no effect on
// the finished file) and more than once.
func (d *DeltaWriter) Abort() { d.w.abort() }

// ImageWriter writes an image layer file: one value per key, keys strictly
// increasing, all valid at one LSN. Files and durability as DeltaWriter.
// Not safe for concurrent use.
type ImageWriter struct {
	w  *writer
	at lsn.LSN
}

// NewImageWriter starts an image layer in dir over keys at LSN at.
func NewImageWriter(dir string, tenant ids.TenantID, timeline ids.TimelineID, keys keyspace.Range, at lsn.LSN) (*ImageWriter, error) {
	if at == lsn.LSN(math.MaxUint64) {
		return nil, fmt.Errorf("%w: image LSN %s is the largest LSN", ErrInvalidRange, at)
	}
	w, err := newWriter(dir, Summary{Kind: KindImage, Tenant: tenant, Timeline: timeline, Keys: keys, LSNs: LSNRange{at, at + 1}})
	if err != nil {
		return nil, err
	}
	return &ImageWriter{w: w, at: at}, nil
}

// Put appends the value of key. Keys must be strictly increasing and inside
// the layer's key range. value is copied before Put returns.
func (iw *ImageWriter) Put(key keyspace.Key, value []byte) error {
	w := iw.w
	if err := w.usable(); err != nil {
		return err
	}
	if !w.sum.Keys.Contains(key) {
		return fmt.Errorf("%w: key %s, layer %s", ErrOutOfRange, key, w.sum.Keys)
	}
	if w.hasLast && !w.lastKey.Less(key) {
		return fmt.Errorf("%w: key %s after key %s (image keys must be strictly increasing)", ErrOutOfOrder, key, w.lastKey)
	}
	return w.put(key, makeIKey(key, iw.at), value)
}

// Entries is the number of keys put so far.
func (iw *ImageWriter) Entries() uint64 { return iw.w.sum.Entries }

// Path is the final path of the layer file.
func (iw *ImageWriter) Path() string { return iw.w.finalPath }

// Finish: see DeltaWriter.Finish.
func (iw *ImageWriter) Finish(ctx context.Context) (Summary, error) { return iw.w.finish(ctx) }

// Abort: see DeltaWriter.Abort.
func (iw *ImageWriter) Abort() { iw.w.abort() }
