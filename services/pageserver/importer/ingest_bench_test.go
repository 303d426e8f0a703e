package importer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/importer"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
	"github.com/stratadb/strata/services/pageserver/timeline"
	"github.com/stratadb/strata/services/walredo/redo"
)

// benchChunkBytes is the size of the WAL chunks fed: a walsender sends at
// most 128 KiB per XLogData message (MAX_SEND_SIZE), and the bridge
// forwards each as one WalChunk.
const benchChunkBytes = 128 << 10

// walHistory is a base backup and the WAL of workloads run after it, held
// in memory.
type walHistory struct {
	baseTar   string
	walDir    string   // the primary's pg_wal after it stopped
	workloads []walRun // in WAL order
}

// walRun is the WAL one workload wrote: [from, to).
type walRun struct {
	name     string
	from, to lsn.LSN
	wal      []byte
}

// BenchmarkIngestWAL measures the pageserver's WAL ingest (issue 7): raw
// WAL as the bridge streams it (128 KiB chunks) through pgdatadir.Ingest —
// what IngestService does per WalChunk, without gRPC — into a real timeline
// (in-memory layer, ephemeral file, the page cache size and checkpoint
// distance of the pageserver's defaults).
//
// The WAL comes from a real PostgreSQL 15 primary, generated once per run
// after a base backup:
//
//   - insert: the backlog of BenchmarkEndToEnd's throughput rounds (one
//     INSERT of 650,000 rows with md5 text, ~64 MB of WAL);
//   - pgbench: `pgbench -c 4 -j 2 -T 10` on a scale-5 database.
//
// Each iteration imports the base backup into a fresh timeline and feeds
// the WAL before the workload, untimed, then times only the workload's WAL.
// MB/s is WAL bytes (10^6) per second; ns/record and records are reported
// too. flush-ns/record is the checkpoint after the workload (freeze, write
// the delta layer file of the workload's values), which the pageserver runs
// in the background, per record; it is not in ns/op. The baseline is the decoder alone over the same chunks
// (BenchmarkIngestWAL/<workload>/decode).
//
// <workload>/ingest calls Ingest.Feed per chunk (decode, then store, on one
// goroutine); <workload>/ingest-pipelined is what IngestService does:
// Ingest.Decode on one goroutine, Ingest.Store on another, 4 chunks deep.
func BenchmarkIngestWAL(b *testing.B) {
	h := generateHistory(b)
	for i, w := range h.workloads {
		b.Run(w.name+"/decode", func(b *testing.B) { benchDecode(b, w) })
		b.Run(w.name+"/ingest", func(b *testing.B) { benchIngest(b, h, i, false) })
		b.Run(w.name+"/ingest-pipelined", func(b *testing.B) { benchIngest(b, h, i, true) })
	}
}

func generateHistory(b *testing.B) *walHistory {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	primary := pgtest.Start(b, bootOptions)
	out, err := primary.Run(ctx, "pgbench", "-i", "-q", "-s", "5", "postgres")
	require.NoError(b, err, "%s", out)
	primary.Exec(b, "postgres", "CREATE TABLE bulk (id int, v text)")

	work, err := os.MkdirTemp("", "strata-ingest-bench-")
	require.NoError(b, err)
	b.Cleanup(func() { os.RemoveAll(work) })
	require.NoError(b, os.Chmod(work, 0o777))
	out, err = primary.Run(ctx, "pg_basebackup", "-D", filepath.Join(work, "base"), "-Ft", "-X", "none", "-c", "fast", "--no-manifest")
	require.NoError(b, err, "%s", out)

	h := &walHistory{baseTar: filepath.Join(work, "base", "base.tar"), walDir: primary.WALDir()}
	run := func(name string, fn func()) {
		primary.Checkpoint(b) // each workload starts with its own FPIs, as in the e2e rounds
		from := primary.CurrentWALLSN(b)
		fn()
		to := lsn.MustParse(primary.Query(b, "postgres", "SELECT pg_current_wal_flush_lsn()"))
		h.workloads = append(h.workloads, walRun{name: name, from: from, to: to})
	}
	run("insert", func() {
		primary.Exec(b, "postgres", "INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(1, 650000) g")
	})
	run("pgbench", func() {
		out, err := primary.Run(ctx, "pgbench", "-n", "-c", "4", "-j", "2", "-T", "10", "postgres")
		require.NoError(b, err, "%s", out)
	})
	primary.Stop(b)
	for i := range h.workloads {
		w := &h.workloads[i]
		w.wal = readWAL(b, h.walDir, w.from, w.to)
		b.Logf("%s: %.1f MB of WAL (%s..%s)", w.name, float64(len(w.wal))/1e6, w.from, w.to)
	}
	return h
}

// readWAL returns the WAL bytes [from, to) from the segment files of dir.
func readWAL(b *testing.B, dir string, from, to lsn.LSN) []byte {
	buf := make([]byte, 0, to.Sub(from))
	for pos := from; pos < to; {
		segno := pos.SegmentNumber(lsn.DefaultSegmentSize)
		seg, err := os.ReadFile(filepath.Join(dir, lsn.WALFileName(1, segno, lsn.DefaultSegmentSize)))
		require.NoError(b, err)
		off := pos.Sub(pos.SegmentStart(lsn.DefaultSegmentSize))
		n := min(uint64(len(seg))-off, to.Sub(pos))
		buf = append(buf, seg[off:off+n]...)
		pos = pos.Add(n)
	}
	return buf
}

// noRedo fails every redo: plain ingest must never need one.
type noRedo struct{}

func (noRedo) Apply(context.Context, *redo.Request, []byte) error {
	return errors.New("ingest benchmark: unexpected WAL redo during ingest")
}

