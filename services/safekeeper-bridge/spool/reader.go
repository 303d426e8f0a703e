package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/stratadb/strata/internal/lsn"
)

// Chunk is a run of contiguous WAL bytes read from the spool.
type Chunk struct {
	// LSN is the position of Data[0].
	LSN lsn.LSN
	// Data aliases the reader's buffer: valid until the next Next call.
	Data []byte
}

// End returns the LSN right after the chunk.
func (c Chunk) End() lsn.LSN { return c.LSN + lsn.LSN(len(c.Data)) }

// Reader streams durable WAL out of the spool from a position, following
// new appends. It holds at most one frame (MaxFrameBytes) in memory.
type Reader struct {
	s   *Spool
	pos lsn.LSN // next byte to return

	f        *os.File
	segStart lsn.LSN
	segNext  lsn.LSN // start of the segment after f's, Invalid if f is the last
	off      int64   // file offset of the next frame header
	frameAt  lsn.LSN // LSN of the next frame in f
	hdr      [frameHeaderSize]byte
	buf      []byte
}

// NewReader returns a reader whose first byte is at from. from may lie
// inside a frame, or at or beyond the durable end (Next then waits). It
// fails with ErrTrimmed if from is below the spool's start.
func (s *Spool) NewReader(from lsn.LSN) (*Reader, error) {
	if start := s.StartLSN(); start.IsValid() && from < start {
		return nil, fmt.Errorf("%w: WAL at %s is needed but the spool starts at %s", ErrTrimmed, from, start)
	}
	return &Reader{s: s, pos: from}, nil
}

// Pos returns the LSN of the next byte Next will return.
func (r *Reader) Pos() lsn.LSN { return r.pos }

// Close releases the reader's file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Next returns the next chunk of durable WAL, waiting for it if the reader
// has caught up with FlushLSN. Chunks are contiguous and at most
// MaxFrameBytes long.
func (r *Reader) Next(ctx context.Context) (Chunk, error) {
	for {
		flush, err := r.s.Wait(ctx, r.pos)
		if err != nil {
			return Chunk{}, err
		}
		if r.f == nil {
			if err := r.open(); err != nil {
				return Chunk{}, err
			}
		}
		if !r.segNext.IsValid() {
			// The writer may have closed this segment since it was opened.
			r.segNext = r.s.nextStart(r.segStart)
		}
		if r.segNext.IsValid() && r.frameAt >= r.segNext {
			// Finished this segment: move to the next.
			_ = r.f.Close()
			r.f = nil
			continue
		}
		if r.frameAt >= flush {
			continue // the segment ended here for now; wait for more
		}
		c, err := r.readFrame()
		if err != nil {
			return Chunk{}, err
		}
		if c.End() <= r.pos {
			continue // a frame before the start position
		}
		if c.LSN < r.pos {
			c.Data = c.Data[r.pos-c.LSN:]
			c.LSN = r.pos
		}
		r.pos = c.End()
		return c, nil
	}
}

func (r *Reader) open() error {
	seg, next, err := r.s.segmentFor(r.pos)
	if err != nil {
		return err
	}
	f, err := os.Open(seg.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: segment %s holding %s was removed while reading", ErrTrimmed, seg.path, r.pos)
		}
		return fmt.Errorf("spool: opening %s: %w", seg.path, err)
	}
	r.f, r.segStart, r.segNext, r.off, r.frameAt = f, seg.start, next, headerSize, seg.start
	return nil
}

// readFrame reads and checks the frame at r.off.
func (r *Reader) readFrame() (Chunk, error) {
	if _, err := r.f.ReadAt(r.hdr[:], r.off); err != nil {
		return Chunk{}, fmt.Errorf("%w: %s: reading frame header at offset %d (LSN %s): %v", ErrCorrupt, r.f.Name(), r.off, r.frameAt, err)
	}
	n := binary.LittleEndian.Uint32(r.hdr[:])
	sum := binary.LittleEndian.Uint32(r.hdr[4:])
	at := lsn.LSN(binary.LittleEndian.Uint64(r.hdr[8:]))
	if n == 0 || n > MaxFrameBytes || at != r.frameAt {
		return Chunk{}, fmt.Errorf("%w: %s: frame at offset %d has length %d and LSN %s, want LSN %s", ErrCorrupt, r.f.Name(), r.off, n, at, r.frameAt)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n, MaxFrameBytes)
	}
	data := r.buf[:n]
	if _, err := r.f.ReadAt(data, r.off+frameHeaderSize); err != nil {
		return Chunk{}, fmt.Errorf("%w: %s: reading frame at LSN %s: %v", ErrCorrupt, r.f.Name(), at, err)
	}
	if frameCRC(r.hdr[8:], data) != sum {
		return Chunk{}, fmt.Errorf("%w: %s: CRC mismatch in frame at LSN %s", ErrCorrupt, r.f.Name(), at)
	}
	r.off += frameHeaderSize + int64(n)
	r.frameAt += lsn.LSN(n)
	return Chunk{LSN: at, Data: data}, nil
}
