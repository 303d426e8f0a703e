package importer_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/importer"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
	"github.com/stratadb/strata/services/pageserver/timeline"
)

// phase is one step of the workload, run on the primary.
type phase struct {
	name string
	run  func(t *testing.T, s *pgtest.Server)
}

func sqlPhase(name, db, sql string) phase {
	return phase{name: name, run: func(t *testing.T, s *pgtest.Server) { s.Exec(t, db, sql) }}
}

func manySubxacts(n int) string {
	var b strings.Builder
	b.WriteString("BEGIN;\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "SAVEPOINT sp%d; INSERT INTO subx VALUES (%d, 'sub %d');\n", i, i, i)
		if i%10 == 0 {
			fmt.Fprintf(&b, "ROLLBACK TO SAVEPOINT sp%d;\n", i)
		}
	}
	b.WriteString("COMMIT;\n")
	return b.String()
}

func copyRows(table string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "COPY %s FROM STDIN;\n", table)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\tcopied row %d\n", i, i)
	}
	b.WriteString("\\.\n")
	return b.String()
}

// workload is deterministic apart from pgbench's interleaving; the
// fingerprints are taken from the primary, so that does not matter.
func workload() []phase {
	return []phase{
		sqlPhase("heap-indexes-toast-copy-seq", "postgres", `
CREATE TABLE t (id int PRIMARY KEY, n int, v text, arr int[], p point, r int4range, doc tsvector);
CREATE INDEX t_n ON t (n);
CREATE INDEX t_v_hash ON t USING hash (v);
CREATE INDEX t_arr_gin ON t USING gin (arr);
CREATE INDEX t_p_gist ON t USING gist (p);
CREATE INDEX t_r_gist ON t USING gist (r);
CREATE INDEX t_p_spgist ON t USING spgist (p);
CREATE INDEX t_id_brin ON t USING brin (id) WITH (pages_per_range = 4);
INSERT INTO t SELECT g, g % 10, md5(g::text), ARRAY[g % 100, g % 7], point(g % 1000, g / 1000),
  int4range(g, g + 10), to_tsvector('simple', 'w' || (g % 50)) FROM generate_series(1, 8000) g;
CREATE TABLE big (id int PRIMARY KEY, payload text);
INSERT INTO big SELECT o, (SELECT string_agg(md5(o::text || '-' || i), '') FROM generate_series(1, 300) i) FROM generate_series(1, 30) o;
CREATE TABLE m (id int, note text);
`+copyRows("m", 2000)+`
CREATE SEQUENCE s;
SELECT nextval('s') FROM generate_series(1, 150);
CREATE UNLOGGED TABLE scratch (a int PRIMARY KEY);
INSERT INTO scratch SELECT generate_series(1, 100);
`),
		sqlPhase("update-vacuum-full-truncate", "postgres", `
UPDATE t SET v = md5(v), n = n + 1 WHERE id % 3 = 0;
DELETE FROM t WHERE id BETWEEN 2000 AND 3500;
VACUUM t;
UPDATE big SET payload = payload || 'x' WHERE id % 2 = 0;
DELETE FROM big WHERE id % 5 = 0;
VACUUM FULL big;
DELETE FROM m WHERE id % 2 = 0;
VACUUM FULL m;
CREATE TABLE trunc_me (a int, b text);
INSERT INTO trunc_me SELECT g, 'x' || g FROM generate_series(1, 3000) g;
TRUNCATE trunc_me;
INSERT INTO trunc_me VALUES (1, 'after truncate');
VACUUM FREEZE t;
`),
		{name: "databases", run: func(t *testing.T, s *pgtest.Server) {
			s.Exec(t, "postgres", "CREATE DATABASE d_wal STRATEGY WAL_LOG")
			s.Exec(t, "d_wal", `CREATE TABLE items (k text PRIMARY KEY, n int);
INSERT INTO items SELECT 'k' || g, g FROM generate_series(1, 3000) g;
CREATE INDEX items_n ON items USING hash (n);`)
			s.Exec(t, "postgres", `CREATE DATABASE d_fc TEMPLATE d_wal STRATEGY FILE_COPY;
CREATE DATABASE d_drop_fc STRATEGY FILE_COPY;
CREATE DATABASE d_drop_wal STRATEGY WAL_LOG;`)
			s.Exec(t, "d_fc", "UPDATE items SET n = -n WHERE n % 100 = 0;")
			s.Exec(t, "d_drop_wal", "CREATE TABLE gone (a int); INSERT INTO gone VALUES (1);")
			s.Exec(t, "postgres", "DROP DATABASE d_drop_fc; DROP DATABASE d_drop_wal;")
		}},
		sqlPhase("2pc-subxacts-multixact", "postgres", `
CREATE TABLE subx (id int, note text);
CREATE TABLE pending2pc (id int, note text);
`+manySubxacts(80)+`
BEGIN; INSERT INTO t VALUES (900001, 1, 'committed-2pc'); PREPARE TRANSACTION 'gid_done'; COMMIT PREPARED 'gid_done';
BEGIN; INSERT INTO t VALUES (900002, 2, 'aborted-2pc'); PREPARE TRANSACTION 'gid_undone'; ROLLBACK PREPARED 'gid_undone';
BEGIN; INSERT INTO pending2pc VALUES (1, 'pending'); PREPARE TRANSACTION 'gid_pending';
BEGIN;
SELECT id FROM t WHERE id <= 20 FOR KEY SHARE;
SAVEPOINT s1;
UPDATE t SET n = n + 100 WHERE id <= 10;
COMMIT;
`),
		sqlPhase("lo-partitions-matview", "postgres", `
SELECT lo_from_bytea(424242, convert_to(repeat('large object ', 3000), 'UTF8'));
SELECT lo_from_bytea(424243, '\x00010203');
SELECT lo_put(424242, 100, '\xdeadbeef');
SELECT lo_unlink(424243);
CREATE TABLE parted (k int, v text) PARTITION BY RANGE (k);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (1000) TO (2000);
CREATE TABLE parted_def PARTITION OF parted DEFAULT;
INSERT INTO parted SELECT g, 'p' || g FROM generate_series(0, 2500, 3) g;
UPDATE parted SET k = k + 1000 WHERE k < 300;
CREATE MATERIALIZED VIEW mv AS SELECT n, count(*) AS c FROM t GROUP BY n;
CREATE UNIQUE INDEX mv_n ON mv (n);
UPDATE t SET n = n + 1 WHERE id % 11 = 0;
REFRESH MATERIALIZED VIEW mv;
UPDATE t SET n = n + 1 WHERE id % 13 = 0;
REFRESH MATERIALIZED VIEW CONCURRENTLY mv;
`),
		{name: "pgbench", run: func(t *testing.T, s *pgtest.Server) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out, err := s.Run(ctx, "pgbench", "-i", "-q", "-s", "1", "postgres")
			require.NoError(t, err, "%s", out)
			out, err = s.Run(ctx, "pgbench", "-n", "-c", "2", "-j", "1", "-t", "150", "postgres")
			require.NoError(t, err, "%s", out)
		}},
	}
}

