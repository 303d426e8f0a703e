package pgwal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/internal/pgwal/waldump"
)

// generatedWAL is WAL written by a real PostgreSQL 15 under a broad workload,
// left in walDir after a clean shutdown.
type generatedWAL struct {
	binDir string
	walDir string
	start  lsn.LSN // pg_current_wal_lsn() before the workload
	end    lsn.LSN // pg_current_wal_lsn() after it (before shutdown)
}

// generateWAL runs the acceptance workload of issue 3.
func generateWAL(t testing.TB) generatedWAL {
	t.Helper()
	s := pgtest.Start(t, pgtest.Options{
		Checksums: true,
		Conf: map[string]string{
			"max_prepared_transactions": "5",
			"wal_compression":           "off",
			"wal_keep_size":             "1GB", // keep every segment of the run
			"max_wal_size":              "1GB",
			"autovacuum":                "off", // deterministic enough, and quieter
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := s.CurrentWALLSN(t)
	run := func(bin string, args ...string) {
		t.Helper()
		out, err := s.Run(ctx, bin, args...)
		require.NoError(t, err, "%s", out)
	}
	setCompression := func(method string) {
		t.Helper()
		s.Exec(t, "postgres", fmt.Sprintf("ALTER SYSTEM SET wal_compression = '%s'", method))
		s.Exec(t, "postgres", "SELECT pg_reload_conf()")
		time.Sleep(200 * time.Millisecond) // let every backend take the SIGHUP
		s.Checkpoint(t)                    // the next change of each page logs an image
	}
	touchPages := func() {
		t.Helper()
		s.Exec(t, "postgres", `
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 97 = 0;
UPDATE idx SET txt = txt || 'x' WHERE id % 53 = 0;
UPDATE big SET t = t || 'z' WHERE id % 17 = 0;`)
	}

	// Phase "off": bulk load, every index type, TOAST, COPY.
	run("pgbench", "-i", "-s", "1", "-q", "postgres")
	s.Exec(t, "postgres", `
CREATE TABLE big(id int PRIMARY KEY, t text);
INSERT INTO big SELECT g, (SELECT string_agg(md5(g::text || x::text), '') FROM generate_series(1, 100) x)
  FROM generate_series(1, 300) g;
CREATE TABLE idx(id int, arr int[], p point, txt text, r int4range);
INSERT INTO idx SELECT g, ARRAY[g, g + 1, g % 7], point(g % 100, g / 100), md5(g::text), int4range(g, g + 10)
  FROM generate_series(1, 5000) g;
CREATE INDEX idx_btree ON idx USING btree (id);
CREATE INDEX idx_hash ON idx USING hash (id);
CREATE INDEX idx_gin ON idx USING gin (arr);
CREATE INDEX idx_gist ON idx USING gist (p);
CREATE INDEX idx_spgist ON idx USING spgist (txt);
CREATE INDEX idx_brin ON idx USING brin (id);
CREATE INDEX idx_gist_range ON idx USING gist (r);
CREATE TABLE cp(a int, b text);
COPY cp(a) FROM PROGRAM 'seq 1 20000';
INSERT INTO idx SELECT g, ARRAY[g], point(g, g), md5(g::text), int4range(g, g + 1) FROM generate_series(5001, 7000) g;
DELETE FROM idx WHERE id % 3 = 0;
VACUUM idx;
VACUUM FULL big;
CLUSTER idx USING idx_btree;
TRUNCATE cp;
SELECT pg_logical_emit_message(false, 'strata', repeat('y', 40000));
`)
	touchPages()
	run("pgbench", "-t", "300", "-c", "2", "-n", "postgres")

	// Phase "pglz": databases (both strategies), 2PC, subtransactions.
	setCompression("pglz")
	touchPages()
	s.Exec(t, "postgres", `
CREATE DATABASE d_wal STRATEGY wal_log;
CREATE DATABASE d_copy STRATEGY file_copy;
DROP DATABASE d_wal;
DROP DATABASE d_copy;
CREATE TABLE tp(a int);
BEGIN; INSERT INTO tp VALUES (1); PREPARE TRANSACTION 'p1';
COMMIT PREPARED 'p1';
BEGIN; INSERT INTO tp VALUES (2); PREPARE TRANSACTION 'p2';
ROLLBACK PREPARED 'p2';
CREATE TABLE sub(a int);
DO $$ BEGIN
  FOR i IN 1..100 LOOP
    BEGIN INSERT INTO sub VALUES (i); IF i % 10 = 0 THEN RAISE EXCEPTION 'x'; END IF;
    EXCEPTION WHEN others THEN NULL; END;
  END LOOP;
END $$;
`)

	// Phase "lz4": multixacts from two sessions, large objects, sequences.
	setCompression("lz4")
	touchPages()
	s.Exec(t, "postgres", "CREATE TABLE mx(id int PRIMARY KEY, v int); INSERT INTO mx SELECT g, g FROM generate_series(1, 100) g;")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Psql(ctx, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
				"BEGIN; SELECT count(*) FROM (SELECT * FROM mx FOR SHARE) s; SELECT pg_sleep(1); COMMIT;")
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	s.Exec(t, "postgres", `
BEGIN; SELECT * FROM mx WHERE id <= 5 FOR SHARE; SAVEPOINT a; UPDATE mx SET v = v + 1 WHERE id <= 5; COMMIT;
SELECT lo_unlink(lo_from_bytea(0, convert_to(repeat('large object ', 3000), 'UTF8')));
SELECT lo_from_bytea(0, convert_to(repeat('kept object ', 3000), 'UTF8'));
CREATE SEQUENCE seq1;
SELECT nextval('seq1') FROM generate_series(1, 200);
`)

	// Phase "zstd", then a switch and a little more WAL in the next segment.
	setCompression("zstd")
	touchPages()
	run("pgbench", "-t", "100", "-c", "2", "-n", "postgres")
	s.SwitchWAL(t)
	s.Exec(t, "postgres", "INSERT INTO tp VALUES (3); CHECKPOINT;")
	end := s.CurrentWALLSN(t)
	s.Stop(t)
	return generatedWAL{binDir: s.BinDir, walDir: s.WALDir(), start: start, end: end}
}

var (
	walOnce sync.Once
	walGen  generatedWAL
)

// sharedWAL generates the WAL once per test binary; the server's directory
// lives until the first test that asked for it ends, so callers run as its
// subtests.
func runWithWAL(t *testing.T, fn func(t *testing.T, g generatedWAL)) {
	walOnce.Do(func() { walGen = generateWAL(t) })
	fn(t, walGen)
}

// pgWaldump runs PostgreSQL's pg_waldump and returns its standard output.
func pgWaldump(t testing.TB, g generatedWAL, args ...string) []string {
	t.Helper()
	cmd := exec.Command(filepath.Join(g.binDir, "pg_waldump"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // exits 1 at the end of WAL; stderr says why
	require.Contains(t, stderr.String(), "error in WAL record", "pg_waldump should stop at the end of WAL")
	return strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
}

// stripDesc is `perl -pe 's/desc: .*?(?=, blkref #|$)//'`.
func stripDesc(line string) string {
	i := strings.Index(line, "desc: ")
	if i < 0 {
		return line
	}
	rest := line[i:]
	if j := strings.Index(rest, ", blkref #"); j >= 0 {
		return line[:i] + rest[j:]
	}
	return line[:i]
}

func TestAgainstPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	runWithWAL(t, func(t *testing.T, g generatedWAL) {
		for _, details := range []bool{false, true} {
			t.Run(fmt.Sprintf("compat/bkp-details=%v", details), func(t *testing.T) {
				args := []string{"-p", g.walDir, "-s", g.start.String()}
				if details {
					args = append(args, "-b")
				}
				want := pgWaldump(t, g, args...)
				var out bytes.Buffer
				err := waldump.Run(context.Background(), waldump.Config{Path: g.walDir, Start: g.start, Compat: true, BkpDetails: details}, &out)
				require.ErrorIs(t, err, waldump.ErrWAL)
				require.Contains(t, err.Error(), "error in WAL record at")
				got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				for i := range min(len(want), len(got)) {
					if w := stripDesc(want[i]); w != got[i] {
						t.Fatalf("line %d differs:\npg_waldump: %s\nwaldump:    %s", i+1, w, got[i])
					}
				}
				require.Equal(t, len(want), len(got), "line count")
				t.Logf("%d lines equal", len(got))
			})
		}
		t.Run("records", func(t *testing.T) { checkRecords(t, g) })
		t.Run("stream", func(t *testing.T) { checkStream(t, g) })
	})
}

type recordID struct {
	lsn, end lsn.LSN
	hash     uint64
}

var hashSeed = maphash.MakeSeed()

// readAll reads every record from start with a Reader.
func readAll(t *testing.T, g generatedWAL, start lsn.LSN, fn func(rec pgwal.Record)) []recordID {
	t.Helper()
	r, err := pgwal.NewReader(g.walDir, 1, start, lsn.Invalid)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()
	var ids []recordID
	for {
		rec, err := r.Next()
		if err != nil {
			require.ErrorIs(t, err, pgwal.ErrEndOfWAL)
			require.GreaterOrEqual(t, uint64(err.(*pgwal.EndOfWALError).LSN), uint64(g.end), "WAL ends before pg_current_wal_lsn()")
			return ids
		}
		ids = append(ids, recordID{rec.LSN, rec.EndLSN, maphash.Bytes(hashSeed, rec.Raw)})
		if fn != nil {
			fn(rec)
		}
	}
}

// checkRecords verifies EndLSN chaining, segment crossing, and every image.
func checkRecords(t *testing.T, g generatedWAL) {
	var (
		dec          pgwal.DecodedRecord
		page         = make([]byte, pgtypes.BLCKSZ)
		methods      = map[pgwal.Compression]int{}
		crossSegment int
		multiPage    int
		prevEnd      lsn.LSN
		n            int
	)
	readAll(t, g, g.start, func(rec pgwal.Record) {
		n++
		if prevEnd.IsValid() {
			require.Equal(t, prevEnd.SkipPageHeader(lsn.DefaultSegmentSize), rec.LSN, "record after EndLSN %s", prevEnd)
		}
		prevEnd = rec.EndLSN
		require.NoError(t, rec.Decode(&dec))
		writeSeed(t, &dec)
		isSwitch := dec.RmID == rmgr.XLOG && dec.RmgrInfo() == 0x40
		if !isSwitch && (rec.EndLSN-1).SegmentNumber(lsn.DefaultSegmentSize) != rec.LSN.SegmentNumber(lsn.DefaultSegmentSize) {
			crossSegment++
		}
		if (rec.EndLSN - 1).PageStart() != rec.LSN.PageStart() {
			multiPage++
		}
		for i := range dec.Blocks {
			b := &dec.Blocks[i]
			if !b.HasImage() {
				continue
			}
			methods[b.Compression()]++
			require.NoError(t, b.RestorePage(page), "record at %s block %d", rec.LSN, b.ID)
			h, err := pgtypes.ParsePageHeader(page)
			require.NoError(t, err)
			if pgtypes.PageIsNew(page) {
				require.Equal(t, make([]byte, pgtypes.BLCKSZ), page, "new page image at %s block %d is not all zero", rec.LSN, b.ID)
				continue
			}
			require.NoError(t, h.Validate(), "image at %s block %d", rec.LSN, b.ID)
			require.LessOrEqual(t, uint64(h.LSN), uint64(rec.LSN), "image at %s block %d has pd_lsn %s", rec.LSN, b.ID, h.LSN)
		}
	})
	t.Logf("%d records, %d span pages, %d cross a segment boundary, images by compression: %v", n, multiPage, crossSegment, methods)
	require.Positive(t, crossSegment, "no record crosses a segment boundary")
	for _, c := range []pgwal.Compression{pgwal.CompressionNone, pgwal.CompressionPGLZ, pgwal.CompressionLZ4, pgwal.CompressionZSTD} {
		require.Positive(t, methods[c], "no image compressed with %s", c)
	}
}

// walBytes returns the WAL from the start of from's segment to the end of the
// last segment file that exists.
func walBytes(t *testing.T, g generatedWAL, from lsn.LSN) (lsn.LSN, []byte) {
	seg := from.SegmentNumber(lsn.DefaultSegmentSize)
	var all []byte
	for s := seg; ; s++ {
		b, err := os.ReadFile(filepath.Join(g.walDir, lsn.WALFileName(1, s, lsn.DefaultSegmentSize)))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		require.NoError(t, err)
		all = append(all, b...)
	}
	return lsn.LSN(seg * lsn.DefaultSegmentSize), all
}

// checkStream feeds the same WAL in random chunks, from several kinds of
// start, and expects exactly the Reader's records.
func checkStream(t *testing.T, g generatedWAL) {
	want := readAll(t, g, g.start, nil)
	require.NotEmpty(t, want)
	base, data := walBytes(t, g, g.start)
	rng := rand.New(rand.NewPCG(3, 3))

	decodeStream := func(d *pgwal.StreamDecoder, from lsn.LSN, maxChunk int) []recordID {
		var got []recordID
		pos := int(from - base)
		for {
			rec, err := d.Next()
			if errors.Is(err, pgwal.ErrNeedMore) {
				if pos >= len(data) {
					return got
				}
				n := min(1+rng.IntN(maxChunk), len(data)-pos)
				d.Feed(data[pos : pos+n])
				pos += n
				continue
			}
			if err != nil {
				require.ErrorIs(t, err, pgwal.ErrEndOfWAL)
				return got
			}
			got = append(got, recordID{rec.LSN, rec.EndLSN, maphash.Bytes(hashSeed, rec.Raw)})
		}
	}
	trim := func(ids []recordID, from lsn.LSN) []recordID {
		for i, id := range ids {
			if id.lsn >= from {
				return ids[i:]
			}
		}
		return nil
	}
	for _, maxChunk := range []int{1 << 20, 9000, 300} {
		t.Run(fmt.Sprintf("page-start/chunks<=%d", maxChunk), func(t *testing.T) {
			from := g.start.PageStart()
			d, err := pgwal.NewStreamDecoder(from)
			require.NoError(t, err)
			got := trim(decodeStream(d, from, maxChunk), g.start)
			require.Equal(t, want, got)
		})
	}
	t.Run("starts-at-record-mid-page", func(t *testing.T) {
		for range 5 {
			i := 1 + rng.IntN(len(want)-1)
			from := want[i].lsn
			d, err := pgwal.NewStreamDecoder(from, pgwal.StartsAtRecord(want[i-1].lsn))
			require.NoError(t, err)
			require.Equal(t, want[i:], decodeStream(d, from, 50000), "from %s", from)
		}
	})
	t.Run("unknown-start-mid-record", func(t *testing.T) {
		for range 5 {
			i := 1 + rng.IntN(len(want)-1)
			from := want[i].lsn + 3 // inside the record
			d, err := pgwal.NewStreamDecoder(from)
			require.NoError(t, err)
			got := decodeStream(d, from, 50000)
			require.NotEmpty(t, got)
			require.Equal(t, trim(want, got[0].lsn), got)
			require.Equal(t, from.PageStart()+pgwal.PageSize, got[0].lsn.PageStart(), "first record is not on the next page")
		}
	})
	t.Run("end-bound", func(t *testing.T) {
		mid := want[len(want)/2]
		r, err := pgwal.NewReader(g.walDir, 1, g.start, mid.end)
		require.NoError(t, err)
		defer func() { require.NoError(t, r.Close()) }()
		var n int
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			require.LessOrEqual(t, rec.EndLSN, mid.end)
			n++
		}
		require.Equal(t, len(want)/2+1, n)
	})
}

var seedKinds = map[string]bool{}

// writeSeed checks in one real record per rmgr, info and image compression
// as a FuzzDecodeRecord seed when STRATA_PGWAL_WRITE_SEEDS is set.
func writeSeed(t *testing.T, dec *pgwal.DecodedRecord) {
	if os.Getenv("STRATA_PGWAL_WRITE_SEEDS") == "" {
		return
	}
	kind := fmt.Sprintf("%s-%02x", dec.RmID, dec.RmgrInfo())
	for i := range dec.Blocks {
		if dec.Blocks[i].HasImage() {
			kind += "-" + dec.Blocks[i].Compression().String()
		}
	}
	compressed := strings.Contains(kind, "pglz") || strings.Contains(kind, "lz4") || strings.Contains(kind, "zstd")
	if seedKinds[kind] || len(dec.Raw) > 4096 || (len(seedKinds) >= 40 && !compressed) {
		return
	}
	seedKinds[kind] = true
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRecord")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(dec.Raw)) + ")\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg15-"+kind), []byte(body), 0o644))
}
