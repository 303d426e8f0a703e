package process_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo/internal/walredotest"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/redo"
)

var tmpl *process.Template

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, cleanup, err := walredotest.Setup(ctx, log)
	if err == nil {
		cfg.RequestTimeout = 20 * time.Second
		tmpl, err = process.PrepareTemplate(ctx, cfg)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "walredo test setup:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func startChild(t *testing.T) *process.Child {
	t.Helper()
	c, err := process.Start(context.Background(), tmpl, process.ChildOptions{Name: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close(5*time.Second)) })
	return c
}

var heapTag = pgtypes.BufferTag{
	Rel:      pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: 5, RelNode: 16384, ForkNum: pgtypes.MainForkNum},
	BlockNum: 3,
}

func TestPing(t *testing.T) {
	c := startChild(t)
	for i := 0; i < 3; i++ {
		require.NoError(t, c.Ping(context.Background()))
	}
	require.True(t, c.Alive())
}

func TestApplyHeapInsertChain(t *testing.T) {
	c := startChild(t)
	ctx := context.Background()
	recs := walredotest.Chain(lsn.MustParse("0/1000000"),
		walredotest.HeapInsert(heapTag, 1, 42, true, 1000),
		walredotest.HeapInsert(heapTag, 2, 43, false, 1000),
		walredotest.HeapInsert(heapTag, 3, 44, false, 1001),
	)
	whole := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, heapTag, nil, recs, whole))
	h, err := pgtypes.ParsePageHeader(whole)
	require.NoError(t, err)
	require.NoError(t, h.Validate())
	require.Equal(t, recs[2].End, h.LSN)
	require.Equal(t, uint16(pgtypes.PageHeaderSize+3*4), h.Lower, "three line pointers")

	// Splitting the history gives the same page.
	for split := 1; split < len(recs); split++ {
		t.Run("split"+strconv.Itoa(split), func(t *testing.T) {
			mid := make([]byte, pgtypes.BLCKSZ)
			require.NoError(t, c.Apply(ctx, heapTag, nil, recs[:split], mid))
			require.Equal(t, recs[split-1].End, pgtypes.PageGetLSN(mid))
			final := make([]byte, pgtypes.BLCKSZ)
			require.NoError(t, c.Apply(ctx, heapTag, mid, recs[split:], final))
			require.Equal(t, whole, final)
		})
	}

	// A base image with zero records comes back unchanged.
	same := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, heapTag, whole, nil, same))
	require.Equal(t, whole, same)

	// Records for other blocks leave the target alone.
	other := heapTag
	other.BlockNum = 4
	otherRecs := walredotest.Chain(recs[2].End, walredotest.HeapInsert(other, 1, 7, true, 1002))
	require.NoError(t, c.Apply(ctx, heapTag, whole, otherRecs, same))
	require.Equal(t, whole, same)
}

func TestErrorRepliesKeepChildServing(t *testing.T) {
	c := startChild(t)
	ctx := context.Background()
	start := lsn.MustParse("0/2000000")
	good := walredotest.HeapInsert(heapTag, 1, 1, true, 1000)

	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	wrongLen := append([]byte(nil), good...)
	wrongLen[0]++ // xl_tot_len disagrees with the bytes sent
	walredotest.FixCRC(wrongLen)
	commit := walredotest.BuildRecord(1 /* Transaction */, 0x00, 1000, nil, make([]byte, 8))
	unknownRmgr := walredotest.BuildRecord(99, 0, 1000, nil, []byte{1})

	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"bad CRC", badCRC, "incorrect CRC"},
		{"length mismatch", wrongLen, "xl_tot_len"},
		{"not page-local", commit, "cannot be applied to a single page"},
		{"unknown rmgr", unknownRmgr, "unknown resource manager"},
	}
	page := make([]byte, pgtypes.BLCKSZ)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs := walredotest.Chain(start, good, tc.raw)
			err := c.Apply(ctx, heapTag, nil, recs, page)
			require.ErrorIs(t, err, redo.ErrRecordFailed)
			var re *redo.RecordError
			require.ErrorAs(t, err, &re)
			require.Equal(t, recs[1].Start, re.LSN, "error names the failing record")
			require.Contains(t, re.Msg, tc.want)
			require.True(t, c.Alive())
			require.NoError(t, c.Ping(ctx))
			// And the next request works on a clean slate.
			require.NoError(t, c.Apply(ctx, heapTag, nil, recs[:1], page))
			require.Equal(t, recs[0].End, pgtypes.PageGetLSN(page))
		})
	}
}

