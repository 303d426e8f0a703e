package timeline

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/logging"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/value"
)

// The crash test re-executes the test binary as a child that ingests a
// deterministic stream of records (flushing layers as it goes) until it is
// killed with SIGKILL. The parent then opens the timeline from disk and
// checks every key at every LSN up to the recovered disk_consistent_lsn
// against the model, and that nothing newer is visible.

const crashChildEnv = "STRATA_TIMELINE_CRASH_CHILD"

// crashGCEnv makes the child compact and garbage-collect while it ingests.
const crashGCEnv = "STRATA_TIMELINE_CRASH_GC"

// crashGCHorizon is the history the child's GC keeps below
// disk_consistent_lsn.
const crashGCHorizon = 20000

// crashRecordCount is large enough that the child never stores them all
// within the test's rounds, so every round kills it mid-stream.
const crashRecordCount = 100000

var crashTenant = ids.TenantID{1}
var crashTimeline = ids.TimelineID{2}

// crashRecords returns the deterministic record stream.
func crashRecords(n int) []loggedRecord {
	r := rand.New(rand.NewPCG(42, 42))
	keys := make([]keyspace.Key, 16)
	for i := range keys {
		keys[i] = keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 30000}, uint32(i))
	}
	seen := map[keyspace.Key]bool{}
	recs := make([]loggedRecord, 0, n)
	at := lsn.LSN(100)
	for i := 0; i < n; i++ {
		start := at + 1
		at = start + 64
		k := keys[r.IntN(len(keys))]
		var v []byte
		if !seen[k] || r.IntN(100) == 0 {
			v = randomValue(r, at, true) // an 8 KB image: rare, to keep the stream cheap
		} else {
			for v = randomValue(r, at, false); value.WillInit(v); v = randomValue(r, at, false) {
			}
		}
		recs = append(recs, loggedRecord{start: start, end: at, puts: []loggedPut{{k, v}}})
		seen[k] = true
	}
	return recs
}

func readDCL(dir string) (lsn.LSN, error) { return readLSNFile(dir, "dcl") }

func writeLSNFile(dir, name string, l lsn.LSN) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(l))
	return durable.WriteFile(filepath.Join(dir, name), b[:], 0o600)
}

func readLSNFile(dir, name string) (lsn.LSN, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("bad %s file: %v (%d bytes)", name, err, len(b))
	}
	return lsn.LSN(binary.LittleEndian.Uint64(b)), nil
}

// crashKeys are the keys of the crash stream (the keyspace compaction
// images in the compaction-and-GC variant).
func crashKeys() []keyspace.Key {
	keys := make([]keyspace.Key, 16)
	for i := range keys {
		keys[i] = keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 30000}, uint32(i))
	}
	return keys
}

func openCrashTimeline(t testing.TB, dir string, cfg Config) *Timeline {
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 64 * pagecache.PageSize}, nil)
	require.NoError(t, err)
	dcl, err := readDCL(dir)
	require.NoError(t, err)
	cut, err := readLSNFile(dir, "gc")
	require.NoError(t, err)
	tl, err := Open(context.Background(), Options{
		Tenant: crashTenant, ID: crashTimeline, Dir: dir, StartLSN: 1, DiskConsistentLSN: dcl, GCCutoffLSN: cut,
		Keyspace: func(context.Context, *Timeline, lsn.LSN) ([]keyspace.Key, error) { return crashKeys(), nil },
		Cache:    cache, Redo: &fakeRedo{}, Native: fakeNative{}, Config: cfg, Logger: crashLogger(),
		PersistMetadata: func(d, _ lsn.LSN) error { return writeLSNFile(dir, "dcl", d) },
	})
	require.NoError(t, err)
	return tl
}

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("crash test child: runs only when re-executed by TestCrashKill")
	}
	cfg := Config{CheckpointDistance: 3000, CheckpointTimeout: time.Hour, WaitLSNTimeout: time.Second}
	withGC := os.Getenv(crashGCEnv) != ""
	if withGC {
		// Background image creation after every second delta layer, in
		// several files per pass, and GC every few milliseconds keeping
		// crashGCHorizon bytes of history.
		cfg.ImageCreationThreshold, cfg.ImageLayerTargetSize, cfg.ImageWorkers = 2, 5*pgtypes.BLCKSZ, 2
	}
	tl := openCrashTimeline(t, dir, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = tl.Run(ctx) }()
	if withGC {
		go func() {
			for ctx.Err() == nil {
				time.Sleep(3 * time.Millisecond)
				dcl := tl.DiskConsistentLSN()
				if dcl <= crashGCHorizon || dcl-crashGCHorizon <= tl.GCCutoffLSN() {
					continue
				}
				cut := dcl - crashGCHorizon
				// As tenantmgr does: the cutoff is durable before any file goes.
				if err := writeLSNFile(dir, "gc", cut); err != nil {
					panic(err)
				}
				tl.SetGCCutoff(cut)
				if _, err := tl.GC(ctx, nil); err != nil && ctx.Err() == nil {
					panic(err)
				}
			}
		}()
	}
	fmt.Println("crash-child-ready") // the parent starts its kill timer now
	from := tl.LastRecordLSN()
	for _, rec := range crashRecords(crashRecordCount) {
		if rec.end <= from {
			continue
		}
		require.NoError(t, ingest(ctx, tl, rec))
	}
	_, err := tl.Checkpoint(ctx)
	require.NoError(t, err)
	// Wait to be killed.
	time.Sleep(time.Minute)
}

func TestCrashKill(t *testing.T) { runCrashKill(t, false, 20) }

