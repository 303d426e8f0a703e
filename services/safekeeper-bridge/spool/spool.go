package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/lsn"
)

const (
	formatVersion   = 1
	headerSize      = 40
	frameHeaderSize = 16
	fileSuffix      = ".spool"
	tmpSuffix       = ".tmp"

	// DefaultSegmentBytes is the default size at which a segment is closed:
	// PostgreSQL's WAL segment size.
	DefaultSegmentBytes = 16 << 20
	// MaxFrameBytes is the largest frame; longer appends are split. It
	// bounds the memory of the writer and of each reader.
	MaxFrameBytes = 128 << 10
)

var (
	magic      = [8]byte{'S', 'T', 'R', 'A', 'S', 'P', 'O', 'L'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Options configures a spool.
type Options struct {
	// SegmentBytes is the size after which a segment is closed and a new
	// one begins (DefaultSegmentBytes when 0).
	SegmentBytes int64
	// Logger receives recovery messages (slog.Default when nil).
	Logger *slog.Logger
}

// segment is one file of the spool: it holds [start, next segment's start)
// or, for the last one, [start, written end).
type segment struct {
	start lsn.LSN
	path  string
}

// Spool is a durable, contiguous WAL byte log for one timeline.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger

	// Writer state: owned by the single writer goroutine.
	cur      *os.File
	curSize  int64
	written  lsn.LSN
	frameBuf []byte
	systemID uint64
	timeline uint32

	mu       sync.Mutex
	segments []segment // sorted by start; never empty once started
	flush    lsn.LSN   // durable end; Invalid while nothing is known
	notify   chan struct{}
	closed   bool
}

// Open opens (creating if needed) the spool in dir and recovers it after a
// crash: it removes temporary files, checks the chain of segments, truncates
// a torn tail of the last segment, and fsyncs what it repaired.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: creating %s: %w", dir, err)
	}
	s := &Spool{dir: dir, opts: opts, log: opts.Logger, notify: make(chan struct{})}
	if err := s.recover(); err != nil {
		if s.cur != nil {
			_ = s.cur.Close()
		}
		return nil, err
	}
	return s, nil
}

