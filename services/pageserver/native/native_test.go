package native

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

func clogKey(pageno uint32) keyspace.Key {
	return keyspace.SlruBlock(keyspace.SlruClog, pageno/32, pageno%32)
}

func vmKey(blk uint32) keyspace.Key {
	return keyspace.RelBlock(pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: pgtypes.VisibilityMapForkNum}, blk)
}

func TestClog(t *testing.T) {
	// xids 727..729 committed, 730 aborted (pg15-formats §4.1): byte 181
	// holds 724..727, byte 182 holds 728..731.
	page := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, Apply(SubtypeClogSetCommitted, AppendClogCommitted(nil, 12345, []uint32{727, 728, 729}), page, clogKey(0), 1))
	require.NoError(t, Apply(SubtypeClogSetAborted, AppendClogAborted(nil, []uint32{730}), page, clogKey(0), 2))
	require.Equal(t, byte(0x40), page[181])           // 727: shift 6, status 1
	require.Equal(t, byte(0x01|0x04|0x20), page[182]) // 728:1, 729:1<<2, 730:2<<4
	// Overwriting a status replaces both bits.
	require.NoError(t, Apply(SubtypeClogSetCommitted, AppendClogCommitted(nil, 1, []uint32{730}), page, clogKey(0), 3))
	require.Equal(t, byte(0x01|0x04|0x10), page[182])

	// Second page, second segment: xid 32768*33+5 is page 33 = segment 1 block 1.
	xid := uint32(32768*33 + 5)
	page2 := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, Apply(SubtypeClogSetCommitted, AppendClogCommitted(nil, 0, []uint32{xid}), page2, clogKey(33), 4))
	require.Equal(t, byte(0x04), page2[1])
	ts, xids, err := ParseClogCommitted(AppendClogCommitted(nil, -7, []uint32{1, 2}))
	require.NoError(t, err)
	require.Equal(t, int64(-7), ts)
	require.Equal(t, []uint32{1, 2}, xids)
}

func TestMultixact(t *testing.T) {
	// multi 1 = offset 1, members {748: keysh (0), 749: nokeyupd (4)}
	// (pg15-formats §4.2), and the next multi's offset 3.
	off := make([]byte, pgtypes.BLCKSZ)
	key := keyspace.SlruBlock(keyspace.SlruMultiXactOffsets, 0, 0)
	require.NoError(t, Apply(SubtypeMultixactOffsetCreate,
		AppendMultixactOffsets(nil, []MultiXactOffset{{1, 1}, {2, 3}}), off, key, 1))
	require.Equal(t, uint32(1), binary.LittleEndian.Uint32(off[4:]))
	require.Equal(t, uint32(3), binary.LittleEndian.Uint32(off[8:]))

	mem := make([]byte, pgtypes.BLCKSZ)
	mkey := keyspace.SlruBlock(keyspace.SlruMultiXactMembers, 0, 0)
	require.NoError(t, Apply(SubtypeMultixactMembersCreate,
		AppendMultixactMembers(nil, 1, []MultiXactMember{{748, 0}, {749, 4}}), mem, mkey, 1))
	// offset 1: group 0, flag byte 1, xid at 4+4 = 8; offset 2: flag byte 2, xid at 12.
	require.Equal(t, []byte{0, 0, 4, 0}, mem[0:4])
	require.Equal(t, uint32(748), binary.LittleEndian.Uint32(mem[8:]))
	require.Equal(t, uint32(749), binary.LittleEndian.Uint32(mem[12:]))

	// Offset 6829 (multi 3415's): page 4, group (6829/4)%409 = 71, slot 1.
	mem4 := make([]byte, pgtypes.BLCKSZ)
	require.NoError(t, Apply(SubtypeMultixactMembersCreate,
		AppendMultixactMembers(nil, 6829, []MultiXactMember{{9, 5}}), mem4, keyspace.SlruBlock(keyspace.SlruMultiXactMembers, 0, 4), 1))
	require.Equal(t, byte(5), mem4[71*20+1])
	require.Equal(t, uint32(9), binary.LittleEndian.Uint32(mem4[71*20+4+4:]))

	// Members spanning two pages must be split by the caller.
	err := Apply(SubtypeMultixactMembersCreate,
		AppendMultixactMembers(nil, 1635, []MultiXactMember{{1, 0}, {2, 0}}), mem, mkey, 1)
	require.ErrorIs(t, err, ErrWrongPage)
}

