package timeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/logging"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pagecache"
	"github.com/stratadb/strata/services/pageserver/value"
)

func batchTimeline(t *testing.T) *Timeline {
	t.Helper()
	cache, err := pagecache.New(pagecache.Config{SizeBytes: 256 * pagecache.PageSize}, nil)
	require.NoError(t, err)
	tl, err := Open(context.Background(), Options{
		Tenant: ids.NewTenantID(), ID: ids.NewTimelineID(), Dir: t.TempDir(), StartLSN: 1, DiskConsistentLSN: 100,
		Cache: cache, Redo: &fakeRedo{}, Native: fakeNative{}, Logger: logging.Discard(),
		Config: Config{CheckpointDistance: 1 << 30, CheckpointTimeout: time.Hour, WaitLSNTimeout: 50 * time.Millisecond},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tl.Close() })
	return tl
}

// TestIngestBatch: last_record_lsn moves once per batch to the end of the
// last whole record; records before a non-record failure are published, a
// record's own failure breaks the timeline and publishes nothing more.
func TestIngestBatch(t *testing.T) {
	ctx := context.Background()
	key := func(blk uint32) keyspace.Key {
		return keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}, blk)
	}
	image := func(b byte) []byte {
		page := make([]byte, pgtypes.BLCKSZ)
		page[100] = b
		return value.AppendImage(nil, page)
	}
	put := func(blk uint32, b byte) func(m *Modification) error {
		return func(m *Modification) error { return m.Put(key(blk), image(b)) }
	}
	tl := batchTimeline(t)

	// Three records in one batch; inside it last_record_lsn has not moved.
	require.NoError(t, tl.IngestBatch(ctx, func(b *Batch) error {
		require.Equal(t, lsn.LSN(100), b.LastRecordLSN())
		require.NoError(t, b.Record(100, 200, put(0, 1)))
		require.NoError(t, b.Record(200, 300, put(1, 2)))
		require.NoError(t, b.Record(300, 400, put(0, 3)))
		require.Equal(t, lsn.LSN(400), b.LastRecordLSN())
		require.Equal(t, lsn.LSN(100), tl.LastRecordLSN(), "published before the batch ends")
		return nil
	}))
	require.Equal(t, lsn.LSN(400), tl.LastRecordLSN())
	require.Equal(t, lsn.LSN(300), tl.PrevRecordLSN())
	for _, c := range []struct {
		blk  uint32
		at   lsn.LSN
		want byte
	}{{0, 200, 1}, {0, 399, 1}, {0, 400, 3}, {1, 300, 2}} {
		page, err := tl.Get(ctx, key(c.blk), c.at, nil)
		require.NoError(t, err)
		require.Equal(t, c.want, page[100], "block %d at %s", c.blk, c.at)
	}

	// A record at or below last_record_lsn is refused without harm.
	require.NoError(t, tl.IngestBatch(ctx, func(b *Batch) error {
		require.Error(t, b.Record(300, 400, put(0, 9)))
		return nil
	}))
	require.Equal(t, lsn.LSN(400), tl.LastRecordLSN())

	// A failure after whole records (end of WAL in the chunk): they are
	// published and the error returned.
	endOfWAL := errors.New("end of WAL")
	err := tl.IngestBatch(ctx, func(b *Batch) error {
		require.NoError(t, b.Record(400, 500, put(2, 4)))
		return endOfWAL
	})
	require.ErrorIs(t, err, endOfWAL)
	require.Equal(t, lsn.LSN(500), tl.LastRecordLSN())
	require.Equal(t, lsn.LSN(400), tl.PrevRecordLSN())

	// A record that fails half-stored breaks the timeline: the whole
	// records before it in the batch stay unpublished (WAL is re-sent from
	// disk_consistent_lsn after a restart).
	bad := errors.New("bad record")
	err = tl.IngestBatch(ctx, func(b *Batch) error {
		require.NoError(t, b.Record(500, 600, put(3, 5)))
		return b.Record(600, 700, func(m *Modification) error {
			if err := m.Put(key(4), image(6)); err != nil {
				return err
			}
			return bad
		})
	})
	require.ErrorIs(t, err, bad)
	require.Equal(t, lsn.LSN(500), tl.LastRecordLSN())
	require.ErrorIs(t, tl.IngestBatch(ctx, func(*Batch) error { return nil }), ErrBroken)
	require.ErrorIs(t, tl.IngestRecord(ctx, 700, 800, put(5, 7)), ErrBroken)
}
