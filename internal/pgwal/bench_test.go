package pgwal_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal"
)

// BenchmarkDecodeVsPGWaldump measures WAL decoding throughput (MB/s of WAL,
// from the workload's start LSN to the end of valid WAL) of our Reader and
// DecodeRecord, next to PostgreSQL's pg_waldump on the same segments in the
// same run: the baseline. Results: bench/RESULTS.md.
//
//	go test -run '^$' -bench DecodeVsPGWaldump -benchtime 5x ./internal/pgwal/
func BenchmarkDecodeVsPGWaldump(b *testing.B) {
	g := generateWAL(b)
	// Measure how much WAL there is: from start to the end of valid WAL.
	var walEnd lsn.LSN
	var nrec int
	r, err := pgwal.NewReader(g.walDir, 1, g.start, lsn.Invalid)
	if err != nil {
		b.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		walEnd, nrec = rec.EndLSN, nrec+1
	}
	_ = r.Close()
	walBytes := int64(walEnd - g.start)
	b.Logf("%d records, %d bytes of WAL from %s to %s", nrec, walBytes, g.start, walEnd)

	decodeAll := func(b *testing.B, images bool) {
		var dec pgwal.DecodedRecord
		page := make([]byte, pgtypes.BLCKSZ)
		r, err := pgwal.NewReader(g.walDir, 1, g.start, lsn.Invalid)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = r.Close() }()
		for {
			rec, err := r.Next()
			if errors.Is(err, pgwal.ErrEndOfWAL) {
				return
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := rec.Decode(&dec); err != nil {
				b.Fatal(err)
			}
			if images {
				for i := range dec.Blocks {
					if dec.Blocks[i].HasImage() {
						if err := dec.Blocks[i].RestorePage(page); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		}
	}
	b.Run("strata-reader+decode", func(b *testing.B) {
		b.SetBytes(walBytes)
		for b.Loop() {
			decodeAll(b, false)
		}
	})
	b.Run("strata-reader+decode+restore-images", func(b *testing.B) {
		b.SetBytes(walBytes)
		for b.Loop() {
			decodeAll(b, true)
		}
	})
	pgWaldump := func(b *testing.B, extra ...string) {
		b.SetBytes(walBytes)
		args := append([]string{"-p", g.walDir, "-s", g.start.String()}, extra...)
		for b.Loop() {
			cmd := exec.Command(filepath.Join(g.binDir, "pg_waldump"), args...)
			// stdout is /dev/null when cmd.Stdout is nil.
			if err := cmd.Run(); err != nil {
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("pg_waldump>devnull", func(b *testing.B) { pgWaldump(b) })
	b.Run("pg_waldump-quiet", func(b *testing.B) { pgWaldump(b, "-q") })
}
