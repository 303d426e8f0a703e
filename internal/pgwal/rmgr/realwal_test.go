package rmgr

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
)

// workloadSQL makes PostgreSQL 15 write every record type the ingest needs
// (and a few it only has to recognize).
const workloadSQL = `
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 2000) g;
VACUUM (FREEZE) t;
UPDATE t SET v = 'updated' WHERE id = 1;
UPDATE t SET id = 100000 WHERE id = 2;
DELETE FROM t WHERE id = 3;
SELECT * FROM t WHERE id = 500 FOR UPDATE;
INSERT INTO t VALUES (5000, 'after freeze');
BEGIN;
SELECT * FROM t WHERE id = 10 FOR SHARE;
SAVEPOINT a;
SELECT * FROM t WHERE id = 10 FOR UPDATE;
COMMIT;
BEGIN;
SELECT * FROM t WHERE id = 11 FOR KEY SHARE;
SAVEPOINT a;
UPDATE t SET v = 'multi' WHERE id = 11;
COMMIT;
BEGIN;
INSERT INTO t VALUES (6000, 'aborted');
ROLLBACK;
CREATE TABLE sub (i int);
DO $$
BEGIN
  FOR i IN 1..70 LOOP
    BEGIN
      INSERT INTO sub VALUES (i);
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
  END LOOP;
END $$;
BEGIN;
INSERT INTO sub VALUES (1000);
PREPARE TRANSACTION 'gid_commit';
COMMIT PREPARED 'gid_commit';
BEGIN;
CREATE TABLE prep_rel (i int);
SAVEPOINT s1;
INSERT INTO prep_rel VALUES (1);
PREPARE TRANSACTION 'gid_abort';
ROLLBACK PREPARED 'gid_abort';
CREATE TABLE c (i int);
COPY c FROM PROGRAM 'seq 1 3000';
BEGIN;
CREATE TABLE cf (i int);
COPY cf FROM PROGRAM 'seq 1 3000' WITH (FREEZE);
COMMIT;
DELETE FROM c WHERE i > 10;
VACUUM c;
TRUNCATE c;
DROP TABLE cf;
CREATE DATABASE db_wal_log;
CREATE DATABASE db_file_copy STRATEGY FILE_COPY;
DROP DATABASE db_file_copy;
VACUUM FULL pg_class;
SELECT pg_logical_emit_message(true, 'test-prefix', 'hello');
SELECT pg_logical_emit_message(false, 'neon-file:pg_logical/x', '\x00ff'::bytea);
SELECT pg_create_restore_point('rp1');
CHECKPOINT;
SELECT pg_switch_wal();
ALTER SYSTEM SET max_prepared_transactions = 6;
`

var waldumpLine = regexp.MustCompile(`^rmgr: (\S+)\s+len \(rec/tot\):\s+\d+/\s*\d+, tx:\s+(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: (.*)$`)

// TestRealWAL generates WAL on a real PostgreSQL 15, decodes every record's
// main data and compares the description with pg_waldump's desc text.
func TestRealWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	for _, level := range []string{"replica", "logical"} {
		t.Run(level, func(t *testing.T) {
			srv := pgtest.Start(t, pgtest.Options{
				WALLevel:  level,
				Checksums: true,
				Conf: map[string]string{
					"max_prepared_transactions": "5",
					"track_commit_timestamp":    "on",
					"wal_keep_size":             "1GB",
				},
			})
			srv.Exec(t, "postgres", workloadSQL)
			srv.Restart(t) // shutdown checkpoint, PARAMETER_CHANGE
			srv.Exec(t, "postgres", "CREATE TABLE after_restart (i int); INSERT INTO after_restart VALUES (1);")
			srv.Stop(t)

			if d := os.Getenv("RMGR_KEEP_WAL"); d != "" {
				require.NoError(t, exec.Command("cp", "-r", srv.WALDir(), filepath.Join(d, level)).Run())
			}
			recs, err := readWALDir(srv.WALDir())
			require.NoError(t, err)
			require.Greater(t, len(recs), 1000)
			descs, stderr := runWaldump(t, srv.BinDir, srv.WALDir(), recs)
			checkAgainstWaldump(t, recs, descs, stderr)
		})
	}
}

type waldumpRecord struct {
	rmgr, desc string
}

