package pool_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/redo"
)

// Fidelity: rebuild every main-fork block of every user relation and index
// of a real PostgreSQL 15 primary from WAL alone, and compare with the data
// files after a clean shutdown, both through the extension's rm_mask.
//
// All relations are created after the start LSN, so every page is born in
// the window (an init record or a full-page image), and each block's chain
// is its last FPI/init record plus every later record touching it.

// maskRmgr maps an access method to the resource manager whose rm_mask
// applies to its pages.
var maskRmgr = map[string]uint8{
	"heap": 10, "btree": 11, "hash": 12, "gin": 13, "gist": 14, "sequence": 15, "spgist": 16, "brin": 17,
}

const fidelitySchema = `
CREATE TABLE t (id int PRIMARY KEY, n int, v text, arr int[], p point, r int4range, doc tsvector);
CREATE INDEX t_n ON t (n);
CREATE INDEX t_v_hash ON t USING hash (v);
CREATE INDEX t_arr_gin ON t USING gin (arr);
CREATE INDEX t_doc_gin ON t USING gin (doc) WITH (fastupdate = on);
CREATE INDEX t_p_gist ON t USING gist (p);
CREATE INDEX t_r_gist ON t USING gist (r);
CREATE INDEX t_p_spgist ON t USING spgist (p);
CREATE INDEX t_v_spgist ON t USING spgist (v);
CREATE INDEX t_id_brin ON t USING brin (id) WITH (pages_per_range = 4);
CREATE SEQUENCE s;
CREATE TABLE big (id int PRIMARY KEY, payload text);
CREATE TABLE m (id int, note text);
`

func fidelityRows(from, to int) string {
	return fmt.Sprintf(`INSERT INTO t SELECT g, g %% 10, md5(g::text), ARRAY[g %% 100, g %% 7, g %% 13], point(g %% 1000, g / 1000),
  int4range(g, g + 10), to_tsvector('simple', 'w' || (g %% 50) || ' x' || (g %% 17)) FROM generate_series(%d, %d) g;
`, from, to)
}

func fidelityWorkload(compressions []string) []string {
	var copyData strings.Builder
	copyData.WriteString("COPY m FROM STDIN;\n")
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&copyData, "%d\tnote %d\n", i, i)
	}
	copyData.WriteString("\\.\n")
	steps := []string{
		fidelityRows(1, 12000) + `
SELECT nextval('s') FROM generate_series(1, 200);
INSERT INTO big SELECT o.id, (SELECT string_agg(md5(random()::text || o.id || x.i), '') FROM generate_series(1, 300) x(i)) FROM generate_series(1, 40) o(id);
` + copyData.String(),
		`UPDATE t SET v = md5(v) WHERE id % 3 = 0;
UPDATE t SET r = int4range(id, id + 20) WHERE id % 5 = 0;
BEGIN; SELECT count(*) FROM (SELECT * FROM t WHERE id < 800 FOR UPDATE) x; COMMIT;
DELETE FROM t WHERE id BETWEEN 3000 AND 6000;
VACUUM t;
UPDATE big SET payload = payload || 'x' WHERE id % 2 = 0;
DELETE FROM big WHERE id % 3 = 0;
VACUUM big;
DELETE FROM m WHERE id % 2 = 0;
`,
		fidelityRows(12001, 18000) + `
UPDATE t SET n = n + 1, arr = arr || 5 WHERE id % 7 = 0;
DELETE FROM t WHERE id % 4 = 0;
VACUUM t;
SELECT nextval('s') FROM generate_series(1, 100);
VACUUM FREEZE t;
VACUUM FREEZE m;
`,
	}
	var out []string
	for i, s := range steps {
		out = append(out, fmt.Sprintf("ALTER SYSTEM SET wal_compression = '%s'; SELECT pg_reload_conf();\nCHECKPOINT;\n%s",
			compressions[i%len(compressions)], s))
	}
	return out
}

type relInfo struct {
	relfilenode pgtypes.Oid
	am          string
	name        string
}

type chain struct {
	// all holds every record since the block's first base (init or FPI);
	// recs is the suffix from its last base, what the pageserver would send.
	all, recs []redo.Record
	broken    bool // touched without a base in the window
}

type amStats struct {
	tried, matched, semantic, exact, splits, history, zeroSkipped, truncated int
}

