// Package waldump owns `stratactl waldump`: it reads WAL segment files with
// package pgwal and prints one line per record. In compat mode the text is
// PostgreSQL 15's pg_waldump output with the record descriptions removed
// (pg_waldump's lines after `perl -pe 's/desc: .*?(?=, blkref #|$)//'`),
// column widths included, so the two can be compared line by line.
//
// It does not describe record bodies (package rmgr owns them) and does not
// follow a growing WAL (pg_waldump --follow).
//
// Concurrency: Run is called from one goroutine; it keeps no state between
// calls.
package waldump

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

// Errors of waldump. ErrUsage marks bad arguments.
var (
	ErrUsage = errors.New("waldump: invalid arguments")
	ErrWAL   = errors.New("waldump")
)

// Config is what the command line asks for; the fields mirror pg_waldump's
// options.
type Config struct {
	// Path is the directory holding the segments (--path). Empty: the
	// directory of the first file, else ".", "./pg_wal", "$PGDATA/pg_wal".
	Path string
	// Files are STARTSEG and optionally ENDSEG.
	Files []string
	// Start and End bound the records read (--start, --end); Invalid = unset.
	Start, End lsn.LSN
	// Timeline is used with --start when no file is named (--timeline);
	// default 1.
	Timeline uint32
	// Limit stops after this many records (--limit); 0 = no limit.
	Limit int
	// Compat prints pg_waldump's lines without descriptions.
	Compat bool
	// BkpDetails prints full-page image details (--bkp-details).
	BkpDetails bool
	// Quiet prints no records, only errors (--quiet).
	Quiet bool
}

// Run dumps the WAL cfg names to stdout. At the end of valid WAL it returns
// an error wrapping ErrWAL with pg_waldump's wording ("error in WAL record at
// X: ..."), as pg_waldump exits non-zero there too.
func Run(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.Timeline == 0 {
		cfg.Timeline = 1
	}
	dir, tli, start, end, err := resolve(cfg)
	if err != nil {
		return err
	}
	segSize, err := segmentSizeOf(dir)
	if err != nil {
		return err
	}
	r, err := pgwal.NewReader(dir, tli, start, end, pgwal.WithSegmentSize(segSize))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	defer func() { _ = r.Close() }()

	w := bufio.NewWriterSize(stdout, 64<<10)
	defer func() { _ = w.Flush() }()
	var (
		dec   pgwal.DecodedRecord
		line  []byte
		count int
	)
	for cfg.Limit == 0 || count < cfg.Limit {
		if count%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var end *pgwal.EndOfWALError
			if errors.As(err, &end) {
				if count == 0 && !end.LastRecord.IsValid() {
					return fmt.Errorf("%w: could not find a valid record after %s: %s", ErrWAL, start, end.Detail)
				}
				return fmt.Errorf("%w: error in WAL record at %s: %s", ErrWAL, end.LastRecord, end.Detail)
			}
			return fmt.Errorf("%w: %w", ErrWAL, err)
		}
		if count == 0 && rec.LSN != start && start.SegmentOffset(segSize) != 0 {
			n := uint64(rec.LSN - start)
			unit := "bytes"
			if n == 1 {
				unit = "byte"
			}
			fmt.Fprintf(w, "first record is after %s, at %s, skipping over %d %s\n", start, rec.LSN, n, unit)
		}
		if err := rec.Decode(&dec); err != nil {
			return fmt.Errorf("%w: %w", ErrWAL, err)
		}
		count++
		if cfg.Quiet {
			continue
		}
		line = AppendRecord(line[:0], &dec, cfg.Compat, cfg.BkpDetails)
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("waldump: write: %w", err)
		}
	}
	return nil
}