func runWaldump(t *testing.T, binDir, walDir string, recs []walRecord) (map[lsn.LSN]waldumpRecord, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_waldump"), "-p", walDir,
		"-s", recs[0].LSN.String())
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // pg_waldump exits 1 at the end of valid WAL; the lines are what matters
	out := map[lsn.LSN]waldumpRecord{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		m := waldumpLine.FindStringSubmatch(sc.Text())
		if m == nil {
			if strings.HasPrefix(sc.Text(), "rmgr: ") {
				t.Errorf("unparsed pg_waldump line: %s", sc.Text())
			}
			continue
		}
		desc, _, _ := strings.Cut(m[4], ", blkref #")
		at, err := lsn.Parse(m[3])
		require.NoError(t, err)
		out[at] = waldumpRecord{rmgr: m[1], desc: strings.TrimRight(desc, " ")}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out, "pg_waldump printed nothing: %s", stderr.String())
	return out, stderr.String()
}

func checkAgainstWaldump(t *testing.T, recs []walRecord, dump map[lsn.LSN]waldumpRecord, stderr string) {
	t.Helper()
	seen := map[string]int{}
	mismatches := 0
	for _, r := range recs {
		w, ok := dump[r.LSN]
		require.True(t, ok, "pg_waldump has no record at %s (%s)\npg_waldump stderr: %s", r.LSN, r.Rmid, stderr)
		require.Equal(t, w.rmgr, r.Rmid.String(), "rmgr at %s", r.LSN)
		body, err := Decode(r.Rmid, r.Info, r.MainData)
		require.NoError(t, err, "record at %s: %s", r.LSN, w.desc)
		require.Equal(t, r.Rmid, body.Rmgr())
		name := body.RecordName()
		seen[r.Rmid.String()+"/"+name]++
		if _, generic := body.(*GenericBody); generic {
			// Only the record name can be compared.
			require.True(t, w.desc == name || strings.HasPrefix(w.desc, name+" "),
				"record at %s: name %q, pg_waldump desc %q", r.LSN, name, w.desc)
			continue
		}
		if got := Describe(body); got != w.desc {
			mismatches++
			if mismatches <= 20 {
				t.Errorf("record at %s (%s):\n ours:       %q\n pg_waldump: %q", r.LSN, r.Rmid, got, w.desc)
			}
		}
	}
	require.Zero(t, mismatches, "descriptions that differ from pg_waldump")
	for _, want := range []string{
		"XLOG/CHECKPOINT_ONLINE", "XLOG/CHECKPOINT_SHUTDOWN", "XLOG/NEXTOID", "XLOG/FPI", "XLOG/FPI_FOR_HINT",
		"XLOG/SWITCH", "XLOG/PARAMETER_CHANGE", "XLOG/RESTORE_POINT",
		"Storage/CREATE", "Storage/TRUNCATE",
		"Database/CREATE_FILE_COPY", "Database/CREATE_WAL_LOG", "Database/DROP",
		"Transaction/COMMIT", "Transaction/ABORT", "Transaction/PREPARE", "Transaction/COMMIT_PREPARED",
		"Transaction/ABORT_PREPARED", "Transaction/ASSIGNMENT",
		"MultiXact/ZERO_MEM_PAGE", "MultiXact/CREATE_ID",
		"RelMap/UPDATE", "Standby/RUNNING_XACTS", "Standby/LOCK", "LogicalMessage/MESSAGE",
		"Heap/INSERT", "Heap/INSERT+INIT", "Heap/DELETE", "Heap/UPDATE", "Heap/HOT_UPDATE", "Heap/LOCK",
		"Heap2/MULTI_INSERT", "Heap2/MULTI_INSERT+INIT", "Heap2/VISIBLE",
	} {
		require.Positive(t, seen[want], "workload produced no %s record (saw %v)", want, seen)
	}
	checkSemantics(t, recs)
	if path := os.Getenv("RMGR_WRITE_VECTORS"); path != "" {
		writeVectors(t, path, recs, dump)
	}
	t.Logf("checked %d records: %v", len(recs), seen)
}

