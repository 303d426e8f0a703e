package importer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
	"github.com/stratadb/strata/services/pageserver/timeline"
)

// walTimeline is the only PostgreSQL timeline Strata imports.
const walTimeline = 1

// walChunkSize is how much WAL is fed to the decoder at a time.
const walChunkSize = 1 << 20

// NewIngest returns the pgdatadir.Ingest that continues tl from its
// last_record_lsn, a record boundary (after an import, the backup's start
// LSN, where prev_record_lsn is unknown and the back link is not checked).
// The caller feeds WAL from the returned Ingest's NextLSN.
func NewIngest(ctx context.Context, tl *timeline.Timeline, logger *slog.Logger) (*pgdatadir.Ingest, error) {
	return pgdatadir.NewIngest(ctx, tl, tl.LastRecordLSN(), tl.PrevRecordLSN(), logger)
}

// WALResult says how far WAL was fed.
type WALResult struct {
	// FedTo is the LSN after the last byte fed (Ingest.NextLSN).
	FedTo lsn.LSN
	// EndOfWAL is set when the WAL ended (garbage or a missing segment)
	// before end, or end was not given.
	EndOfWAL bool
}

// ImportWALDir feeds the WAL segment files of dir (16 MiB segments of
// timeline 1, as in pg_wal or an archive) through ing from ing.NextLSN()
// up to end, exclusive: every record that ends at or before end is stored.
// With end Invalid it feeds until the WAL ends (the first missing segment
// or invalid record). With a valid end, WAL that ends before it is an
// ErrIncomplete error.
func ImportWALDir(ctx context.Context, ing *pgdatadir.Ingest, dir string, end lsn.LSN) (WALResult, error) {
	for {
		next := ing.NextLSN()
		if end.IsValid() && next >= end {
			return WALResult{FedTo: next}, nil
		}
		segno := next.SegmentNumber(lsn.DefaultSegmentSize)
		name := lsn.WALFileName(walTimeline, segno, lsn.DefaultSegmentSize)
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return walEnd(next, end, fmt.Sprintf("segment %s is not in %s", name, dir))
		}
		if err != nil {
			return WALResult{FedTo: next}, fmt.Errorf("importer: %w", err)
		}
		done, err := feedSegment(ctx, ing, f, name, end)
		f.Close()
		if err != nil || done {
			return WALResult{FedTo: ing.NextLSN(), EndOfWAL: done && !(end.IsValid() && ing.NextLSN() >= end)}, err
		}
	}
}

// ImportWAL is ImportWALDir for a tar of WAL segments (pg_basebackup's
// pg_wal.tar, or a base.tar's pg_wal/ entries): segments must come in
// order; those wholly before ing.NextLSN() and other files are skipped.
func ImportWAL(ctx context.Context, ing *pgdatadir.Ingest, walTar io.Reader, end lsn.LSN) (WALResult, error) {
	tr := tar.NewReader(walTar)
	for {
		next := ing.NextLSN()
		if end.IsValid() && next >= end {
			return WALResult{FedTo: next}, nil
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return walEnd(next, end, "the WAL archive ends")
		}
		if err != nil {
			return WALResult{FedTo: next}, fmt.Errorf("%w: reading WAL tar: %v", ErrCorrupt, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		tli, segno, err := lsn.ParseWALFileName(path.Base(h.Name), lsn.DefaultSegmentSize)
		if err != nil || tli != walTimeline {
			continue // archive_status, history files, other timelines
		}
		want := next.SegmentNumber(lsn.DefaultSegmentSize)
		switch {
		case segno < want:
			continue
		case segno > want:
			return walEnd(next, end, fmt.Sprintf("the WAL archive skips from segment %s to %q", lsn.WALFileName(walTimeline, want, lsn.DefaultSegmentSize), h.Name))
		}
		if h.Size != int64(lsn.DefaultSegmentSize) {
			return WALResult{FedTo: next}, fmt.Errorf("%w: WAL segment %q is %d bytes, want %d", ErrCorrupt, h.Name, h.Size, lsn.DefaultSegmentSize)
		}
		done, err := feedSegment(ctx, ing, tr, h.Name, end)
		if err != nil || done {
			return WALResult{FedTo: ing.NextLSN(), EndOfWAL: done && !(end.IsValid() && ing.NextLSN() >= end)}, err
		}
	}
}

// walEnd reports WAL that ends at next: fine without an end LSN, an error
// before it.
func walEnd(next, end lsn.LSN, why string) (WALResult, error) {
	if end.IsValid() && next < end {
		return WALResult{FedTo: next, EndOfWAL: true}, fmt.Errorf("%w: WAL up to %s needed, %s at %s", ErrIncomplete, end, why, next)
	}
	return WALResult{FedTo: next, EndOfWAL: true}, nil
}

// feedSegment feeds the segment whose content r yields, from ing.NextLSN()
// up to end (or the segment's end). done reports that feeding must stop:
// end reached or the WAL ended.
func feedSegment(ctx context.Context, ing *pgdatadir.Ingest, r io.Reader, name string, end lsn.LSN) (done bool, err error) {
	next := ing.NextLSN()
	segStart := next.SegmentStart(lsn.DefaultSegmentSize)
	if off := int64(next - segStart); off > 0 {
		if sk, ok := r.(io.Seeker); ok {
			_, err = sk.Seek(off, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, r, off)
		}
		if err != nil {
			return true, fmt.Errorf("importer: WAL segment %q: skipping to %s: %w", name, next, err)
		}
	}
	segEnd := segStart + lsn.LSN(lsn.DefaultSegmentSize)
	stop := segEnd
	if end.IsValid() && end < stop {
		stop = end
	}
	buf := make([]byte, walChunkSize)
	for pos := next; pos < stop; {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		n := min(uint64(len(buf)), stop.Sub(pos))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return true, fmt.Errorf("%w: WAL segment %q ends before %s", ErrCorrupt, name, pos.Add(n))
			}
			return true, fmt.Errorf("importer: WAL segment %q: %w", name, err)
		}
		if err := ing.Feed(ctx, pos, buf[:n]); err != nil {
			var eow *pgwal.EndOfWALError
			if errors.As(err, &eow) {
				if end.IsValid() {
					return true, fmt.Errorf("%w: WAL up to %s needed, WAL ends: %w", ErrIncomplete, end, err)
				}
				return true, nil
			}
			return true, fmt.Errorf("importer: WAL segment %q at %s: %w", name, pos, err)
		}
		pos = pos.Add(n)
	}
	return end.IsValid() && stop == end, nil
}
