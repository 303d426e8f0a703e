package walingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/native"
)

func queryUint(t *testing.T, s *pgtest.Server, db, sql string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s.Query(t, db, sql), 10, 64)
	require.NoError(t, err, sql)
	return v
}

func pgbench(t testing.TB, s *pgtest.Server, args ...string) {
	t.Helper()
	all := append([]string{"-h", s.Host, "-p", strconv.Itoa(s.Port), "-U", s.User}, args...)
	out, err := s.Run(context.Background(), "pgbench", all...)
	require.NoError(t, err, "%s", out)
}

// ingestWAL decodes and ingests every record of the cluster's WAL from
// start to the end of valid WAL.
func ingestWAL(t *testing.T, in *Ingester, walDir string, start lsn.LSN) (records int, end lsn.LSN) {
	t.Helper()
	r, err := pgwal.NewReader(walDir, 1, start, lsn.Invalid)
	require.NoError(t, err)
	defer r.Close()
	var dr pgwal.DecodedRecord
	for {
		rec, err := r.Next()
		if errors.Is(err, pgwal.ErrEndOfWAL) {
			return records, end
		}
		require.NoError(t, err)
		require.NoError(t, rec.Decode(&dr))
		require.NoError(t, in.Ingest(context.Background(), &dr))
		records++
		end = rec.EndLSN
	}
}