// checkSemantics checks fields the workload determines, beyond what
// pg_waldump's text shows.
func checkSemantics(t *testing.T, recs []walRecord) {
	t.Helper()
	var (
		prepared                                   = map[string]uint32{}
		bigCommit, assignment, commitPrepared      bool
		abortPrepared, vmInsert, vmLock, freezeSet bool
		neonMsg, createID                          bool
	)
	for _, r := range recs {
		body, err := Decode(r.Rmid, r.Info, r.MainData)
		require.NoError(t, err)
		switch b := body.(type) {
		case *Checkpoint:
			again, err := DecodeCheckPoint(b.Encode())
			require.NoError(t, err)
			require.Equal(t, b.CheckPoint, again, "checkpoint at %s survives Encode", r.LSN)
			if b.Shutdown {
				require.Equal(t, r.LSN, b.Redo, "a shutdown checkpoint's redo is its own LSN")
			}
		case *XactCommit:
			if len(b.Subxacts) >= 64 {
				bigCommit = true
				require.Len(t, b.Xids(r.Xid), len(b.Subxacts)+1)
				require.Equal(t, r.Xid, b.Xids(r.Xid)[0])
			}
			if b.Prepared {
				require.Zero(t, r.Xid, "COMMIT_PREPARED carries xl_xid 0")
				require.Equal(t, prepared["gid_commit"], b.Xid(r.Xid))
				commitPrepared = true
			}
		case *XactAbort:
			if b.Prepared {
				require.Equal(t, prepared["gid_abort"], b.Xid(r.Xid))
				require.Len(t, b.Subxacts, 1)
				require.Len(t, b.Rels, 1, "the aborted CREATE TABLE's file is unlinked")
				abortPrepared = true
			}
		case *XactPrepare:
			require.Equal(t, r.Xid, b.Xid)
			require.Equal(t, uint32(len(r.MainData)+4), b.TotalLen, "state file = main data + CRC")
			prepared[b.GID] = b.Xid
		case *XactAssignment:
			// PGPROC_MAX_CACHED_SUBXIDS at replica; logical assigns earlier.
			require.NotEmpty(t, b.Subxacts)
			require.LessOrEqual(t, len(b.Subxacts), 64)
			assignment = true
		case *MultiXactCreate:
			require.Len(t, b.Members, 2)
			createID = true
		case *LogicalMsg:
			if b.Prefix == "neon-file:pg_logical/x" {
				require.False(t, b.Transactional)
				require.Equal(t, []byte{0x00, 0xff}, b.Message)
				neonMsg = true
			}
		case *RelMapUpdate:
			require.Len(t, b.Data, RelMapFileSize)
		case *HeapInsert:
			if nb, _ := b.VMClear(); nb == VMValidBits {
				vmInsert = true
			}
		case *HeapLock:
			if nb, _ := b.VMClear(); nb == VMAllFrozen {
				vmLock = true
			}
		case *HeapMultiInsert:
			if b.VMSet() != 0 {
				freezeSet = true
			}
			if !b.InitPage {
				require.Len(t, b.Offsets, int(b.NTuples))
			}
		}
	}
	require.True(t, bigCommit, "a COMMIT with >= 64 subxacts")
	require.True(t, assignment, "an ASSIGNMENT")
	require.True(t, commitPrepared, "a COMMIT_PREPARED")
	require.True(t, abortPrepared, "an ABORT_PREPARED")
	require.True(t, vmInsert, "an INSERT that clears the VM")
	require.True(t, vmLock, "a LOCK that clears ALL_FROZEN")
	require.True(t, freezeSet, "a COPY FREEZE MULTI_INSERT")
	require.True(t, neonMsg, "the neon-file logical message")
	require.True(t, createID, "a CREATE_ID")
}

// writeVectors saves a few real records of every kind, with pg_waldump's
// description, as the PostgreSQL-free test vectors in testdata/ (regenerate
// with RMGR_WRITE_VECTORS=testdata/pg15_records.tsv go test -run
// TestRealWAL/replica; then once more for logical with a second file).
func writeVectors(t *testing.T, path string, recs []walRecord, dump map[lsn.LSN]waldumpRecord) {
	t.Helper()
	// Keep the first record of every description shape (the set of words
	// in it), so that e.g. a COMMIT with subxacts and one with rels are both
	// kept, plus the first record of each main data length.
	word := regexp.MustCompile(`[A-Za-z_()]{3,}`)
	shapeOf := func(desc string) string {
		ws := word.FindAllString(desc, -1)
		sort.Strings(ws)
		return strings.Join(slices.Compact(ws), " ")
	}
	perKind := map[string]int{}
	shapes := map[string]bool{}
	var out strings.Builder
	out.WriteString("# rmid\tinfo\tlsn\tmain data (hex)\tpg_waldump desc (PostgreSQL 15.20, TZ=UTC)\n")
	for _, r := range recs {
		kind := r.Rmid.String() + "/" + RecordName(r.Rmid, r.Info)
		shape := kind + "|" + shapeOf(dump[r.LSN].desc)
		size := kind + "|" + strconv.Itoa(len(r.MainData))
		newShape := !shapes[shape] && perKind[kind] < 30
		newSize := !shapes[size] && perKind[kind] < 4
		if !(newShape || newSize) || len(r.MainData) > 2048 {
			continue
		}
		shapes[shape], shapes[size] = true, true
		perKind[kind]++
		fmt.Fprintf(&out, "%d\t%02X\t%s\t%s\t%s\n", r.Rmid, r.Info, r.LSN, hex.EncodeToString(r.MainData), dump[r.LSN].desc)
	}
	require.NoError(t, os.WriteFile(path, []byte(out.String()), 0o644))
}