// resolve turns the arguments into a directory, timeline and LSN range the
// way pg_waldump's main does.
func resolve(cfg Config) (dir string, tli uint32, start, end lsn.LSN, err error) {
	start, end, tli = cfg.Start, cfg.End, cfg.Timeline
	if len(cfg.Files) > 2 {
		return "", 0, 0, 0, fmt.Errorf("%w: too many command-line arguments (first is %q)", ErrUsage, cfg.Files[2])
	}
	segSize := uint64(lsn.DefaultSegmentSize)
	if len(cfg.Files) == 0 {
		dir, err = findDir(cfg.Path, "")
		if err != nil {
			return "", 0, 0, 0, err
		}
		if !start.IsValid() {
			return "", 0, 0, 0, fmt.Errorf("%w: no start WAL location given", ErrUsage)
		}
		return dir, tli, start, end, nil
	}
	fileDir, name := filepath.Split(cfg.Files[0])
	path := cfg.Path
	if path == "" && fileDir != "" {
		path = fileDir
	}
	if dir, err = findDir(path, name); err != nil {
		return "", 0, 0, 0, err
	}
	if segSize, err = segmentSizeOf(dir); err != nil {
		return "", 0, 0, 0, err
	}
	var segno uint64
	if tli, segno, err = lsn.ParseWALFileName(name, segSize); err != nil {
		return "", 0, 0, 0, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	segStart := lsn.LSN(segno * segSize)
	if !start.IsValid() {
		start = segStart
	} else if start.SegmentNumber(segSize) != segno {
		return "", 0, 0, 0, fmt.Errorf("%w: start WAL location %s is not inside file %q", ErrUsage, start, name)
	}
	lastSeg := segno
	if len(cfg.Files) == 2 {
		_, endName := filepath.Split(cfg.Files[1])
		if _, err := os.Stat(filepath.Join(dir, endName)); err != nil {
			return "", 0, 0, 0, fmt.Errorf("%w: could not open file %q: %w", ErrUsage, endName, err)
		}
		var endSeg uint64
		if tli, endSeg, err = lsn.ParseWALFileName(endName, segSize); err != nil {
			return "", 0, 0, 0, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		if endSeg < segno {
			return "", 0, 0, 0, fmt.Errorf("%w: ENDSEG %s is before STARTSEG %s", ErrUsage, endName, name)
		}
		lastSeg = endSeg
	}
	if !end.IsValid() {
		end = lsn.LSN((lastSeg + 1) * segSize)
	}
	if end.SegmentNumber(segSize) != lastSeg && end != lsn.LSN((lastSeg+1)*segSize) {
		return "", 0, 0, 0, fmt.Errorf("%w: end WAL location %s is not inside file %q", ErrUsage, end, lsn.WALFileName(tli, lastSeg, segSize))
	}
	return dir, tli, start, end, nil
}

// findDir is identify_target_directory: the directory given, or the first of
// ".", "pg_wal" and "$PGDATA/pg_wal" that holds the file (or any WAL file).
func findDir(path, name string) (string, error) {
	if path != "" {
		if name != "" {
			if _, err := os.Stat(filepath.Join(path, name)); err != nil {
				return "", fmt.Errorf("%w: could not find file %q: %w", ErrUsage, name, err)
			}
		} else if st, err := os.Stat(path); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%w: could not open directory %q", ErrUsage, path)
		}
		return path, nil
	}
	candidates := []string{".", "pg_wal"}
	if pgdata := os.Getenv("PGDATA"); pgdata != "" {
		candidates = append(candidates, filepath.Join(pgdata, "pg_wal"))
	}
	for _, c := range candidates {
		if name != "" {
			if _, err := os.Stat(filepath.Join(c, name)); err == nil {
				return c, nil
			}
			continue
		}
		if f, _ := firstWALFile(c); f != "" {
			return c, nil
		}
	}
	if name != "" {
		return "", fmt.Errorf("%w: could not find file %q", ErrUsage, name)
	}
	return "", fmt.Errorf("%w: could not find any WAL file", ErrUsage)
}

func firstWALFile(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		n := e.Name()
		if len(n) == 24 && strings.Trim(n, "0123456789ABCDEF") == "" && e.Type().IsRegular() {
			return filepath.Join(dir, n), nil
		}
	}
	return "", nil
}

// segmentSizeOf reads xlp_seg_size from the long header of a WAL file in dir,
// as pg_waldump does; 16 MiB if there is none to read.
func segmentSizeOf(dir string) (uint64, error) {
	path, _ := firstWALFile(dir)
	if path == "" {
		return lsn.DefaultSegmentSize, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	defer func() { _ = f.Close() }()
	var hdr [lsn.LongPageHeaderSize]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: could not read file %q: %w", ErrUsage, path, err)
	}
	size := uint64(binary.LittleEndian.Uint32(hdr[32:]))
	if size < 1<<20 || size > 1<<30 || size&(size-1) != 0 {
		return 0, fmt.Errorf("%w: WAL segment size must be a power of two between 1 MB and 1 GB, but the WAL file %q header specifies %d bytes", ErrUsage, filepath.Base(path), size)
	}
	return size, nil
}