func (s *Spool) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: listing %s: %w", s.dir, err)
	}
	removedTemp := false
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
				return fmt.Errorf("spool: removing leftover %s: %w", name, err)
			}
			removedTemp = true
		case strings.HasSuffix(name, fileSuffix):
			start, err := strconv.ParseUint(strings.TrimSuffix(name, fileSuffix), 16, 64)
			if err != nil || len(name) != 16+len(fileSuffix) {
				return fmt.Errorf("%w: unexpected file name %s in %s", ErrCorrupt, name, s.dir)
			}
			s.segments = append(s.segments, segment{start: lsn.LSN(start), path: filepath.Join(s.dir, name)})
		}
	}
	if removedTemp {
		if err := durable.SyncDir(s.dir); err != nil {
			return err
		}
	}
	slices.SortFunc(s.segments, func(a, b segment) int { return compareLSN(a.start, b.start) })
	if len(s.segments) == 0 {
		return nil
	}
	// Closed segments were fsynced before their successor was created:
	// walk their frame headers to check that each ends where the next
	// starts. Readers verify frame CRCs as they read.
	for i := 0; i < len(s.segments)-1; i++ {
		seg := s.segments[i]
		h, err := readHeader(seg.path)
		if err != nil {
			return err
		}
		if h.start != seg.start {
			return fmt.Errorf("%w: %s: header says start %s", ErrCorrupt, seg.path, h.start)
		}
		end, _, err := scanFrames(seg.path, seg.start, false)
		if err != nil {
			return err
		}
		if next := s.segments[i+1].start; end != next {
			return fmt.Errorf("%w: %s holds WAL up to %s but the next segment starts at %s (gap or overlap)", ErrCorrupt, seg.path, end, next)
		}
		s.systemID, s.timeline = h.systemID, h.timeline
	}
	last := s.segments[len(s.segments)-1]
	h, err := readHeader(last.path)
	if err != nil || h.start != last.start {
		// The last segment's header is written before rename, so a bad
		// header means damage; its name still says where it starts.
		s.log.Warn("spool: rewriting damaged header of the last segment", "path", last.path, "err", err)
		h = fileHeader{start: last.start, systemID: s.systemID, timeline: s.timeline}
		if err := writeFileAtomic(s.dir, last.path, encodeHeader(h)); err != nil {
			return err
		}
	}
	s.systemID, s.timeline = h.systemID, h.timeline
	end, size, err := scanFrames(last.path, last.start, true)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(last.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("spool: opening %s: %w", last.path, err)
	}
	s.cur = f
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("spool: stat %s: %w", last.path, err)
	}
	if st.Size() != size {
		s.log.Warn("spool: truncating torn tail", "path", last.path, "durable_end", end, "file_bytes", st.Size(), "kept_bytes", size)
		if err := f.Truncate(size); err != nil {
			return fmt.Errorf("spool: truncating %s to %d: %w", last.path, size, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: fsync of %s: %w", last.path, err)
	}
	s.curSize, s.written, s.flush = size, end, end
	return nil
}

func compareLSN(a, b lsn.LSN) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type fileHeader struct {
	timeline uint32
	systemID uint64
	start    lsn.LSN
}

func encodeHeader(h fileHeader) []byte {
	b := make([]byte, headerSize)
	copy(b, magic[:])
	binary.LittleEndian.PutUint32(b[8:], formatVersion)
	binary.LittleEndian.PutUint32(b[12:], h.timeline)
	binary.LittleEndian.PutUint64(b[16:], h.systemID)
	binary.LittleEndian.PutUint64(b[24:], uint64(h.start))
	binary.LittleEndian.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
	return b
}

func decodeHeader(b []byte) (fileHeader, error) {
	if len(b) < headerSize {
		return fileHeader{}, fmt.Errorf("header is %d bytes, want %d", len(b), headerSize)
	}
	if [8]byte(b[:8]) != magic {
		return fileHeader{}, errors.New("bad magic")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVersion {
		return fileHeader{}, fmt.Errorf("format version %d, want %d", v, formatVersion)
	}
	if crc32.Checksum(b[:36], castagnoli) != binary.LittleEndian.Uint32(b[36:]) {
		return fileHeader{}, errors.New("header CRC mismatch")
	}
	return fileHeader{
		timeline: binary.LittleEndian.Uint32(b[12:]),
		systemID: binary.LittleEndian.Uint64(b[16:]),
		start:    lsn.LSN(binary.LittleEndian.Uint64(b[24:])),
	}, nil
}

func readHeader(path string) (fileHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileHeader{}, fmt.Errorf("spool: opening %s: %w", path, err)
	}
	defer f.Close()
	b := make([]byte, headerSize)
	if _, err := io.ReadFull(f, b); err != nil {
		return fileHeader{}, fmt.Errorf("%w: %s: reading header: %v", ErrCorrupt, path, err)
	}
	h, err := decodeHeader(b)
	if err != nil {
		return fileHeader{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return h, nil
}

// scanFrames walks the frames of the segment at path that starts at start.
// With tail set it checks every CRC and stops quietly at the first bad frame
// (a torn tail); without it, any bad frame is ErrCorrupt. It returns the LSN
// after the last good frame and the file offset after it.
func scanFrames(path string, start lsn.LSN, tail bool) (lsn.LSN, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: opening %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("spool: stat %s: %w", path, err)
	}
	size := st.Size()
	off, pos := int64(headerSize), start
	hdr := make([]byte, frameHeaderSize)
	var data []byte
	for off < size {
		bad := func(format string, args ...any) (lsn.LSN, int64, error) {
			if tail {
				return pos, off, nil
			}
			return 0, 0, fmt.Errorf("%w: %s at offset %d (LSN %s): %s", ErrCorrupt, path, off, pos, fmt.Sprintf(format, args...))
		}
		if size-off < frameHeaderSize {
			return bad("truncated frame header")
		}
		if _, err := f.ReadAt(hdr, off); err != nil {
			return 0, 0, fmt.Errorf("spool: reading %s: %w", path, err)
		}
		n, sum, at := binary.LittleEndian.Uint32(hdr), binary.LittleEndian.Uint32(hdr[4:]), lsn.LSN(binary.LittleEndian.Uint64(hdr[8:]))
		if n == 0 || n > MaxFrameBytes {
			return bad("frame length %d", n)
		}
		if at != pos {
			return bad("frame LSN %s, want %s", at, pos)
		}
		if size-off-frameHeaderSize < int64(n) {
			return bad("truncated frame data")
		}
		if tail {
			data = slices.Grow(data[:0], int(n))[:n]
			if _, err := f.ReadAt(data, off+frameHeaderSize); err != nil {
				return 0, 0, fmt.Errorf("spool: reading %s: %w", path, err)
			}
			if frameCRC(hdr[8:], data) != sum {
				return bad("frame CRC mismatch")
			}
		}
		off += frameHeaderSize + int64(n)
		pos += lsn.LSN(n)
	}
	return pos, off, nil
}

func frameCRC(lsnField, data []byte) uint32 {
	return crc32.Update(crc32.Checksum(lsnField, castagnoli), castagnoli, data)
}

func writeFileAtomic(dir, path string, data []byte) error {
	return durable.WriteFile(path, data, 0o600)
}

// Close closes the spool's files. Unsynced appends may be lost, as in a
// crash. Readers must not be used after Close.
func (s *Spool) Close() error {
	s.mu.Lock()
	s.closed = true
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	if s.cur != nil {
		err := s.cur.Close()
		s.cur = nil
		return err
	}
	return nil
}

// FlushLSN returns the durable end of the spool: every byte below it is
// fsynced. It is Invalid while the spool has never held WAL.
func (s *Spool) FlushLSN() lsn.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flush
}

// WrittenLSN returns the end of what Append wrote (writer goroutine only).
func (s *Spool) WrittenLSN() lsn.LSN { return s.written }

// StartLSN returns the oldest LSN the spool still holds, or Invalid.
func (s *Spool) StartLSN() lsn.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segments) == 0 {
		return lsn.Invalid
	}
	return s.segments[0].start
}

