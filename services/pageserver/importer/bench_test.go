package importer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/importer"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
)

// historyBytes is the least WAL the benchmark's history spans.
const historyBytes = 200 << 20

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// mib formats a byte count in MiB.
func mib(n int64) float64 { return float64(n) / (1 << 20) }

// TestBenchIngestAndBackup measures issue 6's figures in one run, on one
// history: a base backup of a fresh primary, then `pgbench -i -s <scale>`
// (timed on the primary: its WAL generation rate) and pgbench transactions
// until the history spans at least 200 MiB of WAL, then
//
//   - ingest: the timeline imported from the base backup is fed the
//     history's WAL from the primary's pg_wal through importer.ImportWALDir
//     (pgdatadir.Ingest into a real timeline), timed;
//   - fullbackup: basebackup.Write with Full at the history's end, to a
//     file, with a real walredo pool materializing every page;
//   - pg_basebackup of the primary at the same point (-Ft -X fetch, to files);
//   - PITR: the base backup from before the history restored into a fresh
//     cluster and replayed to the same LSN with restore_command and
//     recovery_target_lsn, timed from the start of the extraction until
//     the server has left recovery.
//
// It is a Test gated by STRATA_BENCH=1, not a testing.B benchmark: each
// figure needs its own cluster and history, which b.N iterations cannot
// repeat. STRATA_BENCH_SCALE overrides the pgbench scale (default 10).
func TestBenchIngestAndBackup(t *testing.T) {
	if os.Getenv("STRATA_BENCH") != "1" {
		t.Skip("set STRATA_BENCH=1 to run the ingest and backup benchmark")
	}
	scale := "10"
	if s := os.Getenv("STRATA_BENCH_SCALE"); s != "" {
		scale = s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	primary := pgtest.Start(t, bootOptions)

	work, err := os.MkdirTemp("", "strata-importer-bench-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(work) })
	require.NoError(t, os.Chmod(work, 0o777))
	out, err := primary.Run(ctx, "pg_basebackup", "-D", filepath.Join(work, "before"), "-Ft", "-X", "none", "-c", "fast", "--no-manifest")
	require.NoError(t, err, "%s", out)

	// The history, timed on the primary.
	from := primary.CurrentWALLSN(t)
	began := time.Now()
	out, err = primary.Run(ctx, "pgbench", "-i", "-q", "-s", scale, "postgres")
	require.NoError(t, err, "%s", out)
	genTime := time.Since(began)
	initEnd := primary.CurrentWALLSN(t)
	genBytes := int64(initEnd.Sub(from))
	t.Logf("primary: pgbench -i -s %s wrote %.1f MiB of WAL (%s → %s) in %s: %.1f MiB/s",
		scale, mib(genBytes), from, initEnd, genTime.Round(time.Millisecond), mib(genBytes)/genTime.Seconds())
	// The PITR comparison needs a history of at least 200 MiB of WAL:
	// pgbench transactions on top of the initialization, 10 s at a time.
	for rounds := 0; primary.CurrentWALLSN(t).Sub(from) < historyBytes; rounds++ {
		require.Less(t, rounds, 60, "pgbench does not generate WAL")
		out, err = primary.Run(ctx, "pgbench", "-n", "-c", "4", "-j", "2", "-T", "10", "postgres")
		require.NoError(t, err, "%s", out)
	}
	target, err := lsn.Parse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
	require.NoError(t, err)
	t.Logf("history: %.1f MiB of WAL (%s → %s), pgbench transactions after the initialization in %s",
		mib(int64(target.Sub(from))), from, target, (time.Since(began) - genTime).Round(time.Millisecond))
	dbSize := primary.Query(t, "postgres", "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database")

	// pg_basebackup of the primary at the history's end.
	began = time.Now()
	out, err = primary.Run(ctx, "pg_basebackup", "-D", filepath.Join(work, "after"), "-Ft", "-X", "fetch", "-c", "fast", "--no-manifest")
	require.NoError(t, err, "%s", out)
	pgBasebackupTime := time.Since(began)
	pgBasebackupBytes := dirSize(t, filepath.Join(work, "after"))
	require.NoError(t, os.RemoveAll(filepath.Join(work, "after")))
	primary.Stop(t)

	// Import the earlier base backup, then ingest the history's WAL.
	e := newEnv(t, newRedoPool(t, false))
	tl := e.newTimeline()
	f, err := os.Open(filepath.Join(work, "before", "base.tar"))
	require.NoError(t, err)
	res, err := importer.ImportBaseBackup(ctx, tl, f, importer.Options{Logger: testLogger()})
	require.NoError(t, f.Close())
	require.NoError(t, err)
	ing, err := importer.NewIngest(ctx, tl, testLogger())
	require.NoError(t, err)
	began = time.Now()
	_, err = importer.ImportWALDir(ctx, ing, primary.WALDir(), initEnd)
	require.NoError(t, err)
	initTime := time.Since(began)
	initBytes := int64(tl.LastRecordLSN().Sub(res.At))
	t.Logf("ingest of the backup's WAL and pgbench -i: %.1f MiB (%s → %s) in %s: %.1f MiB/s, %.2f× the primary's pgbench -i generation rate",
		mib(initBytes), res.At, tl.LastRecordLSN(), initTime.Round(time.Millisecond),
		mib(initBytes)/initTime.Seconds(), (mib(initBytes)/initTime.Seconds())/(mib(genBytes)/genTime.Seconds()))
	// The history up to the target LSN (the primary's flush LSN after the
	// last pgbench round): the fullbackups and the PITR are all at it.
	_, err = importer.ImportWALDir(ctx, ing, primary.WALDir(), target+1)
	require.NoError(t, err)
	ingestTime := time.Since(began)
	ingested := int64(tl.LastRecordLSN().Sub(res.At))
	require.LessOrEqual(t, tl.LastRecordLSN(), target)
	require.Less(t, int64(target.Sub(tl.LastRecordLSN())), int64(lsn.DefaultSegmentSize), "the ingest stopped short of the target")
	target = tl.LastRecordLSN() // the end of the last record at or before it
	t.Logf("ingest of the whole history: %d records, %.1f MiB of WAL (%s → %s) in %s: %.1f MiB/s",
		ing.Records(), mib(ingested), res.At, tl.LastRecordLSN(), ingestTime.Round(time.Millisecond), mib(ingested)/ingestTime.Seconds())

	// Fullbackup at the history's end, to a file.
	fbPath := filepath.Join(work, "fullbackup.tar")
	fullbackup := func() (time.Duration, int64) {
		// Materialized pages of an earlier pass would make it a cache test.
		e.cache.InvalidateTimeline(e.tenant, tl.ID())
		fb, err := os.Create(fbPath)
		require.NoError(t, err)
		bw := bufio.NewWriterSize(fb, 1<<20)
		cw := &countingWriter{w: bw}
		began := time.Now()
		_, err = basebackup.Write(ctx, cw, pgdatadir.NewReader(tl), target, basebackup.Options{Full: true})
		require.NoError(t, err)
		require.NoError(t, bw.Flush())
		require.NoError(t, fb.Close())
		elapsed := time.Since(began)
		require.NoError(t, os.Remove(fbPath))
		return elapsed, cw.n
	}
	// First from the deltas alone (the import's image + every record since).
	deltaFullbackupTime, deltaFullbackupBytes := fullbackup()
	// Then compaction, as the background loop runs it: image layers of the
	// whole keyspace at disk_consistent_lsn, here the target (a fullbackup
	// at a later LSN reads the images plus the deltas above them).
	e.cache.InvalidateTimeline(e.tenant, tl.ID())
	cres, err := tl.Compact(ctx)
	require.NoError(t, err)
	require.NotZero(t, cres.LayersCreated, "compaction skipped: %s", cres.Skipped)
	require.Equal(t, target, cres.ImageLSN)
	t.Logf("compaction: %d image layers at %s, %d keys, %.1f MiB in %s", cres.LayersCreated, cres.ImageLSN, cres.Keys, mib(cres.Bytes), cres.Duration.Round(time.Millisecond))
	fullbackupTime, fullbackupBytes := fullbackup()

	// PITR of the earlier base backup to the same LSN.
	pitrTime := pitrRestore(t, filepath.Join(work, "before", "base.tar"), primary.WALDir(), target)
	replayed := int64(target.Sub(res.At)) // from the base backup's start

	t.Logf("database size at the end: %s", dbSize)
	t.Logf("fullbackup at %s before compaction (deltas only): %.1f MiB in %s", target, mib(deltaFullbackupBytes), deltaFullbackupTime.Round(time.Millisecond))
	t.Logf("fullbackup at %s after compaction (image layers): %.1f MiB in %s", target, mib(fullbackupBytes), fullbackupTime.Round(time.Millisecond))
	t.Logf("pg_basebackup -Ft -X fetch of the primary: %.1f MiB in %s", mib(pgBasebackupBytes), pgBasebackupTime.Round(time.Millisecond))
	t.Logf("PITR (restore + replay %.1f MiB of WAL to %s): %s; fullbackup / PITR = %.2f after compaction, %.2f before; (compaction + fullbackup) / PITR = %.2f",
		mib(replayed), target, pitrTime.Round(time.Millisecond), fullbackupTime.Seconds()/pitrTime.Seconds(),
		deltaFullbackupTime.Seconds()/pitrTime.Seconds(), (cres.Duration+fullbackupTime).Seconds()/pitrTime.Seconds())
}

// pitrRestore restores the base backup tarball into a fresh cluster,
// recovers it from walDir (as an archive) up to target and returns how
// long that took, from the start of the extraction until the server has
// left recovery.
func pitrRestore(t *testing.T, baseTar, walDir string, target lsn.LSN) time.Duration {
	t.Helper()
	dst := pgtest.Start(t, bootOptions)
	dst.Stop(t)
	st, err := os.Stat(dst.DataDir)
	require.NoError(t, err)
	sys := st.Sys().(*syscall.Stat_t)
	conf, err := os.ReadFile(filepath.Join(dst.DataDir, "postgresql.conf"))
	require.NoError(t, err)
	hba, err := os.ReadFile(filepath.Join(dst.DataDir, "pg_hba.conf"))
	require.NoError(t, err)
	entries, err := os.ReadDir(dst.DataDir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(dst.DataDir, e.Name())))
	}

	began := time.Now()
	f, err := os.Open(baseTar)
	require.NoError(t, err)
	require.NoError(t, extract(bufio.NewReaderSize(f, 1<<20), dst.DataDir))
	require.NoError(t, f.Close())
	require.NoError(t, os.MkdirAll(filepath.Join(dst.DataDir, "pg_wal", "archive_status"), 0o700))
	conf = append(conf, fmt.Sprintf("\nrestore_command = 'cp %s/%%f \"%%p\"'\nrecovery_target_lsn = '%s'\nrecovery_target_action = 'promote'\n",
		walDir, target)...)
	require.NoError(t, os.WriteFile(filepath.Join(dst.DataDir, "postgresql.conf"), conf, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dst.DataDir, "pg_hba.conf"), hba, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dst.DataDir, "recovery.signal"), nil, 0o600))
	require.NoError(t, filepath.Walk(dst.DataDir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(sys.Uid), int(sys.Gid))
	}))
	dst.Restart(t)
	for dst.Query(t, "postgres", "SELECT pg_is_in_recovery()") != "f" {
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(began)
	// After promotion the server writes from the end of what it replayed.
	replayedTo, err := lsn.Parse(dst.Query(t, "postgres", "SELECT pg_current_wal_lsn()"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, replayedTo, target, "recovery reached the target")
	dst.Stop(t)
	return elapsed
}

// dirSize sums the sizes of the files in dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	}))
	return n
}