func TestFidelity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a PostgreSQL primary and rebuilds every block")
	}
	for _, tc := range []struct {
		name      string
		checksums bool
	}{
		{"plain", false},
		{"checksums", true},
	} {
		t.Run(tc.name, func(t *testing.T) { runFidelity(t, tc.checksums) })
	}
}

func runFidelity(t *testing.T, checksums bool) {
	srv := pgtest.Start(t, pgtest.Options{
		Checksums: checksums,
		Conf: map[string]string{
			"full_page_writes": "on",
			"wal_keep_size":    "4GB",
			"max_wal_size":     "4GB",
			"autovacuum":       "off",
		},
	})
	const db = "postgres"
	startLSN := srv.CurrentWALLSN(t)
	srv.Exec(t, db, fidelitySchema)
	for _, step := range fidelityWorkload([]string{"pglz", "lz4", "zstd"}) {
		srv.Exec(t, db, step)
	}
	srv.Checkpoint(t)
	dbOid, err := strconv.ParseUint(srv.Query(t, db, "SELECT oid FROM pg_database WHERE datname = current_database()"), 10, 32)
	require.NoError(t, err)
	rels := map[pgtypes.Oid]relInfo{}
	out := srv.Query(t, db, `SELECT c.relfilenode, CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE a.amname END, c.relname
FROM pg_class c LEFT JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid >= 16384 AND c.relfilenode <> 0 AND c.relkind IN ('r', 'i', 't', 'S', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "|")
		require.Len(t, f, 3, line)
		node, err := strconv.ParseUint(f[0], 10, 32)
		require.NoError(t, err)
		rels[pgtypes.Oid(node)] = relInfo{relfilenode: pgtypes.Oid(node), am: f[1], name: f[2]}
	}
	srv.Stop(t)

	// Collect each main-fork block's chain from the WAL.
	chains := map[pgtypes.BufferTag]*chain{}
	rd, err := pgwal.NewReader(srv.WALDir(), 1, startLSN, lsn.Invalid)
	require.NoError(t, err)
	defer rd.Close()
	var dec pgwal.DecodedRecord
	nrec := 0
	for {
		rec, err := rd.Next()
		if errors.Is(err, pgwal.ErrEndOfWAL) || errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		nrec++
		require.NoError(t, pgwal.DecodeRecord(rec.Raw, &dec))
		var shared *redo.Record
		for i := range dec.Blocks {
			b := &dec.Blocks[i]
			if b.Fork != pgtypes.MainForkNum || b.Rel.DbNode != pgtypes.Oid(dbOid) {
				continue
			}
			if _, ok := rels[b.Rel.RelNode]; !ok {
				continue
			}
			if shared == nil {
				shared = &redo.Record{Start: rec.LSN, End: rec.EndLSN, Raw: bytes.Clone(rec.Raw)}
			}
			tag := b.Tag()
			c := chains[tag]
			if c == nil {
				c = &chain{}
				chains[tag] = c
			}
			switch {
			case b.ApplyImage() || b.WillInit():
				c.recs = append(c.recs[:0:0], *shared)
				c.all = append(c.all, *shared)
				c.broken = false
			case len(c.recs) == 0:
				c.broken = true
			default:
				c.recs = append(c.recs, *shared)
				c.all = append(c.all, *shared)
			}
		}
	}
	t.Logf("read %d WAL records from %s; %d main-fork blocks referenced", nrec, startLSN, len(chains))

	p := newPool(t, pool.Config{WALLogHints: checksums})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tn := tenant(100)
	stats := map[string]*amStats{}
	applied := 0
	kinds := map[string]int{} // rmgr/info → records applied
	full := make([]byte, pgtypes.BLCKSZ)
	mid := make([]byte, pgtypes.BLCKSZ)
	split := make([]byte, pgtypes.BLCKSZ)
	maskA := make([]byte, pgtypes.BLCKSZ)
	maskB := make([]byte, pgtypes.BLCKSZ)
	var mismatches []string

	// Walk the data files, so a block present on disk without a chain fails.
	relNodes := make([]pgtypes.Oid, 0, len(rels))
	for n := range rels {
		relNodes = append(relNodes, n)
	}
	sort.Slice(relNodes, func(i, j int) bool { return relNodes[i] < relNodes[j] })
	for _, node := range relNodes {
		ri := rels[node]
		st := stats[ri.am]
		if st == nil {
			st = &amStats{}
			stats[ri.am] = st
		}
		rmid, ok := maskRmgr[ri.am]
		require.True(t, ok, "no mask rmgr for access method %q", ri.am)
		rtag := pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: pgtypes.Oid(dbOid), RelNode: node}
		fileBlocks := readRelation(t, srv.DataDir, rtag)
		for blk, onDisk := range fileBlocks {
			tag := pgtypes.BufferTag{Rel: rtag, BlockNum: uint32(blk)}
			c := chains[tag]
			if c == nil || len(c.recs) == 0 {
				if isZero(onDisk) {
					st.zeroSkipped++ // extended but never used: no WAL, nothing to rebuild
					continue
				}
				mismatches = append(mismatches, fmt.Sprintf("%s (%s %s): on disk but no base in the WAL window (broken=%v)", tag, ri.am, ri.name, c != nil && c.broken))
				continue
			}
			st.tried++
			req := &redo.Request{Tenant: tn, Tag: tag, Records: c.recs}
			require.NoError(t, p.Apply(ctx, req, full), "rebuilding %s (%s %s)", tag, ri.am, ri.name)
			applied += len(c.recs)
			for _, r := range c.recs {
				kinds[fmt.Sprintf("%s/0x%02X", rmgr.ID(r.Raw[17]), r.Raw[16]&^0x0F)]++
			}
			require.NoError(t, p.Mask(ctx, tn, rmid, tag.BlockNum, full, maskA))
			require.NoError(t, p.Mask(ctx, tn, rmid, tag.BlockNum, onDisk, maskB))
			if bytes.Equal(full, onDisk) {
				st.exact++
			}
			semantic := ""
			switch {
			case ri.am == "spgist" && tag.BlockNum == 0:
				// The metapage's lastUsedPages cache is a hint SP-GiST
				// updates without WAL (SpGistUpdateMetaPage); rm_mask keeps it.
				maskSPGistLastUsedPages(maskA)
				maskSPGistLastUsedPages(maskB)
				semantic = "spgist metapage lastUsedPages (not WAL-logged)"
			case ri.am == "sequence":
				// nextval logs SEQ_LOG_VALS (32) values ahead and changes the
				// page without WAL in between: WAL replay (like crash
				// recovery) yields a last_value up to 32 steps ahead.
				semantic = checkSequence(full, onDisk)
				if semantic != "" {
					copy(maskA, maskB)
				}
			}
			if bytes.Equal(maskA, maskB) {
				st.matched++
				if semantic != "" {
					st.semantic++
					t.Logf("%s (%s %s) matched once %s", tag, ri.am, ri.name, semantic)
				}
			} else {
				var kinds []string
				for _, r := range c.recs[max(0, len(c.recs)-6):] {
					kinds = append(kinds, fmt.Sprintf("%d/0x%02X@%s", r.Raw[17], r.Raw[16], r.Start))
				}
				mismatches = append(mismatches, fmt.Sprintf("%s (%s %s): %d records from %s (last: %s), masked pages differ in %d bytes from byte %d",
					tag, ri.am, ri.name, len(c.recs), c.recs[0].Start, strings.Join(kinds, " "), diffCount(maskA, maskB), firstDiff(maskA, maskB)))
				if d := firstDiff(maskA, maskB); os.Getenv("STRATA_FIDELITY_DEBUG") != "" {
					lo, hi := max(0, d-8), min(pgtypes.BLCKSZ, d+8)
					t.Logf("%s rebuilt % x\n%s on disk % x", tag, maskA[lo:hi], tag, maskB[lo:hi])
					for _, r := range c.recs {
						t.Logf("record %s..%s: % x", r.Start, r.End, r.Raw[:min(len(r.Raw), 120)])
					}
				}
			}
			// The whole history from the first base (earlier FPIs are applied
			// as records too) exercises every record that touched the block.
			if len(c.all) > len(c.recs) {
				require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: tag, Records: c.all}, split), "rebuilding %s from its first base", tag)
				for _, r := range c.all[:len(c.all)-len(c.recs)] {
					kinds[fmt.Sprintf("%s/0x%02X", rmgr.ID(r.Raw[17]), r.Raw[16]&^0x0F)]++
				}
				if bytes.Equal(split, full) {
					st.history++
				} else {
					mismatches = append(mismatches, fmt.Sprintf("%s (%s %s): rebuilding all %d records from the first base differs from the last-base rebuild at byte %d",
						tag, ri.am, ri.name, len(c.all), firstDiff(full, split)))
				}
			}
			if len(c.recs) >= 2 {
				h := len(c.recs) / 2
				require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: tag, Records: c.recs[:h]}, mid))
				require.NoError(t, p.Apply(ctx, &redo.Request{Tenant: tn, Tag: tag, Base: mid, Records: c.recs[h:]}, split))
				if !bytes.Equal(full, split) {
					mismatches = append(mismatches, fmt.Sprintf("%s (%s): split at record %d differs at byte %d", tag, ri.am, h, firstDiff(full, split)))
				} else {
					st.splits++
				}
			}
		}
		// Blocks in the WAL beyond the file's end were truncated away.
		for tag := range chains {
			if tag.Rel == rtag && int(tag.BlockNum) >= len(fileBlocks) {
				st.truncated++
			}
		}
	}
	ams := make([]string, 0, len(stats))
	for am := range stats {
		ams = append(ams, am)
	}
	sort.Strings(ams)
	for _, am := range ams {
		s := stats[am]
		t.Logf("%-8s tried %5d  matched %5d (of which after a documented non-WAL difference %d)  byte-exact %5d  split-checks %5d  full-history-checks %5d  zero pages skipped %d  truncated %d",
			am, s.tried, s.matched, s.semantic, s.exact, s.splits, s.history, s.zeroSkipped, s.truncated)
	}
	t.Logf("%d records applied in full rebuilds", applied)
	kindNames := make([]string, 0, len(kinds))
	for k := range kinds {
		kindNames = append(kindNames, k)
	}
	sort.Strings(kindNames)
	var kb strings.Builder
	for _, k := range kindNames {
		fmt.Fprintf(&kb, " %s=%d", k, kinds[k])
	}
	t.Logf("applied by rmgr/info (last-base and full-history rebuilds):%s", kb.String())
	if len(mismatches) > 0 {
		if len(mismatches) > 40 {
			mismatches = append(mismatches[:40], fmt.Sprintf("... and %d more", len(mismatches)-40))
		}
		t.Fatalf("%d blocks failed:\n%s", len(mismatches), strings.Join(mismatches, "\n"))
	}
}

func readRelation(t *testing.T, dataDir string, rel pgtypes.RelTag) [][]byte {
	var blocks [][]byte
	for seg := uint32(0); ; seg++ {
		data, err := os.ReadFile(filepath.Join(dataDir, rel.SegmentPath(seg)))
		if errors.Is(err, os.ErrNotExist) {
			return blocks
		}
		require.NoError(t, err)
		require.Zero(t, len(data)%pgtypes.BLCKSZ, "%s segment %d", rel, seg)
		for off := 0; off < len(data); off += pgtypes.BLCKSZ {
			blocks = append(blocks, data[off:off+pgtypes.BLCKSZ])
		}
		if len(data) < pgtypes.RelSegSize*pgtypes.BLCKSZ {
			return blocks
		}
	}
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func diffCount(a, b []byte) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func maskSPGistLastUsedPages(page []byte) {
	lower := int(binary.LittleEndian.Uint16(page[12:]))
	if lower > 28 && lower <= pgtypes.BLCKSZ {
		clear(page[28:lower])
	}
}

// checkSequence returns a description when rebuilt is the WAL image of the
// on-disk sequence page: same is_called, last_value at most 32 steps ahead.
// It returns "" when they disagree otherwise.
func checkSequence(rebuilt, onDisk []byte) string {
	read := func(p []byte) (last int64, isCalled byte, ok bool) {
		lp := binary.LittleEndian.Uint32(p[pgtypes.PageHeaderSize:])
		off := int(lp & 0x7fff)
		if off < pgtypes.PageHeaderSize || off+24+17 > len(p) {
			return 0, 0, false
		}
		data := off + int(p[off+22]) // t_hoff
		if data+17 > len(p) {
			return 0, 0, false
		}
		return int64(binary.LittleEndian.Uint64(p[data:])), p[data+16], true
	}
	a, ca, okA := read(rebuilt)
	b, cb, okB := read(onDisk)
	if !okA || !okB || ca != cb || a < b || a-b > 32 {
		return ""
	}
	return fmt.Sprintf("sequence WAL runs ahead: last_value %d in WAL, %d on disk", a, b)
}
