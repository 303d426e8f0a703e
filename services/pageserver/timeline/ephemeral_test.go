package timeline

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/logging"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/ephemeral"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/value"
)

// TestEphemeralMemoryBudget: open and frozen layers keep their data in the
// shared budget, up to its limit, and give all of it back once flushed;
// reads see the same pages whether a layer's chunks are in memory or in
// its ephemeral file, before and after the flush.
func TestEphemeralMemoryBudget(t *testing.T) {
	ctx := context.Background()
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 64 * pagecache.PageSize}, nil)
	require.NoError(t, err)
	mem := ephemeral.NewMemory(4 * ephemeral.ChunkSize)
	tl, err := Open(ctx, Options{
		Tenant: ids.NewTenantID(), ID: ids.NewTimelineID(), Dir: t.TempDir(), StartLSN: 1, DiskConsistentLSN: 100,
		Cache: cache, EphemeralMemory: mem, Redo: &fakeRedo{}, Native: fakeNative{}, Logger: logging.Discard(),
		Config: Config{CheckpointDistance: 1 << 30, CheckpointTimeout: time.Hour, WaitLSNTimeout: 50 * time.Millisecond},
	})
	require.NoError(t, err)

	key := func(blk uint32) keyspace.Key {
		return keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}, blk)
	}
	page := func(blk uint32, round byte) []byte {
		p := make([]byte, pgtypes.BLCKSZ)
		p[0], p[1], p[8000] = byte(blk), byte(blk>>8), round
		return p
	}
	const blocks = 300 // 300 images of 8 KB: about 9 chunks, more than the budget
	at := lsn.LSN(100)
	write := func(round byte) {
		require.NoError(t, tl.IngestBatch(ctx, func(b *Batch) error {
			for blk := range uint32(blocks) {
				if err := b.Record(at, at+100, func(m *Modification) error {
					return m.Put(key(blk), value.AppendImage(nil, page(blk, round)))
				}); err != nil {
					return err
				}
				at += 100
			}
			return nil
		}))
	}
	check := func(round byte) {
		t.Helper()
		for blk := range uint32(blocks) {
			got, err := tl.Get(ctx, key(blk), tl.LastRecordLSN(), nil)
			require.NoError(t, err)
			require.Equal(t, page(blk, round), got, "block %d", blk)
		}
	}

	write(1)
	require.Equal(t, mem.Limit(), mem.Used(), "the open layer fills the budget")
	require.Positive(t, mem.Written(), "the rest went to the ephemeral file")
	check(1)
	_, err = tl.Checkpoint(ctx)
	require.NoError(t, err)
	require.Zero(t, mem.Used(), "a flushed layer gives its chunks back")
	check(1)

	write(2)
	require.Equal(t, mem.Limit(), mem.Used())
	check(2)
	_, err = tl.Checkpoint(ctx)
	require.NoError(t, err)
	require.Zero(t, mem.Used())
	check(2)

	// Closing the timeline gives back what its open layer holds.
	write(3)
	require.Positive(t, mem.Used())
	require.NoError(t, tl.Close())
	require.Zero(t, mem.Used())
}