func benchIngest(b *testing.B, h *walHistory, which int, pipelined bool) {
	w := h.workloads[which]
	ctx := context.Background()
	var records, ns, flushNs uint64
	b.SetBytes(int64(len(w.wal)))
	b.ReportAllocs()
	// One budget for all iterations, as in a pageserver that has run for a
	// while: the chunk buffers of flushed layers are reused.
	mem := ephemeral.NewMemory(256 << 20 /* pageserver.DefaultEphemeralMemoryLimit */)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tl := newBenchTimeline(b, mem)
		f, err := os.Open(h.baseTar)
		require.NoError(b, err)
		_, err = importer.ImportBaseBackup(ctx, tl, f, importer.Options{Logger: testLogger()})
		require.NoError(b, f.Close())
		require.NoError(b, err)
		ing, err := importer.NewIngest(ctx, tl, testLogger())
		require.NoError(b, err)
		_, err = importer.ImportWALDir(ctx, ing, h.walDir, w.from)
		require.NoError(b, err)
		require.Equal(b, w.from, ing.NextLSN())
		// The open layer then holds only the workload's values, for the
		// flush timed below.
		_, err = tl.Checkpoint(ctx)
		require.NoError(b, err)
		before := ing.Records()
		runtime.GC()
		b.StartTimer()

		began := time.Now()
		if pipelined {
			if err := feedPipelined(ctx, ing, w.from, w.wal); err != nil {
				b.Fatal(err)
			}
		} else {
			for off := 0; off < len(w.wal); off += benchChunkBytes {
				chunk := w.wal[off:min(off+benchChunkBytes, len(w.wal))]
				if err := ing.Feed(ctx, w.from.Add(uint64(off)), chunk); err != nil {
					b.Fatal(err)
				}
			}
		}
		ns += uint64(time.Since(began).Nanoseconds())

		b.StopTimer()
		records += ing.Records() - before
		if last := tl.LastRecordLSN(); last > w.to || w.to.Sub(last) > 1<<16 {
			b.Fatalf("last_record_lsn %s after feeding WAL up to %s", last, w.to)
		}
		began = time.Now()
		_, err = tl.Checkpoint(ctx)
		require.NoError(b, err)
		flushNs += uint64(time.Since(began).Nanoseconds())
		require.NoError(b, tl.Close())
		b.StartTimer()
	}
	b.ReportMetric(float64(ns)/float64(records), "ns/record")
	b.ReportMetric(float64(flushNs)/float64(records), "flush-ns/record")
	b.ReportMetric(float64(records)/float64(b.N), "records")
}

// feedPipelined feeds wal, which starts at from, in benchChunkBytes chunks
// as IngestService does: one goroutine decodes, this one stores, with
// Decodeds recycled.
func feedPipelined(ctx context.Context, ing *pgdatadir.Ingest, from lsn.LSN, wal []byte) error {
	const depth = 4
	queue := make(chan *pgdatadir.Decoded, depth)
	free := make(chan *pgdatadir.Decoded, depth+2)
	for range depth + 2 {
		free <- new(pgdatadir.Decoded)
	}
	done := make(chan struct{})
	decodeErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() {
		defer close(queue)
		for off := 0; off < len(wal); off += benchChunkBytes {
			var d *pgdatadir.Decoded
			select {
			case d = <-free:
			case <-done:
				return
			}
			chunk := wal[off:min(off+benchChunkBytes, len(wal))]
			if err := ing.Decode(from.Add(uint64(off)), chunk, d); err != nil {
				decodeErr <- err
				return
			}
			select {
			case queue <- d:
			case <-done:
				return
			}
		}
	})
	for d := range queue {
		err := ing.Store(ctx, d)
		free <- d
		if err != nil {
			return err
		}
	}
	select {
	case err := <-decodeErr:
		return err
	default:
		return nil
	}
}

// benchDecode is the baseline: the stream decoder and DecodeRecord over the
// same chunks, storing nothing.
func benchDecode(b *testing.B, w walRun) {
	b.SetBytes(int64(len(w.wal)))
	b.ReportAllocs()
	var records uint64
	var dr pgwal.DecodedRecord
	for b.Loop() {
		dec, err := pgwal.NewStreamDecoder(w.from, pgwal.StartsAtRecord(lsn.Invalid))
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(w.wal); off += benchChunkBytes {
			dec.Feed(w.wal[off:min(off+benchChunkBytes, len(w.wal))])
			for {
				rec, err := dec.Next()
				if errors.Is(err, pgwal.ErrNeedMore) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				if err := rec.Decode(&dr); err != nil {
					b.Fatal(err)
				}
				records++
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
}

// newBenchTimeline opens an empty root timeline with the pageserver's
// default page cache size, ephemeral memory limit and checkpoint distance.
func newBenchTimeline(b *testing.B, mem *ephemeral.Memory) *timeline.Timeline {
	cache, err := pagecache.New(pagecache.DefaultConfig(), nil)
	require.NoError(b, err)
	id := ids.NewTimelineID()
	dir := filepath.Join(b.TempDir(), id.String())
	require.NoError(b, os.MkdirAll(dir, 0o755))
	tl, err := timeline.Open(context.Background(), timeline.Options{
		Tenant: ids.NewTenantID(), ID: id, Dir: dir, Cache: cache, EphemeralMemory: mem, Redo: noRedo{}, Native: pgdatadir.Native{},
		Config: timeline.DefaultConfig(), Logger: testLogger(),
		PersistMetadata: func(lsn.LSN, lsn.LSN) error { return nil },
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = tl.Close() })
	return tl
}