func TestVisibilityMap(t *testing.T) {
	page := make([]byte, pgtypes.BLCKSZ)
	for i := 24; i < len(page); i++ {
		page[i] = 0xFF
	}
	// Heap block 5: byte 24+1, shift 2. Heap block 32672+6 is on VM block 1.
	require.NoError(t, Apply(SubtypeClearVisibilityMapFlags, AppendClearVM(nil, []VMClear{{5, VMValidBits}, {6, 0x02}}), page, vmKey(0), 9))
	require.Equal(t, byte(0xFF&^0x0C&^0x20), page[25])
	require.Equal(t, uint64(0), binary.LittleEndian.Uint64(page[0:8]), "page LSN untouched")
	err := Apply(SubtypeClearVisibilityMapFlags, AppendClearVM(nil, []VMClear{{32672 + 6, 1}}), page, vmKey(0), 9)
	require.ErrorIs(t, err, ErrWrongPage)

	// Truncate to 9 heap blocks: keep blocks 0..8 = bytes 24,25 and the low
	// 2 bits of byte 26; clear the rest.
	page = make([]byte, pgtypes.BLCKSZ)
	for i := 24; i < len(page); i++ {
		page[i] = 0xFF
	}
	require.NoError(t, Apply(SubtypeTruncateVisibilityMap, AppendTruncateVM(nil, 9), page, vmKey(0), 9))
	require.Equal(t, []byte{0xFF, 0xFF, 0x03, 0x00}, page[24:28])
	require.Equal(t, make([]byte, pgtypes.BLCKSZ-28), page[28:])
	require.ErrorIs(t, Apply(SubtypeTruncateVisibilityMap, AppendTruncateVM(nil, 32672), page, vmKey(0), 9), ErrWrongPage)
}

func TestApplyErrors(t *testing.T) {
	page := make([]byte, pgtypes.BLCKSZ)
	tests := []struct {
		name    string
		subtype uint8
		payload []byte
		page    []byte
		key     keyspace.Key
		want    error
	}{
		{"short page", SubtypeClogSetAborted, AppendClogAborted(nil, []uint32{3}), page[:100], clogKey(0), ErrBadPage},
		{"unknown", 99, nil, page, clogKey(0), ErrUnknownSubtype},
		{"xid on other page", SubtypeClogSetAborted, AppendClogAborted(nil, []uint32{40000}), page, clogKey(0), ErrWrongPage},
		{"clog under vm key", SubtypeClogSetAborted, AppendClogAborted(nil, []uint32{3}), page, vmKey(0), ErrWrongPage},
		{"vm under clog key", SubtypeClearVisibilityMapFlags, AppendClearVM(nil, []VMClear{{1, 1}}), page, clogKey(0), ErrWrongPage},
		{"offsets under members key", SubtypeMultixactOffsetCreate, AppendMultixactOffsets(nil, []MultiXactOffset{{1, 1}}), page, keyspace.SlruBlock(keyspace.SlruMultiXactMembers, 0, 0), ErrWrongPage},
		{"empty xids", SubtypeClogSetAborted, AppendClogAborted(nil, nil), page, clogKey(0), ErrCorrupt},
		{"truncated", SubtypeClogSetCommitted, []byte{1, 2, 3}, page, clogKey(0), ErrCorrupt},
		{"bad vm flags", SubtypeClearVisibilityMapFlags, AppendClearVM(nil, []VMClear{{1, 4}}), page, vmKey(0), ErrCorrupt},
		{"bad member status", SubtypeMultixactMembersCreate, AppendMultixactMembers(nil, 1, []MultiXactMember{{1, 6}}), page, keyspace.SlruBlock(keyspace.SlruMultiXactMembers, 0, 0), ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]byte(nil), tc.page...)
			err := Apply(tc.subtype, tc.payload, tc.page, tc.key, 1)
			require.True(t, errors.Is(err, tc.want), "got %v", err)
			require.Equal(t, before, tc.page, "page changed on error")
		})
	}
}

func FuzzApply(f *testing.F) {
	f.Add(SubtypeClogSetCommitted, AppendClogCommitted(nil, 5, []uint32{3, 4}), uint8(1), uint32(0), uint32(0))
	f.Add(SubtypeClearVisibilityMapFlags, AppendClearVM(nil, []VMClear{{5, 3}}), uint8(0), uint32(0), uint32(0))
	f.Add(SubtypeTruncateVisibilityMap, AppendTruncateVM(nil, 7), uint8(0), uint32(0), uint32(0))
	f.Add(SubtypeMultixactOffsetCreate, AppendMultixactOffsets(nil, []MultiXactOffset{{1, 1}}), uint8(2), uint32(0), uint32(0))
	f.Add(SubtypeMultixactMembersCreate, AppendMultixactMembers(nil, 1, []MultiXactMember{{1, 1}}), uint8(3), uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, subtype uint8, payload []byte, keyKind uint8, seg, blk uint32) {
		var key keyspace.Key
		switch keyKind % 4 {
		case 0:
			key = vmKey(blk)
		case 1:
			key = keyspace.SlruBlock(keyspace.SlruClog, seg, blk)
		case 2:
			key = keyspace.SlruBlock(keyspace.SlruMultiXactOffsets, seg, blk)
		case 3:
			key = keyspace.SlruBlock(keyspace.SlruMultiXactMembers, seg, blk)
		}
		page := make([]byte, pgtypes.BLCKSZ)
		_ = Apply(subtype, payload, page, key, 1)
	})
}