type phaseState struct {
	name string
	at   lsn.LSN
	fp   map[string]string
}

// TestWholeClusterFidelity is issue 6's acceptance test: a timeline
// imported from a base backup taken before a broad workload, fed all the
// WAL after it, must give at every phase's LSN a fullbackup that vanilla
// PostgreSQL 15 boots with the primary's logical content at that LSN, and
// that pg_amcheck finds clean.
func TestWholeClusterFidelity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs several PostgreSQL servers")
	}
	began := time.Now()
	ctx := context.Background()
	primary := pgtest.Start(t, bootOptions)
	primary.Exec(t, "postgres", "CREATE TABLE before_backup (a int PRIMARY KEY, b text); INSERT INTO before_backup SELECT g, md5(g::text) FROM generate_series(1, 5000) g;")

	primary.Exec(t, "postgres", "CREATE DATABASE fuzz")
	out, err := primary.Run(ctx, "pgbench", "-i", "-q", "-s", "1", "fuzz")
	require.NoError(t, err, "%s", out)

	// Base backup of the running primary, as a tar, without WAL. It is
	// throttled while pgbench writes, so the copy is truly fuzzy: pages
	// change while they are read, and only WAL replay from the backup's
	// start makes them consistent.
	backupDir, err := os.MkdirTemp("", "strata-importer-backup-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(backupDir) })
	require.NoError(t, os.Chmod(backupDir, 0o777))
	writer := make(chan error, 1)
	go func() {
		out, err := primary.Run(ctx, "pgbench", "-n", "-c", "2", "-j", "1", "-T", "4", "fuzz")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		writer <- err
	}()
	out, err = primary.Run(ctx, "pg_basebackup", "-D", filepath.Join(backupDir, "b"), "-Ft", "-X", "none", "-c", "fast", "--no-manifest", "--max-rate=10M", "-v")
	require.NoError(t, err, "%s", out)
	require.NoError(t, <-writer)
	t.Logf("pg_basebackup:\n%s", out)

	var phases []phaseState
	record := func(name string) {
		at, err := lsn.Parse(primary.Query(t, "postgres", "SELECT pg_current_wal_flush_lsn()"))
		require.NoError(t, err)
		phases = append(phases, phaseState{name: name, at: at, fp: fingerprint(t, primary)})
	}
	record("after-backup")
	for _, p := range workload() {
		p.run(t, primary)
		record(p.name)
	}
	workloadDone := time.Now()
	catalog := primaryRelations(t, primary) // for the page-level check's rm_mask per access method
	primary.Stop(t)                         // a shutdown checkpoint ends the WAL; nothing is recycled (wal_keep_size)

	// Import + ingest with a real walredo pool.
	e := newEnv(t, newRedoPool(t, false))
	tl := e.newTimeline()
	f, err := os.Open(filepath.Join(backupDir, "b", "base.tar"))
	require.NoError(t, err)
	defer f.Close()
	res, err := importer.ImportBaseBackup(ctx, tl, f, importer.Options{Logger: testLogger()})
	require.NoError(t, err)
	require.True(t, res.FromBackup)
	t.Logf("imported base backup at %s (checkpoint %s): %d databases, %d relation forks, %d blocks, %d SLRU segments, %d twophase files, %d bytes in %s",
		res.At, res.CheckpointLSN, res.Databases, res.Relations, res.Blocks, res.SlruSegments, res.TwoPhaseFiles, res.Bytes, res.Elapsed)
	require.Equal(t, res.At, tl.LastRecordLSN())

	ing, err := importer.NewIngest(ctx, tl, testLogger())
	require.NoError(t, err)
	ingBegan := time.Now()
	// The WAL up to the first phase comes from a tar of the segments (as
	// pg_wal.tar), the rest from the directory.
	tres, err := importer.ImportWAL(ctx, ing, walTar(t, primary.WALDir()), phases[0].at)
	require.NoError(t, err)
	require.Equal(t, phases[0].at, tres.FedTo)
	require.LessOrEqual(t, tl.LastRecordLSN(), phases[0].at)
	// Compaction twice: image layers in the middle of the history (phases
	// after it read image + deltas, phases before it read deltas only) and
	// at the end (the page-level check and the last phase read images).
	mid := phases[len(phases)/2].at
	_, err = importer.ImportWALDir(ctx, ing, primary.WALDir(), mid)
	require.NoError(t, err)
	compact := func() {
		cres, err := tl.Compact(ctx)
		require.NoError(t, err)
		require.NotZero(t, cres.LayersCreated, "skipped: %s", cres.Skipped)
		t.Logf("compaction: %d image layers at %s, %d keys, %d bytes in %s", cres.LayersCreated, cres.ImageLSN, cres.Keys, cres.Bytes, cres.Duration)
	}
	compact()
	wres, err := importer.ImportWALDir(ctx, ing, primary.WALDir(), lsn.Invalid)
	require.NoError(t, err)
	compact()
	t.Logf("ingested %d records, %s → %s (%.1f MB of WAL) in %s", ing.Records(), res.At, tl.LastRecordLSN(),
		float64(tl.LastRecordLSN().Sub(res.At))/(1<<20), time.Since(ingBegan))
	require.True(t, wres.EndOfWAL)
	last := phases[len(phases)-1].at
	require.GreaterOrEqual(t, tl.LastRecordLSN(), last, "WAL must reach the last phase")

	// A branch at an earlier phase, created before the parent's checks.
	branchPhase := phases[2]
	br := e.branch(tl, branchPhase.at)
	parentLast := tl.LastRecordLSN()

	// Page-level check at the final LSN (the end of the primary's WAL,
	// its shutdown checkpoint) against the primary's data files.
	t.Run("page-level", func(t *testing.T) {
		start := time.Now()
		m, ok := e.redo.(masker)
		require.True(t, ok, "the walredo pool applies rm_mask")
		rd := pgdatadir.NewReader(tl)
		stats := checkPages(t, rd, parentLast, primary.DataDir, catalog, map[string]bool{"d_wal": true, "d_fc": true}, m, e.tenant)
		logPageStats(t, stats)
		slrus := checkSlrus(t, rd, parentLast, primary.DataDir)
		t.Logf("SLRU segments equal byte for byte: %v; page-level check in %s", slrus, time.Since(start))
	})

	for _, p := range phases {
		t.Run(p.name, func(t *testing.T) {
			start := time.Now()
			dst := bootFullbackup(t, tl, p.at)
			requireSameFingerprint(t, fmt.Sprintf("phase %s at %s", p.name, p.at), p.fp, fingerprint(t, dst))
			amcheck(t, dst)
			dst.Stop(t)
			t.Logf("phase %s at %s: fingerprint equal (%d entries), pg_amcheck clean, in %s", p.name, p.at, len(p.fp), time.Since(start))
		})
	}

	t.Run("branch", func(t *testing.T) {
		require.Equal(t, branchPhase.at, br.LastRecordLSN())
		dst := bootFullbackup(t, br, br.LastRecordLSN())
		requireSameFingerprint(t, "branch at "+branchPhase.at.String(), branchPhase.fp, fingerprint(t, dst))
		dst.Stop(t)
		require.Equal(t, parentLast, tl.LastRecordLSN(), "the parent is unchanged")
	})

	t.Run("lsn-out-of-range", func(t *testing.T) {
		var sink strings.Builder
		_, err := basebackup.Write(ctx, &sink, pgdatadir.NewReader(tl), res.At-8, basebackup.Options{Full: true})
		require.ErrorIs(t, err, timeline.ErrLSNOutOfRange)
		t.Logf("below the start: %v", err)
		_, err = basebackup.Write(ctx, &sink, pgdatadir.NewReader(tl), tl.LastRecordLSN()+lsn.DefaultSegmentSize, basebackup.Options{Full: true})
		require.True(t, errors.Is(err, timeline.ErrWaitLSNTimeout), "above last_record_lsn: %v", err)
		t.Logf("above last_record_lsn: %v", err)
	})
	// GC up to the middle image. Layers: the import's image, deltas up to
	// the middle, the middle image, deltas to the end, the end image. With
	// the branch point (below the middle) retained, the import's image is
	// the branch's base and nothing can go: the branch still boots. Without
	// it (as after deleting the branch) the import's image goes; the
	// phases from the middle on still boot and earlier ones are refused.
	t.Run("gc", func(t *testing.T) {
		n, _ := tl.LayerStats()
		tl.SetGCCutoff(mid)
		gres, err := tl.GC(ctx, []lsn.LSN{branchPhase.at})
		require.NoError(t, err)
		t.Logf("GC at %s keeping branch point %s: removed %d of %d layer files", mid, branchPhase.at, gres.LayersRemoved, n)
		require.Zero(t, gres.LayersRemoved, "the import's image is the branch point's base")
		dst := bootFullbackup(t, br, br.LastRecordLSN())
		requireSameFingerprint(t, "after GC: branch at "+branchPhase.at.String(), branchPhase.fp, fingerprint(t, dst))
		dst.Stop(t)

		gres, err = tl.GC(ctx, nil)
		require.NoError(t, err)
		t.Logf("GC at %s without branch points: removed %d of %d layer files (%d bytes)", mid, gres.LayersRemoved, n, gres.BytesRemoved)
		require.Equal(t, 1, gres.LayersRemoved, "the import's image lies under the middle image")
		for _, p := range phases {
			if p.at < mid {
				var sink strings.Builder
				_, err = basebackup.Write(ctx, &sink, pgdatadir.NewReader(tl), p.at, basebackup.Options{Full: true})
				require.ErrorIs(t, err, timeline.ErrLSNOutOfRange, "phase %s at %s is below the GC cutoff", p.name, p.at)
				continue
			}
			dst := bootFullbackup(t, tl, p.at)
			requireSameFingerprint(t, "after GC: phase "+p.name, p.fp, fingerprint(t, dst))
			dst.Stop(t)
			t.Logf("after GC: phase %s at %s boots with an equal fingerprint", p.name, p.at)
		}
	})
	t.Logf("workload %s, whole test %s", workloadDone.Sub(began), time.Since(began))
}

// walTar streams a tar of the WAL segments in dir, in name order.
func walTar(t *testing.T, dir string) io.Reader {
	names, err := filepath.Glob(filepath.Join(dir, "0000000100000000000000??"))
	require.NoError(t, err)
	sort.Strings(names)
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: "archive_status/", Typeflag: tar.TypeDir, Mode: 0o700})
		for _, name := range names {
			if err != nil {
				break
			}
			var b []byte
			if b, err = os.ReadFile(name); err != nil {
				break
			}
			if err = tw.WriteHeader(&tar.Header{Name: filepath.Base(name), Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(b))}); err == nil {
				_, err = tw.Write(b)
			}
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	t.Cleanup(func() { _ = pr.Close() })
	return pr
}