func TestPanicKillsChild(t *testing.T) {
	c := startChild(t)
	ctx := context.Background()
	recs := walredotest.Chain(lsn.MustParse("0/3000000"),
		walredotest.HeapInsert(heapTag, 1, 1, true, 1000),
		// offnum 5 on a page with one item: heap_xlog_insert PANICs.
		walredotest.HeapInsert(heapTag, 5, 2, false, 1000),
	)
	page := make([]byte, pgtypes.BLCKSZ)
	err := c.Apply(ctx, heapTag, nil, recs, page)
	require.ErrorIs(t, err, redo.ErrChildCrashed)
	var re *redo.RecordError
	require.ErrorAs(t, err, &re)
	require.Equal(t, recs[1].Start, re.LSN, "crash names the record from the child's last words: %v", err)
	require.Contains(t, re.Msg, "invalid max offset number")
	require.False(t, c.Alive())
	require.ErrorIs(t, c.Ping(ctx), process.ErrChildGone)
}

func TestDeadlineKillsChild(t *testing.T) {
	c := startChild(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Sleep(ctx, 30*time.Second)
	require.ErrorIs(t, err, redo.ErrTimeout)
	require.Less(t, time.Since(start), 5*time.Second)
	require.False(t, c.Alive())
}

func TestSleepWithinDeadline(t *testing.T) {
	c := startChild(t)
	require.NoError(t, c.Sleep(context.Background(), 20*time.Millisecond))
	require.NoError(t, c.Ping(context.Background()))
}

func TestMask(t *testing.T) {
	c := startChild(t)
	ctx := context.Background()
	recs := walredotest.Chain(lsn.MustParse("0/4000000"), walredotest.HeapInsert(heapTag, 1, 9, true, 1000))
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Apply(ctx, heapTag, nil, recs, page))

	masked := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Mask(ctx, 10 /* Heap */, heapTag.BlockNum, page, masked))
	require.Equal(t, lsn.Invalid, pgtypes.PageGetLSN(masked), "heap_mask clears pd_lsn")
	require.NotEqual(t, page, masked)
	// Masking is idempotent.
	again := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, c.Mask(ctx, 10, heapTag.BlockNum, masked, again))
	require.Equal(t, masked, again)

	t.Run("no mask function", func(t *testing.T) {
		err := c.Mask(ctx, 1 /* Transaction */, 0, page, masked)
		require.ErrorIs(t, err, redo.ErrRecordFailed)
		require.Contains(t, err.Error(), "no mask function")
	})
	t.Run("garbage page", func(t *testing.T) {
		bad := append([]byte(nil), page...)
		bad[14], bad[15] = 0x10, 0x00 // pd_upper < pd_lower
		err := c.Mask(ctx, 10, 0, bad, masked)
		require.ErrorIs(t, err, redo.ErrRecordFailed)
		require.True(t, c.Alive())
	})
}

func TestStaleBuildIDRejected(t *testing.T) {
	if testing.Short() {
		t.Skip("prepares a second template (initdb)")
	}
	ctx := context.Background()
	// Build the same source but stamp another build id, as an old .so would.
	buildDir := t.TempDir()
	out, err := exec.CommandContext(ctx, "make", "-C", "../pgext", "BUILD_DIR="+buildDir, "BUILD_ID=0123456789abcdef").CombinedOutput()
	require.NoError(t, err, "%s", out)
	workDir, err := os.MkdirTemp("", "strata-walredo-stale-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(workDir) })
	require.NoError(t, os.Chmod(workDir, 0o755))
	stale, err := process.PrepareTemplate(ctx, process.Config{
		ExtensionPath: filepath.Join(buildDir, "strata_walredo.so"),
		WorkDir:       workDir,
	})
	require.NoError(t, err)
	_, err = process.Start(ctx, stale, process.ChildOptions{})
	require.ErrorIs(t, err, process.ErrStart)
	require.ErrorIs(t, err, process.ErrStaleExtension)
	require.Contains(t, err.Error(), "0123456789abcdef")
	entries, err := os.ReadDir(filepath.Join(workDir, "children"))
	require.NoError(t, err)
	require.Empty(t, entries, "a failed start leaves no data dir behind")
}