// Identity returns the system identifier and timeline recorded in the
// newest segment (0, 0 when unknown).
func (s *Spool) Identity() (systemID uint64, timeline uint32) { return s.systemID, s.timeline }

// SetIdentity records the primary's system identifier and timeline for new
// segments. It fails with ErrIdentity if the spool holds WAL of another
// system or of a newer timeline. A newer timeline closes the current
// segment so that every segment holds WAL of one timeline.
func (s *Spool) SetIdentity(systemID uint64, timeline uint32) error {
	if s.systemID != 0 && systemID != s.systemID {
		return fmt.Errorf("%w: spool holds WAL of system %d, primary is system %d", ErrIdentity, s.systemID, systemID)
	}
	if s.timeline != 0 && timeline < s.timeline {
		return fmt.Errorf("%w: spool holds WAL of timeline %d, primary is on older timeline %d", ErrIdentity, s.timeline, timeline)
	}
	changed := s.timeline != 0 && timeline != s.timeline
	s.systemID, s.timeline = systemID, timeline
	if changed && s.cur != nil && s.curSize > headerSize {
		return s.roll()
	}
	return nil
}

// Append writes data, which starts at start, to the spool. It does not make
// it durable: call Sync. The first Append of an empty spool sets its start;
// later ones must start exactly where the spool ends.
func (s *Spool) Append(start lsn.LSN, data []byte) error {
	if s.cur == nil && s.written.IsValid() {
		return ErrClosed
	}
	if s.written.IsValid() && start != s.written {
		return fmt.Errorf("%w: data starts at %s but the spool ends at %s (a gap of %d bytes or an overlap)", ErrNotContiguous, start, s.written, int64(start)-int64(s.written))
	}
	if !start.IsValid() {
		return fmt.Errorf("%w: data at invalid LSN 0/0", ErrNotContiguous)
	}
	for len(data) > 0 {
		if s.cur == nil {
			if err := s.createSegment(start); err != nil {
				return err
			}
		} else if s.curSize >= s.opts.SegmentBytes {
			if err := s.roll(); err != nil {
				return err
			}
		}
		n := min(len(data), MaxFrameBytes)
		if err := s.writeFrame(start, data[:n]); err != nil {
			return err
		}
		start += lsn.LSN(n)
		data = data[n:]
	}
	return nil
}

func (s *Spool) writeFrame(start lsn.LSN, data []byte) error {
	need := frameHeaderSize + len(data)
	s.frameBuf = slices.Grow(s.frameBuf[:0], need)[:need]
	b := s.frameBuf
	binary.LittleEndian.PutUint32(b, uint32(len(data)))
	binary.LittleEndian.PutUint64(b[8:], uint64(start))
	copy(b[frameHeaderSize:], data)
	binary.LittleEndian.PutUint32(b[4:], frameCRC(b[8:16], data))
	if _, err := s.cur.WriteAt(b, s.curSize); err != nil {
		// The file may now hold part of the frame; a retry would append
		// after it. Truncate back so the file stays a valid prefix.
		if terr := s.cur.Truncate(s.curSize); terr != nil {
			return fmt.Errorf("spool: writing frame at %s: %w (and truncating back: %v)", start, err, terr)
		}
		return fmt.Errorf("spool: writing frame at %s: %w", start, err)
	}
	s.curSize += int64(need)
	s.written = start + lsn.LSN(len(data))
	return nil
}