// TestIngestRealPostgres runs a workload on a real PostgreSQL 15, ingests
// its WAL from a checkpointed base state and compares what the ingest
// derived with what PostgreSQL has at the end.
func TestIngestRealPostgres(t *testing.T) {
	s := pgtest.Start(t, pgtest.Options{Conf: map[string]string{
		"autovacuum":                "off",
		"wal_keep_size":             "4GB",
		"max_wal_size":              "4GB",
		"checkpoint_timeout":        "1h",
		"max_prepared_transactions": "5",
	}})
	ctx := context.Background()

	// Base state: a checkpointed, idle cluster.
	s.Checkpoint(t)
	startNextXid := queryUint(t, s, "postgres", "SELECT txid_snapshot_xmax(txid_current_snapshot())")
	start := s.CurrentWALLSN(t)
	store := NewMemStore()
	base := seedFromDataDir(t, store, s.DataDir, start)

	// Workload.
	pgbench(t, s, "-i", "-s", "1", "postgres")
	pgbench(t, s, "-c", "1", "-t", "300", "postgres")
	s.Exec(t, "postgres", "CREATE DATABASE db_wal STRATEGY WAL_LOG")
	s.Exec(t, "postgres", "CREATE DATABASE db_copy STRATEGY FILE_COPY")
	s.Exec(t, "db_copy", "CREATE TABLE c(id int primary key, t text); INSERT INTO c SELECT g, repeat('x', g % 50) FROM generate_series(1, 2000) g")
	s.Exec(t, "db_wal", "CREATE TABLE w(id int primary key); INSERT INTO w SELECT generate_series(1, 500)")
	s.Exec(t, "postgres", "CREATE DATABASE db_gone STRATEGY FILE_COPY")
	s.Exec(t, "postgres", "CREATE DATABASE db_gone2 STRATEGY WAL_LOG")
	s.Exec(t, "postgres", "DROP DATABASE db_gone")
	s.Exec(t, "postgres", "DROP DATABASE db_gone2")
	s.Exec(t, "postgres", `
		CREATE TABLE trunc(id int, pad text);
		INSERT INTO trunc SELECT g, repeat('p', 200) FROM generate_series(1, 20000) g;
		TRUNCATE trunc;
		INSERT INTO trunc SELECT g, repeat('p', 200) FROM generate_series(1, 20000) g;
		VACUUM trunc;
		DELETE FROM trunc WHERE id > 300;
		VACUUM trunc;
		CREATE UNLOGGED TABLE unlogged(id int primary key);
		INSERT INTO unlogged SELECT generate_series(1, 100);
		CREATE TABLE sub(i int);
		BEGIN; CREATE TABLE rolled_back(i int); INSERT INTO rolled_back VALUES (1); ROLLBACK;
		DROP TABLE pgbench_history;
	`)
	// Subtransactions: > 64 with xids (ASSIGNMENT records), some aborted.
	s.Exec(t, "postgres", `DO $$ BEGIN
		FOR i IN 1..200 LOOP
			BEGIN
				INSERT INTO sub VALUES (i);
				IF i % 10 = 0 THEN RAISE EXCEPTION 'abort %', i; END IF;
			EXCEPTION WHEN raise_exception THEN NULL;
			END;
		END LOOP; END $$`)
	s.Exec(t, "postgres", `BEGIN; INSERT INTO sub VALUES (-1); SAVEPOINT a; INSERT INTO sub VALUES (-2); ROLLBACK`)
	// Two-phase commit: one committed, one rolled back, one left prepared.
	s.Exec(t, "postgres", `BEGIN; INSERT INTO sub VALUES (1001); SAVEPOINT a; INSERT INTO sub VALUES (1002); PREPARE TRANSACTION 'p1'`)
	s.Exec(t, "postgres", `COMMIT PREPARED 'p1'`)
	s.Exec(t, "postgres", `BEGIN; CREATE TABLE tp_gone(i int); INSERT INTO sub VALUES (1003); PREPARE TRANSACTION 'p2'`)
	s.Exec(t, "postgres", `ROLLBACK PREPARED 'p2'`)
	s.Exec(t, "postgres", `BEGIN; INSERT INTO sub VALUES (1004); PREPARE TRANSACTION 'p3'`)

	// MultiXacts: one session share-locks every row, another key-share
	// locks each row in its own subtransaction, so every row gets its own
	// two-member multi (1000 multis, 2000 members: two members pages).
	s.Exec(t, "postgres", "CREATE TABLE mx(id int primary key, v int); INSERT INTO mx SELECT g, g FROM generate_series(1, 1000) g")
	c1, err := pgx.Connect(ctx, s.ConnString("postgres"))
	require.NoError(t, err)
	defer c1.Close(ctx)
	c2, err := pgx.Connect(ctx, s.ConnString("postgres"))
	require.NoError(t, err)
	defer c2.Close(ctx)
	_, err = c1.Exec(ctx, "BEGIN; SELECT * FROM mx FOR SHARE")
	require.NoError(t, err)
	_, err = c2.Exec(ctx, `BEGIN; DO $$ BEGIN FOR k IN 1..1000 LOOP
		BEGIN PERFORM 1 FROM mx WHERE id = k FOR KEY SHARE; EXCEPTION WHEN others THEN NULL; END;
		END LOOP; END $$`)
	require.NoError(t, err)
	_, err = c1.Exec(ctx, "COMMIT")
	require.NoError(t, err)
	_, err = c2.Exec(ctx, "COMMIT")
	require.NoError(t, err)
	s.Exec(t, "postgres", "UPDATE mx SET v = v + 1 WHERE id % 7 = 0")
	s.Exec(t, "postgres", "VACUUM; UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 1000 = 0")
	s.Checkpoint(t)

	// What PostgreSQL says at the end.
	endNextXid := queryUint(t, s, "postgres", "SELECT txid_snapshot_xmax(txid_current_snapshot())")
	xactStatus := map[uint32]string{}
	for _, line := range strings.Split(s.Query(t, "postgres", fmt.Sprintf(
		"SELECT x || ' ' || pg_xact_status(x::text::xid8) FROM generate_series(%d, %d) x", startNextXid, endNextXid-1)), "\n") {
		f := strings.Fields(line)
		require.GreaterOrEqual(t, len(f), 2, line)
		x, _ := strconv.ParseUint(f[0], 10, 32)
		xactStatus[uint32(x)] = strings.Join(f[1:], " ")
	}
	prepared := s.Query(t, "postgres", "SELECT transaction FROM pg_prepared_xacts")
	type relInfo struct {
		persistence string
		sizes       [4]uint32
	}
	pgRels := map[pgtypes.RelFileNode]relInfo{}
	pgDbs := map[DbDirEntry]bool{{SpcNode: globalTablespace, DbNode: 0}: true}
	for _, line := range strings.Split(s.Query(t, "postgres", "SELECT datname || ' ' || oid || ' ' || dattablespace || ' ' || datallowconn FROM pg_database"), "\n") {
		f := strings.Fields(line)
		oid, _ := strconv.ParseUint(f[1], 10, 32)
		spc, _ := strconv.ParseUint(f[2], 10, 32)
		pgDbs[DbDirEntry{SpcNode: pgtypes.Oid(spc), DbNode: pgtypes.Oid(oid)}] = true
		if f[3] != "true" {
			continue // template0: not connectable, untouched since the base state
		}
		out := s.Query(t, f[0], `SELECT concat_ws(' ',
			CASE WHEN c.relisshared THEN 1664 WHEN c.reltablespace = 0 THEN d.dattablespace ELSE c.reltablespace END,
			CASE WHEN c.relisshared THEN 0 ELSE d.oid END,
			pg_relation_filenode(c.oid), c.relpersistence,
			pg_relation_size(c.oid, 'main') / 8192, pg_relation_size(c.oid, 'fsm') / 8192,
			pg_relation_size(c.oid, 'vm') / 8192, pg_relation_size(c.oid, 'init') / 8192)
			FROM pg_class c, pg_database d
			WHERE d.datname = current_database() AND pg_relation_filenode(c.oid) IS NOT NULL AND c.relpersistence <> 't'`)
		for _, l := range strings.Split(out, "\n") {
			g := strings.Fields(l)
			require.Len(t, g, 8, l)
			var n [7]uint64
			for i, j := range []int{0, 1, 2, 4, 5, 6, 7} {
				n[i], _ = strconv.ParseUint(g[j], 10, 32)
			}
			node := pgtypes.RelFileNode{SpcNode: pgtypes.Oid(n[0]), DbNode: pgtypes.Oid(n[1]), RelNode: pgtypes.Oid(n[2])}
			pgRels[node] = relInfo{persistence: g[3], sizes: [4]uint32{uint32(n[3]), uint32(n[4]), uint32(n[5]), uint32(n[6])}}
		}
	}
	s.Stop(t)

	// Ingest everything from the base state to the end of WAL.
	in, err := New(ctx, store, store, nil)
	require.NoError(t, err)
	records, end := ingestWAL(t, in, s.WALDir(), start)
	st := in.Stats()
	keys, bytes := store.Size()
	t.Logf("ingested %d records, %s..%s (%d bytes of WAL): %+v; store: %d keys, %d bytes", records, start, end, uint64(end-start), st, keys, bytes)
	require.Positive(t, st.CopiedBlocks, "FILE_COPY copied nothing")

	// (d) The database directory equals pg_database (+ the shared catalogs).
	b, err := store.Latest(ctx, keyspace.DbDir())
	require.NoError(t, err)
	dbDir, err := DecodeDbDir(b)
	require.NoError(t, err)
	gotDbs := map[DbDirEntry]bool{}
	for db := range dbDir {
		gotDbs[db] = true
	}
	require.Equal(t, pgDbs, gotDbs, "database directory")
	for db, hasRelmap := range dbDir {
		require.True(t, hasRelmap, "database %v without relmapper file", db)
	}

	// (a) Relation sizes per fork, and the relation directories.
	relSize := func(rel pgtypes.RelTag) (uint32, bool) {
		b, err := store.Latest(ctx, keyspace.RelDir(rel.SpcNode, rel.DbNode))
		require.NoError(t, err)
		dir, err := DecodeRelDir(b)
		require.NoError(t, err)
		if _, ok := dir[RelDirEntry{RelNode: rel.RelNode, Fork: rel.ForkNum}]; !ok {
			return 0, false
		}
		b, err = store.Latest(ctx, keyspace.RelSize(rel))
		require.NoError(t, err, rel)
		n, err := DecodeRelSize(b)
		require.NoError(t, err)
		return n, true
	}
	var created, checkedForks, fsmDiffs, vmShorter int
	for node, info := range pgRels {
		if _, ok := base.rels[node.Tag(pgtypes.MainForkNum)]; !ok {
			created++
		}
		forks := []pgtypes.ForkNumber{pgtypes.MainForkNum, pgtypes.VisibilityMapForkNum, pgtypes.FSMForkNum}
		if info.persistence == "u" {
			forks = []pgtypes.ForkNumber{pgtypes.InitForkNum} // other forks are not WAL-logged
		}
		for _, fork := range forks {
			got, exists := relSize(node.Tag(fork))
			want := info.sizes[fork]
			if fork == pgtypes.FSMForkNum {
				// The FSM is not WAL-logged (only its truncation is): PostgreSQL
				// extends it without WAL, so only count differences.
				if got != want {
					fsmDiffs++
				}
				continue
			}
			if fork == pgtypes.VisibilityMapForkNum && got != want {
				// VACUUM's visibilitymap_pin extends the VM with zero pages
				// without WAL; a shorter VM reads as "nothing all-visible",
				// which is what those zero pages say.
				require.Less(t, got, want, "size of %s fork %d", node, fork)
				vmShorter++
				continue
			}
			if fork == pgtypes.MainForkNum || fork == pgtypes.InitForkNum {
				require.True(t, exists, "%s fork %d missing from the relation directory", node, fork)
			}
			require.Equal(t, want, got, "size of %s fork %d", node, fork)
			checkedForks++
		}
	}
	// Every relation of a connectable database in the directories is one
	// PostgreSQL has (dropped relations and databases are gone).
	for db := range dbDir {
		if db.DbNode == 0 || db.DbNode == 4 { // shared catalogs: seen through every db; template0
			continue
		}
		b, err := store.Latest(ctx, keyspace.RelDir(db.SpcNode, db.DbNode))
		require.NoError(t, err)
		dir, err := DecodeRelDir(b)
		require.NoError(t, err)
		for e := range dir {
			node := pgtypes.RelFileNode{SpcNode: db.SpcNode, DbNode: db.DbNode, RelNode: e.RelNode}
			_, ok := pgRels[node]
			require.True(t, ok, "relation %s fork %d in the directory but not in pg_class", node, e.Fork)
		}
	}
	t.Logf("relations: %d in pg_class, %d created after the start LSN, %d forks equal, %d VM forks shorter (extended without WAL), %d FSM size differences (not WAL-logged)",
		len(pgRels), created, checkedForks, vmShorter, fsmDiffs)

	// (b) CLOG status of every xid assigned after the start.
	counts := map[string]int{}
	for xid, want := range xactStatus {
		page, err := store.Materialize(slruKey(keyspace.SlruClog, native.ClogPage(xid)), end)
		require.NoError(t, err)
		inPage := xid % native.ClogXactsPerPage
		status := page[inPage/4] >> ((inPage % 4) * 2) & 3
		got := map[byte]string{0: "in progress", 1: "committed", 2: "aborted"}[status]
		require.Equal(t, want, got, "xid %d", xid)
		counts[got]++
	}
	t.Logf("xids %d..%d: %v", startNextXid, endNextXid-1, counts)

	// (b, e) Every SLRU page equals PostgreSQL's file after the clean stop.
	for kind := keyspace.SlruClog; kind <= keyspace.SlruMultiXactOffsets; kind++ {
		b, err := store.Latest(ctx, keyspace.SlruDir(kind))
		require.NoError(t, err)
		segs, err := DecodeSlruDir(b)
		require.NoError(t, err)
		files, err := os.ReadDir(filepath.Join(s.DataDir, kind.Dir()))
		require.NoError(t, err)
		require.Len(t, segs, len(files), kind.Dir())
		pages := 0
		for seg := range segs {
			file, err := os.ReadFile(filepath.Join(s.DataDir, kind.Dir(), fmt.Sprintf("%04X", seg)))
			require.NoError(t, err)
			b, err := store.Latest(ctx, keyspace.SlruSegmentSize(kind, seg))
			require.NoError(t, err)
			n, err := DecodeRelSize(b)
			require.NoError(t, err)
			require.Equal(t, len(file)/pgtypes.BLCKSZ, int(n), "%s/%04X size", kind.Dir(), seg)
			for blk := range n {
				page, err := store.Materialize(keyspace.SlruBlock(kind, seg, blk), end)
				require.NoError(t, err)
				require.Equal(t, file[int(blk)*pgtypes.BLCKSZ:int(blk+1)*pgtypes.BLCKSZ], page, "%s/%04X page %d", kind.Dir(), seg, blk)
				pages++
			}
		}
		t.Logf("%s: %d segments, %d pages equal to PostgreSQL's", kind.Dir(), len(segs), pages)
	}

	// (c) The twophase directory holds exactly the transaction left
	// prepared, and its state file equals pg_twophase/<xid>.
	b, err = store.Latest(ctx, keyspace.TwoPhaseDir())
	require.NoError(t, err)
	tp, err := DecodeTwoPhaseDir(b)
	require.NoError(t, err)
	want, err := strconv.ParseUint(prepared, 10, 32)
	require.NoError(t, err)
	require.Equal(t, map[uint32]struct{}{uint32(want): {}}, tp)
	file, err := os.ReadFile(filepath.Join(s.DataDir, "pg_twophase", fmt.Sprintf("%08X", want)))
	require.NoError(t, err)
	got, err := store.Latest(ctx, keyspace.TwoPhaseFile(want))
	require.NoError(t, err)
	require.Equal(t, file, got, "twophase state file")

	// The checkpoint counters equal pg_control's after the shutdown
	// checkpoint (redo follows Neon's convention instead).
	control, err := os.ReadFile(filepath.Join(s.DataDir, "global", "pg_control"))
	require.NoError(t, err)
	pgCp, err := rmgr.DecodeCheckPoint(control[40:128])
	require.NoError(t, err)
	gotCp := in.CheckPoint()
	require.Equal(t, end, gotCp.Redo)
	gotCp.Redo = pgCp.Redo
	// A shutdown checkpoint has no oldestActiveXid; the ingest fills in the
	// oldest prepared xact (Neon's rule, for hot standbys).
	require.Zero(t, pgCp.OldestActiveXid)
	require.Equal(t, uint32(want), gotCp.OldestActiveXid)
	gotCp.OldestActiveXid = 0
	require.Equal(t, pgCp, gotCp)
	b, err = store.Latest(ctx, keyspace.Checkpoint())
	require.NoError(t, err)
	require.Equal(t, in.CheckPoint().Encode(), b)
}