// AppendRecord appends the text of one record, ending in a newline, to buf.
// With compat it is pg_waldump's text without the description; with
// bkpDetails the block references go on their own lines with image details,
// as pg_waldump --bkp-details prints them. Without compat, the description is
// the typed body's (internal/pgwal/rmgr): pg_waldump's text for the records
// the ingest uses, the record name, info byte and main-data length for the
// others.
func AppendRecord(buf []byte, r *pgwal.DecodedRecord, compat, bkpDetails bool) []byte {
	buf = fmt.Appendf(buf, "rmgr: %-11s len (rec/tot): %6d/%6d, tx: %10d, lsn: %s, prev %s, ",
		r.RmID.String(), r.RecLen(), r.TotalLen, r.Xid, pgLSN(r.LSN), pgLSN(r.Prev))
	if !compat {
		buf = appendDesc(buf, r)
	}
	if !bkpDetails {
		for i := range r.Blocks {
			b := &r.Blocks[i]
			buf = fmt.Appendf(buf, ", blkref #%d: rel %d/%d/%d", b.ID, b.Rel.SpcNode, b.Rel.DbNode, b.Rel.RelNode)
			if b.Fork != pgtypes.MainForkNum {
				buf = fmt.Appendf(buf, " fork %s", forkName(b.Fork))
			}
			buf = fmt.Appendf(buf, " blk %d", b.Block)
			if b.HasImage() {
				if b.ApplyImage() {
					buf = append(buf, " FPW"...)
				} else {
					buf = append(buf, " FPW for WAL verification"...)
				}
			}
		}
		return append(buf, '\n')
	}
	buf = append(buf, '\n')
	for i := range r.Blocks {
		b := &r.Blocks[i]
		buf = fmt.Appendf(buf, "\tblkref #%d: rel %d/%d/%d fork %s blk %d",
			b.ID, b.Rel.SpcNode, b.Rel.DbNode, b.Rel.RelNode, forkName(b.Fork), b.Block)
		if b.HasImage() {
			verify := ""
			if !b.ApplyImage() {
				verify = " for WAL verification"
			}
			if c := b.Compression(); c != pgwal.CompressionNone {
				saved := pgtypes.BLCKSZ - int(b.HoleLength) - int(b.ImageLen)
				buf = fmt.Appendf(buf, " (FPW%s); hole: offset: %d, length: %d, compression saved: %d, method: %s",
					verify, b.HoleOffset, b.HoleLength, saved, c)
			} else {
				buf = fmt.Appendf(buf, " (FPW%s); hole: offset: %d, length: %d", verify, b.HoleOffset, b.HoleLength)
			}
		}
		buf = append(buf, '\n')
	}
	return buf
}

// pgLSN formats an LSN as pg_waldump does: "%X/%08X".
func pgLSN(l lsn.LSN) string { return fmt.Sprintf("%X/%08X", uint64(l)>>32, uint32(l)) }

// forkName is PostgreSQL's forkNames[]; an invalid fork number prints as a
// number (PostgreSQL would read past its array).
func forkName(f pgtypes.ForkNumber) string {
	if f.Valid() {
		return f.String()
	}
	return fmt.Sprintf("%d", uint8(f))
}

// appendDesc appends "desc: " and the record's typed description. A body
// that does not decode is shown with the decoding error instead: waldump is
// a diagnostic tool and must print what it cannot understand.
func appendDesc(buf []byte, r *pgwal.DecodedRecord) []byte {
	buf = append(buf, "desc: "...)
	body, err := rmgr.Decode(r.RmID, r.Info, r.MainData)
	if err != nil {
		return fmt.Appendf(buf, "%s (undecodable: %v)", rmgr.RecordName(r.RmID, r.Info), err)
	}
	if g, ok := body.(*rmgr.GenericBody); ok {
		return fmt.Appendf(buf, "%s info 0x%02X main %d", rmgr.RecordName(r.RmID, r.Info), g.Info, len(g.Data))
	}
	return append(buf, rmgr.Describe(body)...)
}
