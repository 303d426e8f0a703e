package walingest

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/internal/pgwal"
)

// BenchmarkPgbenchWAL measures ingest throughput on the WAL of
// `pgbench -i -s 1` plus 500 pgbench transactions, held in memory as
// records: "decode" is the baseline (pgwal.DecodeRecord only), "ingest"
// decodes and ingests into a fresh MemStore. MB/s is WAL bytes (end LSN -
// start LSN) per second.
func BenchmarkPgbenchWAL(b *testing.B) {
	s := pgtest.Start(b, pgtest.Options{Conf: map[string]string{"autovacuum": "off", "wal_keep_size": "4GB", "max_wal_size": "4GB"}})
	start := s.CurrentWALLSN(b)
	s.Exec(b, "postgres", "SELECT 1")
	pgbench(b, s, "-i", "-s", "1", "postgres")
	pgbench(b, s, "-c", "1", "-t", "500", "postgres")
	s.Stop(b)

	r, err := pgwal.NewReader(s.WALDir(), 1, start, lsn.Invalid)
	require.NoError(b, err)
	var recs []pgwal.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, pgwal.ErrEndOfWAL) {
			break
		}
		require.NoError(b, err)
		recs = append(recs, rec.Clone())
	}
	require.NoError(b, r.Close())
	walBytes := int64(recs[len(recs)-1].EndLSN - recs[0].LSN)
	b.Logf("%d records, %d bytes of WAL", len(recs), walBytes)

	b.Run("decode", func(b *testing.B) {
		b.SetBytes(walBytes)
		var dr pgwal.DecodedRecord
		for b.Loop() {
			for _, rec := range recs {
				if err := rec.Decode(&dr); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("ingest", func(b *testing.B) {
		b.SetBytes(walBytes)
		ctx := context.Background()
		var dr pgwal.DecodedRecord
		for b.Loop() {
			store := NewMemStore()
			in, err := New(ctx, store, store, nil)
			if err != nil {
				b.Fatal(err)
			}
			for _, rec := range recs {
				if err := rec.Decode(&dr); err != nil {
					b.Fatal(err)
				}
				if err := in.Ingest(ctx, &dr); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
