package pgwal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stratadb/strata/internal/lsn"
)

// readChunkSize is how much of a segment file the Reader feeds at a time: big
// enough to amortize system calls, small enough to keep memory flat.
const readChunkSize = 1 << 20

// Reader reads records from the WAL segment files of one timeline in a
// directory (a pg_wal directory or an archive), the way pg_waldump does.
type Reader struct {
	dir   string
	tli   uint32
	start lsn.LSN
	end   lsn.LSN // exclusive limit on bytes read; Invalid = none
	opts  options

	dec    *StreamDecoder
	segno  uint64
	file   *os.File
	segOff uint64 // bytes of the current segment fed so far
	chunk  []byte
	done   bool  // every byte up to end was fed
	ended  error // set when the input ended early; reported once the fed bytes are used up
}

// NewReader returns a Reader over the segments named
// WALFileName(tli, segno) (or with a ".partial" suffix) in dir. The first
// record returned is the first one that starts at or after start, found as
// pg_waldump finds it: from the header of the page holding start. If end is
// valid, no byte at or after end is read: a record is returned only if it
// lies wholly before end, and Next returns io.EOF after the last one.
func NewReader(dir string, tli uint32, start, end lsn.LSN, opts ...Option) (*Reader, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.atRecord {
		return nil, fmt.Errorf("%w: StartsAtRecord is for stream decoders", ErrBadOption)
	}
	if end.IsValid() && end <= start {
		return nil, fmt.Errorf("%w: end %s is not after start %s", ErrBadOption, end, start)
	}
	page := start.PageStart()
	dec, err := NewStreamDecoder(page, opts...)
	if err != nil {
		return nil, err
	}
	return &Reader{
		dir: dir, tli: tli, start: start, end: end, opts: o, dec: dec,
		segno:  page.SegmentNumber(o.segSize),
		segOff: page.SegmentOffset(o.segSize),
	}, nil
}

// Close releases the open segment file.
func (r *Reader) Close() error {
	if r.file == nil {
		return nil
	}
	err := r.file.Close()
	r.file = nil
	return err
}

// Next returns the next record. At the end of valid WAL it returns an
// *EndOfWALError (errors.Is ErrEndOfWAL); when the end limit is reached, io.EOF.
// Record.Raw is valid until the next call to Next.
func (r *Reader) Next() (Record, error) {
	for {
		rec, err := r.dec.Next()
		if err == nil {
			if rec.LSN < r.start {
				continue
			}
			return rec, nil
		}
		if !errors.Is(err, ErrNeedMore) {
			return Record{}, err
		}
		if r.done {
			return Record{}, io.EOF
		}
		if r.ended != nil {
			return Record{}, r.ended
		}
		if err := r.feed(); err != nil {
			return Record{}, err
		}
	}
}

func (r *Reader) segmentStart() lsn.LSN { return lsn.LSN(r.segno * r.opts.segSize) }

// feed gives the decoder the next chunk of WAL.
func (r *Reader) feed() error {
	if r.file == nil {
		name := lsn.WALFileName(r.tli, r.segno, r.opts.segSize)
		f, err := os.Open(filepath.Join(r.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			f, err = os.Open(filepath.Join(r.dir, name+".partial"))
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				at := r.segmentStart() + lsn.LSN(r.segOff)
				return r.dec.endOfInput(at, EndMissingSegment, "could not find WAL file %q in %s", name, r.dir)
			}
			return fmt.Errorf("pgwal: open WAL segment: %w", err)
		}
		if r.segOff > 0 {
			if _, err := f.Seek(int64(r.segOff), io.SeekStart); err != nil {
				_ = f.Close()
				return fmt.Errorf("pgwal: seek in WAL segment %s: %w", name, err)
			}
		}
		r.file = f
	}
	want := min(uint64(readChunkSize), r.opts.segSize-r.segOff)
	at := r.segmentStart() + lsn.LSN(r.segOff)
	if r.end.IsValid() && uint64(r.end-at) < want {
		want = uint64(r.end - at)
	}
	if cap(r.chunk) < int(want) {
		r.chunk = make([]byte, want)
	}
	buf := r.chunk[:want]
	n, err := io.ReadFull(r.file, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("pgwal: read WAL segment %s: %w", r.file.Name(), err)
	}
	r.dec.Feed(buf[:n])
	r.segOff += uint64(n)
	if n < int(want) {
		name := r.file.Name()
		_ = r.Close()
		r.ended = r.dec.endOfInput(at+lsn.LSN(n), EndMissingSegment, "WAL file %q is only %d bytes long", name, r.segOff)
		return nil
	}
	if r.end.IsValid() && at+lsn.LSN(n) >= r.end {
		r.done = true
	}
	if r.segOff == r.opts.segSize {
		if err := r.Close(); err != nil {
			return fmt.Errorf("pgwal: close WAL segment: %w", err)
		}
		r.segno++
		r.segOff = 0
	}
	return nil
}

// endOfInput builds the error for input that ends before valid WAL does. The
// caller reports it once Next says ErrNeedMore.
func (d *StreamDecoder) endOfInput(at lsn.LSN, reason EndReason, format string, args ...any) error {
	return d.end(at, reason, format, args...)
}