// roll makes the current segment durable and starts a new one at written.
func (s *Spool) roll() error {
	if _, err := s.Sync(); err != nil {
		return err
	}
	if err := s.cur.Close(); err != nil {
		return fmt.Errorf("spool: closing segment: %w", err)
	}
	s.cur = nil
	return s.createSegment(s.written)
}

// createSegment creates a segment starting at start: temp file with the
// header, fsync, rename, fsync of the directory.
func (s *Spool) createSegment(start lsn.LSN) error {
	path := filepath.Join(s.dir, fmt.Sprintf("%016X%s", uint64(start), fileSuffix))
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: creating %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(encodeHeader(fileHeader{start: start, systemID: s.systemID, timeline: s.timeline})); err != nil {
		return fmt.Errorf("spool: writing header of %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: fsync of %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("spool: renaming %s: %w", tmp, err)
	}
	if err := durable.SyncDir(s.dir); err != nil {
		return err
	}
	ok = true
	s.cur, s.curSize = f, headerSize
	s.mu.Lock()
	s.segments = append(s.segments, segment{start: start, path: path})
	if !s.flush.IsValid() {
		s.flush = start
	}
	s.mu.Unlock()
	if !s.written.IsValid() {
		s.written = start
	}
	return nil
}

// Sync fsyncs what Append wrote and advances FlushLSN to it, waking
// readers. It returns the new FlushLSN.
func (s *Spool) Sync() (lsn.LSN, error) {
	if s.cur == nil {
		return s.FlushLSN(), nil
	}
	if err := s.cur.Sync(); err != nil {
		return s.FlushLSN(), fmt.Errorf("spool: fsync of segment: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written > s.flush {
		s.flush = s.written
		close(s.notify)
		s.notify = make(chan struct{})
	}
	return s.flush, nil
}

// Wait blocks until FlushLSN is greater than after, ctx ends, or the spool
// is closed. It returns the FlushLSN it saw.
func (s *Spool) Wait(ctx context.Context, after lsn.LSN) (lsn.LSN, error) {
	for {
		s.mu.Lock()
		flush, ch, closed := s.flush, s.notify, s.closed
		s.mu.Unlock()
		if flush > after {
			return flush, nil
		}
		if closed {
			return flush, ErrClosed
		}
		select {
		case <-ctx.Done():
			return flush, ctx.Err()
		case <-ch:
		}
	}
}

// TrimBelow removes every whole segment whose WAL lies entirely below
// below, the pageserver's disk_consistent_lsn. The newest segment is never
// removed, so the spool always knows where it ends. It returns the number
// of segments removed.
func (s *Spool) TrimBelow(below lsn.LSN) (int, error) {
	s.mu.Lock()
	var victims []segment
	for len(s.segments) > 1 && s.segments[1].start <= below && s.segments[1].start <= s.flush {
		victims = append(victims, s.segments[0])
		s.segments = s.segments[1:]
	}
	s.mu.Unlock()
	if len(victims) == 0 {
		return 0, nil
	}
	for _, v := range victims {
		if err := os.Remove(v.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("spool: removing %s: %w", v.path, err)
		}
	}
	return len(victims), durable.SyncDir(s.dir)
}

// segmentFor returns the segment holding at and the start of the one after
// it (Invalid for the last), or ErrTrimmed / ErrEmpty.
func (s *Spool) segmentFor(at lsn.LSN) (segment, lsn.LSN, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segments) == 0 {
		return segment{}, 0, ErrEmpty
	}
	if at < s.segments[0].start {
		return segment{}, 0, fmt.Errorf("%w: WAL at %s is needed but the spool starts at %s", ErrTrimmed, at, s.segments[0].start)
	}
	i, found := slices.BinarySearchFunc(s.segments, at, func(seg segment, l lsn.LSN) int { return compareLSN(seg.start, l) })
	if !found {
		i--
	}
	next := lsn.Invalid
	if i+1 < len(s.segments) {
		next = s.segments[i+1].start
	}
	return s.segments[i], next, nil
}

// nextStart returns the start of the first segment after the one starting
// at start, or Invalid if that one is the newest. The segment at start may
// already be trimmed from the list (a reader still holds it open after the
// pageserver's disk_consistent_lsn passed its end): the next one is still
// the first segment starting above it.
func (s *Spool) nextStart(start lsn.LSN) lsn.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := slices.BinarySearchFunc(s.segments, start, func(seg segment, l lsn.LSN) int { return compareLSN(seg.start, l) })
	if found {
		i++
	}
	if i >= len(s.segments) {
		return lsn.Invalid
	}
	return s.segments[i].start
}