// TestCrashKillCompactGC kills the child while it also creates image layers
// in the background and garbage-collects: after every restart the reads at
// or above the persisted GC cutoff still equal the model, and reads below
// it are refused.
func TestCrashKillCompactGC(t *testing.T) { runCrashKill(t, true, 12) }

func runCrashKill(t *testing.T, withGC bool, rounds int) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	if raceEnabled {
		// A durability test, not a concurrency one: the race detector makes
		// every child 10× slower and adds nothing; it runs in the normal pass.
		t.Skip("skipped under the race detector; runs in the normal test pass")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	recs := crashRecords(crashRecordCount)
	model := &modelTimeline{puts: map[keyspace.Key][]modelPut{}}
	r := rand.New(rand.NewPCG(5, 5))
	progressed, maxImages, refused := 0, 0, 0
	prevDCL, prevCut := lsn.LSN(0), lsn.LSN(0)
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		if withGC {
			cmd.Env = append(cmd.Env, crashGCEnv+"=1")
		}
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		// Wait until the child is ingesting (process start-up is slow under
		// the race detector), then kill it at a random moment.
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "crash-child-ready" {
					close(ready)
					break
				}
			}
			_, _ = io.Copy(io.Discard, out)
		}()
		select {
		case <-ready:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: crash child did not start in 60 s", round)
		}
		// Let the child make durable progress in this round (fsync can be
		// slow on a loaded machine), then kill it at a random moment.
		deadline := time.Now().Add(60 * time.Second)
		finalEnd := recs[len(recs)-1].end
		for {
			d, err := readDCL(dir)
			if err == nil && (d > prevDCL || d >= finalEnd) {
				break // progress, or the child already stored everything
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("round %d: the child persisted nothing in 60 s", round)
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(r.IntN(200)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		tl := openCrashTimeline(t, dir, Config{CheckpointDistance: 1 << 30, CheckpointTimeout: time.Hour, WaitLSNTimeout: 10 * time.Millisecond})
		dcl := tl.LastRecordLSN()
		require.GreaterOrEqual(t, dcl, prevDCL, "round %d: disk_consistent_lsn went backwards", round)
		if dcl > prevDCL {
			progressed++
		}
		prevDCL = dcl
		cut := tl.GCCutoffLSN()
		require.GreaterOrEqual(t, cut, prevCut, "round %d: the GC cutoff went backwards", round)
		prevCut = cut
		if img, _ := tl.ImageStats(); img > 0 {
			maxImages++
		}
		// Model up to dcl.
		model.puts = map[keyspace.Key][]modelPut{}
		for _, rec := range recs {
			if rec.end > dcl {
				break
			}
			for _, p := range rec.puts {
				model.puts[p.k] = append(model.puts[p.k], modelPut{rec.end, p.v})
			}
		}
		// Keys at their version LSNs up to dcl read as the model says: a
		// random sample each round, every version in the last round.
		for _, k := range keysOf(model) {
			for i, p := range model.puts[k] {
				if round < rounds-1 && i < len(model.puts[k])-3 && r.IntN(40) != 0 {
					continue
				}
				for _, at := range []lsn.LSN{p.at, p.at + 1} {
					if at > dcl {
						continue
					}
					if at < cut {
						if r.IntN(20) == 0 {
							_, err := tl.Get(context.Background(), k, at, nil)
							require.ErrorIs(t, err, ErrLSNOutOfRange, "round %d: %s at %s below the GC cutoff %s", round, k.Describe(), at, cut)
							refused++
						}
						continue
					}
					got, err := tl.Get(context.Background(), k, at, nil)
					require.NoError(t, err, "round %d: %s at %s", round, k.Describe(), at)
					require.True(t, slices.Equal(model.value(k, at), got), "round %d: %s at %s", round, k.Describe(), at)
				}
			}
		}
		// Every key at the cutoff and at dcl (the reads GC must keep).
		for _, k := range keysOf(model) {
			for _, at := range []lsn.LSN{max(cut, 1), dcl} {
				want := model.value(k, at)
				got, err := tl.Get(context.Background(), k, at, nil)
				if want == nil {
					require.ErrorIs(t, err, ErrNotFound, "round %d: %s at %s", round, k.Describe(), at)
					continue
				}
				require.NoError(t, err, "round %d: %s at %s", round, k.Describe(), at)
				require.True(t, slices.Equal(want, got), "round %d: %s at %s", round, k.Describe(), at)
			}
		}
		// Nothing newer is visible from files: reads above dcl wait and time out.
		_, err = tl.Get(context.Background(), keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 30000}, 0), dcl+1, nil)
		require.ErrorIs(t, err, ErrWaitLSNTimeout)
		require.NoError(t, tl.Close())
	}
	t.Logf("%d kill rounds, disk_consistent_lsn advanced in %d, final %s (%s of %d records); GC cutoff %s, rounds with image layers %d, reads refused below the cutoff %d",
		rounds, progressed, prevDCL, strconv.Itoa(countUpTo(recs, prevDCL)), len(recs), prevCut, maxImages, refused)
	if withGC {
		require.NotZero(t, prevCut, "GC never ran")
		require.NotZero(t, maxImages, "no image layer was ever created")
	}
	if prevDCL < recs[len(recs)-1].end {
		require.Equal(t, rounds, progressed, "the child made durable progress in every round")
	}
	require.Greater(t, progressed, 1)
}

func keysOf(m *modelTimeline) []keyspace.Key {
	var ks []keyspace.Key
	for k := range m.puts {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, keyspace.Key.Compare)
	return ks
}

func countUpTo(recs []loggedRecord, at lsn.LSN) int {
	n := 0
	for _, r := range recs {
		if r.end <= at {
			n++
		}
	}
	return n
}

func crashLogger() *slog.Logger {
	if os.Getenv("STRATA_CRASH_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return logging.Discard()
}
