package keyspace

import (
	"bytes"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/pgtypes"
)

var rel = pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: pgtypes.MainForkNum}

func TestLayoutMatchesNeon(t *testing.T) {
	// Byte layout from neon-anchor.md §5.1: f1 | f2 BE | f3 BE | f4 BE | f5 | f6 BE.
	k := RelBlock(rel, 7)
	b := k.Bytes()
	require.Equal(t, "00"+"0000067F"+"00000005"+"00004000"+"00"+"00000007", k.String())
	require.Equal(t, byte(0x00), b[0])
	back, err := FromBytes(b[:])
	require.NoError(t, err)
	require.Equal(t, k, back)
	parsed, err := Parse(k.String())
	require.NoError(t, err)
	require.Equal(t, k, parsed)

	require.Equal(t, "000000067F000000050000400000FFFFFFFF", RelSize(rel).String())
	require.Equal(t, "030000000000000000000000000000000001", Checkpoint().String())
	require.Equal(t, "01000000000000000100000003000000000A", SlruBlock(SlruClog, 3, 10).String())
}

func TestOrderEqualsByteOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]Key, 2000)
	for i := range keys {
		keys[i] = Key{uint8(r.IntN(4)), r.Uint32N(3), r.Uint32N(3), r.Uint32N(3), uint8(r.IntN(3)), r.Uint32N(3)}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	for i := 1; i < len(keys); i++ {
		a, b := keys[i-1].Bytes(), keys[i].Bytes()
		require.LessOrEqual(t, bytes.Compare(a[:], b[:]), 0)
		require.Equal(t, bytes.Compare(a[:], b[:]), keys[i-1].Compare(keys[i]))
	}
}

func TestNext(t *testing.T) {
	require.Equal(t, Key{F6: 1}, Min.Next())
	require.Equal(t, Key{F5: 1}, Key{F6: 0xFFFFFFFF}.Next())
	require.Equal(t, Key{F1: 1}, Key{0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFF, 0xFFFFFFFF}.Next())
	require.Equal(t, Max, Max.Next())
	for _, k := range []Key{RelBlock(rel, 5), {F4: 0xFFFFFFFF, F5: 0xFF, F6: 0xFFFFFFFF}} {
		require.True(t, k.Less(k.Next()))
	}
}

func TestKindsAndDescribe(t *testing.T) {
	tests := []struct {
		k               Key
		desc            string
		relBlk, relSize bool
		slruBlk         bool
	}{
		{RelBlock(rel, 7), "rel 1663/5/16384 blk 7", true, false, false},
		{RelBlock(rel.Node().Tag(pgtypes.VisibilityMapForkNum), 0), "rel 1663/5/16384_vm blk 0", true, false, false},
		{RelSize(rel), "rel 1663/5/16384 size", false, true, false},
		{RelDir(1663, 5), "reldir 1663/5", false, false, false},
		{RelMapFile(1664, 0), "relmap 1664/0", false, false, false},
		{DbDir(), "dbdir", false, false, false},
		{SlruDir(SlruMultiXactOffsets), "slru pg_multixact/offsets dir", false, false, false},
		{SlruBlock(SlruClog, 0, 3), "slru pg_xact seg 0 blk 3", false, false, true},
		{SlruSegmentSize(SlruMultiXactMembers, 2), "slru pg_multixact/members seg 2 size", false, false, false},
		{TwoPhaseDir(), "twophase dir", false, false, false},
		{TwoPhaseFile(1<<40 | 5<<32 | 737), "twophase xid 1120986464993", false, false, false},
		{ControlFile(), "controlfile", false, false, false},
		{Checkpoint(), "checkpoint", false, false, false},
		{Max, "key FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			require.Equal(t, tt.desc, tt.k.Describe())
			require.Equal(t, tt.relBlk, tt.k.IsRelBlock())
			require.Equal(t, tt.relSize, tt.k.IsRelSize())
			require.Equal(t, tt.slruBlk, tt.k.IsSlruBlock())
		})
	}
	got, err := RelBlock(rel, 9).RelTag()
	require.NoError(t, err)
	require.Equal(t, rel, got)
	require.Equal(t, uint32(9), RelBlock(rel, 9).BlockNumber())
	_, err = DbDir().RelTag()
	require.ErrorIs(t, err, ErrInvalidKey)
}

func TestMetadataOrder(t *testing.T) {
	// Relation data sorts before SLRUs, SLRUs before twophase, twophase
	// before control data; a database's relations sort together.
	require.True(t, RelBlock(rel, 0).Less(SlruDir(SlruClog)))
	require.True(t, SlruBlock(SlruMultiXactOffsets, 9, 9).Less(TwoPhaseDir()))
	require.True(t, TwoPhaseFile(1<<50).Less(ControlFile()))
	require.True(t, ControlFile().Less(Checkpoint()))
	start, end := RelRange(1663, 5)
	r := Range{start, end}
	require.True(t, r.Contains(RelBlock(rel, 0)))
	require.True(t, r.Contains(RelSize(rel)))
	require.False(t, r.Contains(RelDir(1663, 5)), "directory is not a relation")
	require.False(t, r.Contains(RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 6, RelNode: 1}, 0)))
	s2, e2 := RelRange(1663, 0xFFFFFFFF)
	require.True(t, Range{s2, e2}.Contains(RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 0xFFFFFFFF, RelNode: 1}, 0)))
}

func TestRange(t *testing.T) {
	a := Range{Key{F6: 10}, Key{F6: 20}}
	require.True(t, a.Overlaps(Range{Key{F6: 19}, Key{F6: 30}}))
	require.False(t, a.Overlaps(Range{Key{F6: 20}, Key{F6: 30}}))
	require.True(t, Range{Key{F6: 5}, Key{F6: 5}}.IsEmpty())
	require.False(t, a.IsEmpty())
	require.Equal(t, Key{F6: 10}.String()+"-"+Key{F6: 20}.String(), a.String())
}

func TestBadInput(t *testing.T) {
	_, err := FromBytes(make([]byte, 17))
	require.ErrorIs(t, err, ErrInvalidKey)
	_, err = Parse("00")
	require.ErrorIs(t, err, ErrInvalidKey)
	_, err = Parse("ZZ0000067F000000050000400000FFFFFFFF")
	require.ErrorIs(t, err, ErrInvalidKey)
}

func TestSlruKind(t *testing.T) {
	require.Equal(t, "pg_xact", SlruClog.Dir())
	require.True(t, SlruMultiXactOffsets.Valid())
	require.False(t, SlruKind(3).Valid())
	require.Equal(t, "slru3", SlruKind(3).Dir())
}

func FuzzParse(f *testing.F) {
	f.Add(RelBlock(rel, 1).String())
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(k.String())
		if err != nil || back != k {
			t.Fatalf("round trip of %q failed: %v", s, err)
		}
		_ = k.Describe()
	})
}
