package pagecache

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

// versionPage is a page whose content names its key and LSN.
func versionPage(key byte, l lsn.LSN) []byte {
	p := make([]byte, PageSize)
	p[0] = key
	binary.LittleEndian.PutUint64(p[8:], uint64(l))
	p[PageSize-1] = byte(l)
	return p
}

func pageLSN(p []byte) lsn.LSN { return lsn.LSN(binary.LittleEndian.Uint64(p[8:])) }

func TestLookupMaterializedInexact(t *testing.T) {
	tenant, timeline := [16]byte{0xA}, [16]byte{0xB}
	key := [18]byte{0: 0, 17: 1}
	c := newTestCache(t, 64)
	for _, l := range []lsn.LSN{0x100, 0x300, 0x200} { // out of order on purpose
		require.NoError(t, c.PutMaterialized(tenant, timeline, key, l, versionPage(1, l)))
	}
	for _, tc := range []struct {
		name          string
		tenant        [16]byte
		timeline      [16]byte
		key           [18]byte
		lastRecordLSN lsn.LSN // for LookupMaterializedSince; 0 = LookupMaterialized
		request       lsn.LSN
		want          lsn.LSN // 0 = miss
	}{
		{name: "below every version", key: key, request: 0xFF},
		{name: "exact oldest", key: key, request: 0x100, want: 0x100},
		{name: "between 1 and 2", key: key, request: 0x1FF, want: 0x100},
		{name: "exact middle", key: key, request: 0x200, want: 0x200},
		{name: "between 2 and 3", key: key, request: 0x2AB, want: 0x200},
		{name: "exact newest", key: key, request: 0x300, want: 0x300},
		{name: "far above", key: key, request: lsn.LSN(^uint64(0)), want: 0x300},
		{name: "other key", key: [18]byte{0: 0, 17: 2}, request: 0x300},
		{name: "other timeline", timeline: [16]byte{0xC}, key: key, request: 0x300},
		{name: "other tenant", tenant: [16]byte{0xD}, key: key, request: 0x300},
		{name: "since: record before version", key: key, lastRecordLSN: 0x150, request: 0x2AB, want: 0x200},
		{name: "since: record equal to version", key: key, lastRecordLSN: 0x200, request: 0x2AB, want: 0x200},
		{name: "since: record after newest version below request", key: key, lastRecordLSN: 0x280, request: 0x2AB},
		{name: "since: record after all versions", key: key, lastRecordLSN: 0x301, request: 0x400},
		{name: "since: request below record", key: key, lastRecordLSN: 0x300, request: 0x2FF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ten, tl := tc.tenant, tc.timeline
			if ten == ([16]byte{}) {
				ten = tenant
			}
			if tl == ([16]byte{}) {
				tl = timeline
			}
			var g ReadGuard
			var ok bool
			if tc.lastRecordLSN == 0 {
				g, ok = c.LookupMaterialized(ten, tl, tc.key, tc.request)
			} else {
				g, ok = c.LookupMaterializedSince(ten, tl, tc.key, tc.lastRecordLSN, tc.request)
			}
			if tc.want == 0 {
				require.False(t, ok, "want a miss, got version %s", g.LSN())
				return
			}
			require.True(t, ok)
			defer g.Release()
			require.Equal(t, tc.want, g.LSN())
			require.Equal(t, tc.want, pageLSN(g.Bytes()))
			require.Equal(t, byte(tc.want), g.Bytes()[PageSize-1])
		})
	}
	require.Equal(t, 0, c.pinnedSlots())
}

func TestMaterializedVersionsBounded(t *testing.T) {
	c := newTestCache(t, 64)
	var tenant, timeline [16]byte
	var key [18]byte
	for i := 1; i <= 10; i++ {
		l := lsn.LSN(i * 0x10)
		require.NoError(t, c.PutMaterialized(tenant, timeline, key, l, versionPage(0, l)))
		require.NoError(t, c.PutMaterialized(tenant, timeline, key, l, versionPage(0, l)), "re-put is a no-op")
	}
	k := materializedKey(&tenant, &timeline, &key)
	vl := c.shardOf(&k).versions[k]
	require.Equal(t, MaxVersionsPerKey, vl.n)
	require.Equal(t, lsn.LSN(0x70), vl.lsns[0], "the newest versions are kept")
	_, ok := c.LookupMaterialized(tenant, timeline, key, 0x60)
	require.False(t, ok, "a dropped version must not be found")
	// A version older than a full list is not cached.
	require.NoError(t, c.PutMaterialized(tenant, timeline, key, 0x15, versionPage(0, 0x15)))
	_, ok = c.LookupMaterialized(tenant, timeline, key, 0x15)
	require.False(t, ok)
	// A version between existing ones is inserted in order; the oldest goes.
	require.NoError(t, c.PutMaterialized(tenant, timeline, key, 0x85, versionPage(0, 0x85)))
	g, ok := c.LookupMaterialized(tenant, timeline, key, 0x8F)
	require.True(t, ok)
	require.Equal(t, lsn.LSN(0x85), g.LSN())
	g.Release()
	_, ok = c.LookupMaterialized(tenant, timeline, key, 0x7F)
	require.False(t, ok, "0x70 was the oldest and must have been dropped")

	require.ErrorIs(t, c.PutMaterialized(tenant, timeline, key, 1, make([]byte, 100)), ErrPageSize)
	// Dropped versions' slots were freed: count slots still mapped.
	mapped := 0
	for i := range c.slots {
		if c.slots[i].mapped {
			mapped++
		}
	}
	require.Equal(t, MaxVersionsPerKey, mapped)
}

func TestInvalidateTimeline(t *testing.T) {
	c := newTestCache(t, 128)
	t1, t2 := [16]byte{1}, [16]byte{2}
	tl1, tl2 := [16]byte{0x11}, [16]byte{0x22}
	for i := range 5 {
		key := [18]byte{17: byte(i)}
		for _, ten := range [][16]byte{t1, t2} {
			for _, tl := range [][16]byte{tl1, tl2} {
				for _, l := range []lsn.LSN{0x10, 0x20} {
					require.NoError(t, c.PutMaterialized(ten, tl, key, l, versionPage(byte(i), l)))
				}
			}
		}
	}
	held, ok := c.LookupMaterialized(t1, tl1, [18]byte{}, 0x20)
	require.True(t, ok)
	c.InvalidateTimeline(t1, tl1)
	for i := range 5 {
		key := [18]byte{17: byte(i)}
		_, ok := c.LookupMaterialized(t1, tl1, key, 0x20)
		require.False(t, ok, fmt.Sprintf("key %d of the deleted timeline", i))
		for _, other := range [][2][16]byte{{t1, tl2}, {t2, tl1}, {t2, tl2}} {
			g, ok := c.LookupMaterialized(other[0], other[1], key, 0x20)
			require.True(t, ok, "an unrelated timeline lost key %d", i)
			require.Equal(t, lsn.LSN(0x20), g.LSN())
			g.Release()
		}
	}
	require.Equal(t, lsn.LSN(0x20), pageLSN(held.Bytes()), "a held guard survives invalidation")
	held.Release()
	require.Equal(t, 0, c.pinnedSlots())
}
