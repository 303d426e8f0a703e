package walingest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

func TestDirRoundTrip(t *testing.T) {
	rels := map[RelDirEntry]struct{}{{1259, 0}: {}, {1259, 1}: {}, {16384, 2}: {}, {5, 3}: {}}
	b := EncodeRelDir(rels)
	require.Equal(t, []byte{1, 'R', 4, 0, 0, 0, 5, 0, 0, 0, 3}, b[:11], "sorted, little-endian")
	got, err := DecodeRelDir(b)
	require.NoError(t, err)
	require.Equal(t, rels, got)

	dbs := map[DbDirEntry]bool{{1664, 0}: true, {1663, 5}: false, {1663, 1}: true}
	gotDbs, err := DecodeDbDir(EncodeDbDir(dbs))
	require.NoError(t, err)
	require.Equal(t, dbs, gotDbs)

	set := map[uint32]struct{}{0: {}, 7: {}, 0xFFFF: {}}
	gotSet, err := DecodeSlruDir(EncodeSlruDir(set))
	require.NoError(t, err)
	require.Equal(t, set, gotSet)
	gotSet, err = DecodeTwoPhaseDir(EncodeTwoPhaseDir(set))
	require.NoError(t, err)
	require.Equal(t, set, gotSet)
	empty, err := DecodeTwoPhaseDir(EncodeTwoPhaseDir(nil))
	require.NoError(t, err)
	require.Empty(t, empty)

	n, err := DecodeRelSize(EncodeRelSize(0x01020304))
	require.NoError(t, err)
	require.Equal(t, uint32(0x01020304), n)
	require.Equal(t, []byte{4, 3, 2, 1}, EncodeRelSize(0x01020304))
}

func TestDirCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		decode func([]byte) error
		b      []byte
	}{
		{"empty", func(b []byte) error { _, err := DecodeRelDir(b); return err }, nil},
		{"version", func(b []byte) error { _, err := DecodeRelDir(b); return err }, []byte{2, 'R', 0, 0, 0, 0}},
		{"kind", func(b []byte) error { _, err := DecodeSlruDir(b); return err }, EncodeTwoPhaseDir(nil)},
		{"count too big", func(b []byte) error { _, err := DecodeSlruDir(b); return err }, []byte{1, 'S', 2, 0, 0, 0, 1, 0, 0, 0}},
		{"unsorted", func(b []byte) error { _, err := DecodeSlruDir(b); return err }, []byte{1, 'S', 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0}},
		{"duplicate", func(b []byte) error { _, err := DecodeTwoPhaseDir(b); return err }, []byte{1, 'T', 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}},
		{"bad fork", func(b []byte) error { _, err := DecodeRelDir(b); return err }, []byte{1, 'R', 1, 0, 0, 0, 1, 0, 0, 0, 9}},
		{"bad relmap flag", func(b []byte) error { _, err := DecodeDbDir(b); return err }, []byte{1, 'D', 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2}},
		{"size", func(b []byte) error { _, err := DecodeRelSize(b); return err }, []byte{1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.decode(tc.b), ErrCorrupt)
		})
	}
}

// FuzzDirs checks that every decoder either rejects its input or accepts
// exactly the canonical encoding of what it decoded.
func FuzzDirs(f *testing.F) {
	f.Add(EncodeRelDir(map[RelDirEntry]struct{}{{1, 0}: {}, {2, 1}: {}}))
	f.Add(EncodeDbDir(map[DbDirEntry]bool{{1663, 5}: true}))
	f.Add(EncodeSlruDir(map[uint32]struct{}{3: {}}))
	f.Add(EncodeTwoPhaseDir(map[uint32]struct{}{700: {}, 701: {}}))
	f.Add([]byte{1, 'R', 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		if rels, err := DecodeRelDir(b); err == nil {
			require.Equal(t, b, EncodeRelDir(rels))
		}
		if dbs, err := DecodeDbDir(b); err == nil {
			require.Equal(t, b, EncodeDbDir(dbs))
		}
		if segs, err := DecodeSlruDir(b); err == nil {
			require.Equal(t, b, EncodeSlruDir(segs))
		}
		if xids, err := DecodeTwoPhaseDir(b); err == nil {
			require.Equal(t, b, EncodeTwoPhaseDir(xids))
		}
	})
}

func TestObserveXid(t *testing.T) {
	tests := []struct {
		name      string
		next, xid uint32
		epoch     uint64
		want      uint64
	}{
		{"rounds up", 1000, 1500, 0, 2048},
		{"at boundary", 1000, 1023, 0, 1024},
		{"older xid", 5000, 1500, 0, 5000},
		{"special xid ignored", 5000, 2, 0, 5000},
		{"same epoch", 10, 700, 3, 3<<32 | 1024},
		{"wraps into next epoch", 0xFFFFF000, 5, 1, 2<<32 | 1024},
		{"just before wrap", 0xFFFFF000, 0xFFFFFC00, 1, 2<<32 | firstNormalXid},
		{"old xid across wrap", 100, 0xFFFFF000, 2, 2<<32 | 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &Ingester{cp: rmgr.CheckPoint{NextXid: tc.epoch<<32 | uint64(tc.next)}}
			in.observeXid(tc.xid)
			require.Equal(t, tc.want, in.cp.NextXid, "%#x", in.cp.NextXid)
		})
	}
}

func TestGeometry(t *testing.T) {
	// fsm_logical_to_physical: leaf page 0 is physical 2 (after the root and
	// the first level-1 page); leaf 1 is 3; leaf 4069 starts the second
	// level-1 subtree.
	require.Equal(t, uint32(2), fsmLogicalToPhysical(0))
	require.Equal(t, uint32(3), fsmLogicalToPhysical(1))
	require.Equal(t, uint32(4069+3), fsmLogicalToPhysical(4069))
	require.True(t, clogPagePrecedes(0, 32))
	require.False(t, clogPagePrecedes(32, 0))
	require.False(t, clogPagePrecedes(5, 5))
	require.True(t, inCircularRange(5, 4, 6))
	require.True(t, inCircularRange(1, 9, 3))
	require.False(t, inCircularRange(5, 9, 3))
	require.True(t, multiOffsetPagePrecedes(0, 32))
}

func TestRelDirContains(t *testing.T) {
	rels := map[RelDirEntry]struct{}{}
	for i := 0; i < 300; i++ {
		rels[RelDirEntry{RelNode: pgtypes.Oid(16384 + 3*i), Fork: pgtypes.ForkNumber(i % 4)}] = struct{}{}
	}
	b := EncodeRelDir(rels)
	for rel := pgtypes.Oid(16380); rel < 16384+3*300+5; rel++ {
		for f := pgtypes.ForkNumber(0); f <= pgtypes.MaxForkNum; f++ {
			e := RelDirEntry{RelNode: rel, Fork: f}
			_, want := rels[e]
			got, err := RelDirContains(b, e)
			if err != nil || got != want {
				t.Fatalf("%v: got %v, %v; want %v", e, got, err, want)
			}
		}
	}
	empty := EncodeRelDir(nil)
	if ok, err := RelDirContains(empty, RelDirEntry{RelNode: 1}); ok || err != nil {
		t.Fatalf("empty directory: %v %v", ok, err)
	}
	if _, err := RelDirContains([]byte{9}, RelDirEntry{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt directory: %v", err)
	}
}
