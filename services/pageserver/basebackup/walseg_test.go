package basebackup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtest"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

func TestCheckpointLocation(t *testing.T) {
	const seg = 16 << 20
	tests := []struct {
		backup, want string
		segSize      uint64
	}{
		{"0/1A2B3C0", "0/2000028", seg},
		{"0/1FFFFFF", "0/2000028", seg},
		{"0/2000000", "0/3000028", seg}, // a boundary is not after itself
		{"0/0", "0/1000028", seg},
		{"0/FFFFFFFF", "1/28", seg},
		{"5/12345678", "5/14000028", 64 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.backup, func(t *testing.T) {
			got := CheckpointLocation(lsn.MustParse(tc.backup), tc.segSize)
			require.Equal(t, lsn.MustParse(tc.want), got)
			require.Greater(t, got, lsn.MustParse(tc.backup))
		})
	}
}

// writeTestSegment writes the synthesized segment for a checkpoint at
// 0/3000028 into a fresh directory and returns the directory, the
// checkpoint and the file name.
func writeTestSegment(t *testing.T) (string, rmgr.CheckPoint, string) {
	t.Helper()
	at := lsn.MustParse("0/3000028")
	cp, err := ShutdownCheckpoint(testCheckPoint(), at, time.Unix(1800000000, 0))
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, WriteWALSegment(context.Background(), &buf, testSystemID, 16<<20, cp, at))
	require.Equal(t, 16<<20, buf.Len())
	name := WALFileName(cp.ThisTimeLineID, at, 16<<20)
	require.Equal(t, "000000010000000000000003", name)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644))
	return dir, cp, name
}

func TestWALSegmentDecodes(t *testing.T) {
	dir, cp, _ := writeTestSegment(t)
	at := cp.Redo
	r, err := pgwal.NewReader(dir, 1, at.SegmentStart(16<<20), 0, pgwal.WithSystemID(testSystemID))
	require.NoError(t, err)
	defer r.Close()
	rec, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, at, rec.LSN)
	require.Equal(t, rmgr.XLOG, rec.RmID())
	require.Equal(t, uint32(114), rec.TotalLen())
	require.Equal(t, lsn.Invalid, rec.Prev())
	var dec pgwal.DecodedRecord
	require.NoError(t, rec.Decode(&dec))
	body, err := rmgr.Decode(rmgr.XLOG, dec.Info, dec.MainData)
	require.NoError(t, err)
	require.Equal(t, &rmgr.Checkpoint{Shutdown: true, CheckPoint: cp}, body)
	_, err = r.Next()
	require.ErrorIs(t, err, pgwal.ErrEndOfWAL, "the WAL must end right after the checkpoint")
}

func TestWALSegmentBadLocation(t *testing.T) {
	_, err := WALSegmentFirstPage(testSystemID, 16<<20, testCheckPoint(), lsn.MustParse("0/3000030"))
	require.ErrorIs(t, err, ErrInvalidCheckpoint)
}

func TestWALSegmentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cp, err := ShutdownCheckpoint(testCheckPoint(), lsn.MustParse("0/3000028"), time.Unix(0, 0))
	require.NoError(t, err)
	var buf bytes.Buffer
	err = WriteWALSegment(ctx, &buf, testSystemID, 16<<20, cp, cp.Redo)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, buf.Len(), 16<<20)
}

// TestWALSegmentPgWaldump has PostgreSQL's own reader decode the segment.
func TestWALSegmentPgWaldump(t *testing.T) {
	bin, err := pgtest.BinDir()
	require.NoError(t, err)
	dir, _, name := writeTestSegment(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "pg_waldump"), "-p", dir, name).CombinedOutput()
	// pg_waldump exits 1 when it reaches the end of valid WAL inside the file.
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("pg_waldump: %v\n%s", err, out)
	}
	text := string(out)
	require.Contains(t, text, "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/03000028, prev 0/00000000, desc: CHECKPOINT_SHUTDOWN redo 0/3000028; tli 1; prev tli 1; fpw true; xid 0:40550; oid 24576; multi 3416; offset 6831; oldest xid 716 in DB 1; oldest multi 1 in DB 1; oldest/newest commit timestamp xid: 0/0; oldest running xid 0; shutdown", text)
	require.Contains(t, text, "invalid record length at 0/30000A0: wanted 24, got 0", text)
}

func BenchmarkEncodeCheckpointRecord(b *testing.B) {
	cp := testCheckPoint()
	b.ReportAllocs()
	for b.Loop() {
		_ = EncodeCheckpointRecord(cp)
	}
}
