package pgwal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stratadb/strata/internal/pgtypes"
)

// Seed corpora: testdata/fuzz/<FuzzName>/ holds records and WAL pages from a
// real PostgreSQL 15 (written by TestAgainstPostgres with
// STRATA_PGWAL_WRITE_SEEDS=1); f.Add adds synthetic ones.

func FuzzStreamDecoder(f *testing.F) {
	w := buildSample(f)
	data := w.bytes()
	f.Add(data[:3*PageSize], uint16(100))
	f.Add(data[:PageSize+100], uint16(7))
	f.Add(data[:600], uint16(0))
	writeStreamSeeds(f, data)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		for _, opts := range [][]Option{
			{WithSegmentSize(testSegSize)},
			{WithSegmentSize(testSegSize), StartsAtRecord(0)},
		} {
			start := testBase
			if len(opts) == 2 {
				start += lsn40
			}
			d, err := NewStreamDecoder(start, opts...)
			if err != nil {
				t.Fatal(err)
			}
			step := int(chunk%4096) + 1
			var dec DecodedRecord
			page := make([]byte, pgtypes.BLCKSZ)
			pos := 0
			for {
				rec, err := d.Next()
				if errors.Is(err, ErrNeedMore) {
					if pos == len(data) {
						break
					}
					n := min(step, len(data)-pos)
					d.Feed(data[pos : pos+n])
					pos += n
					if d.Buffered() > len(data) {
						t.Fatalf("buffered %d bytes of %d fed", d.Buffered(), len(data))
					}
					continue
				}
				if err != nil {
					if !errors.Is(err, ErrEndOfWAL) && !errors.Is(err, ErrCorrupt) {
						t.Fatalf("unexpected error kind: %v", err)
					}
					break
				}
				if len(rec.Raw) > len(data) || rec.EndLSN <= rec.LSN {
					t.Fatalf("record at %s: %d raw bytes from %d fed, end %s", rec.LSN, len(rec.Raw), len(data), rec.EndLSN)
				}
				if rec.Decode(&dec) == nil {
					for i := range dec.Blocks {
						if dec.Blocks[i].HasImage() {
							_ = dec.Blocks[i].RestorePage(page)
						}
					}
				}
			}
		}
	})
}

const lsn40 = 40 // first record of a segment

func FuzzDecodeRecord(f *testing.F) {
	w := buildSample(f)
	for i, raw := range w.raws {
		if i%50 == 0 {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var dec DecodedRecord
		if err := DecodeRecord(raw, &dec); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		page := make([]byte, pgtypes.BLCKSZ)
		var total int
		for i := range dec.Blocks {
			b := &dec.Blocks[i]
			total += len(b.Image) + len(b.Data)
			if b.HasImage() {
				if err := b.RestorePage(page); err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("unexpected error kind: %v", err)
				}
			}
		}
		if total+len(dec.MainData) > len(raw) {
			t.Fatalf("parts of %d bytes in a record of %d", total+len(dec.MainData), len(raw))
		}
	})
}

func FuzzPGLZ(f *testing.F) {
	f.Add([]byte{0x20, '1', '1', '2', '3', '4', 0x0d, 0x04}, uint16(21))
	f.Add([]byte{0x02, 'x', 0x0f, 0x01, 200}, uint16(219))
	f.Fuzz(func(t *testing.T, src []byte, n uint16) {
		dst := make([]byte, int(n)%(pgtypes.BLCKSZ+1))
		if err := pglzDecompress(src, dst); err != nil && !errors.Is(err, errPGLZ) {
			t.Fatal(err)
		}
	})
}

// writeStreamSeeds checks in synthetic WAL as FuzzStreamDecoder seeds when
// STRATA_PGWAL_WRITE_SEEDS is set.
func writeStreamSeeds(f *testing.F, data []byte) {
	if os.Getenv("STRATA_PGWAL_WRITE_SEEDS") == "" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzStreamDecoder")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	for i, n := range []int{2 * PageSize, 6 * PageSize} {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nuint16(%d)\n", strconv.Quote(string(data[:n])), 300*i+50)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("synthetic-%d", i)), []byte(body), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}
