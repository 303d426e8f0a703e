package native

import (
	"encoding/binary"
	"fmt"
)

// Subtypes of native records (value.AppendNative's subtype byte). The
// numbers are part of the stored format: never reuse one.
const (
	SubtypeClearVisibilityMapFlags uint8 = 1
	SubtypeTruncateVisibilityMap   uint8 = 2
	SubtypeClogSetCommitted        uint8 = 3
	SubtypeClogSetAborted          uint8 = 4
	SubtypeMultixactOffsetCreate   uint8 = 5
	SubtypeMultixactMembersCreate  uint8 = 6
)

// SubtypeName returns a short name for logs and errors.
func SubtypeName(subtype uint8) string {
	switch subtype {
	case SubtypeClearVisibilityMapFlags:
		return "ClearVisibilityMapFlags"
	case SubtypeTruncateVisibilityMap:
		return "TruncateVisibilityMap"
	case SubtypeClogSetCommitted:
		return "ClogSetCommitted"
	case SubtypeClogSetAborted:
		return "ClogSetAborted"
	case SubtypeMultixactOffsetCreate:
		return "MultixactOffsetCreate"
	case SubtypeMultixactMembersCreate:
		return "MultixactMembersCreate"
	}
	return fmt.Sprintf("native(%d)", subtype)
}

var le = binary.LittleEndian

// VMClear asks to clear Flags (VM bits, 0x01 all-visible, 0x02 all-frozen)
// of one heap block.
type VMClear struct {
	HeapBlock uint32
	Flags     uint8
}

// AppendClearVM appends the ClearVisibilityMapFlags payload:
// n u8, then n × (heap block u32 LE, flags u8). All heap blocks must map to
// the same VM page; at most 255 entries.
func AppendClearVM(dst []byte, clears []VMClear) []byte {
	dst = append(dst, uint8(len(clears)))
	for _, c := range clears {
		dst = le.AppendUint32(dst, c.HeapBlock)
		dst = append(dst, c.Flags)
	}
	return dst
}

// ParseClearVM decodes a ClearVisibilityMapFlags payload.
func ParseClearVM(p []byte) ([]VMClear, error) {
	if len(p) < 1 || len(p) != 1+5*int(p[0]) || p[0] == 0 {
		return nil, fmt.Errorf("%w: ClearVisibilityMapFlags payload of %d bytes", ErrCorrupt, len(p))
	}
	out := make([]VMClear, p[0])
	for i := range out {
		e := p[1+5*i:]
		out[i] = VMClear{HeapBlock: le.Uint32(e), Flags: e[4]}
		if out[i].Flags&^VMValidBits != 0 {
			return nil, fmt.Errorf("%w: VM flags %#x", ErrCorrupt, out[i].Flags)
		}
	}
	return out, nil
}

// AppendTruncateVM appends the TruncateVisibilityMap payload: the new number
// of heap blocks (u32 LE). Applied to the VM page holding that heap block, it
// clears the bits of that block and of every later one on the page, as
// visibilitymap_prepare_truncate does.
func AppendTruncateVM(dst []byte, heapBlocks uint32) []byte {
	return le.AppendUint32(dst, heapBlocks)
}

// ParseTruncateVM decodes a TruncateVisibilityMap payload.
func ParseTruncateVM(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: TruncateVisibilityMap payload of %d bytes", ErrCorrupt, len(p))
	}
	return le.Uint32(p), nil
}

// AppendClogCommitted appends the ClogSetCommitted payload: the commit
// timestamp (TimestampTz, i64 LE), n u32 LE, then n xids (u32 LE). All xids
// must be on one CLOG page.
func AppendClogCommitted(dst []byte, timestamp int64, xids []uint32) []byte {
	dst = le.AppendUint64(dst, uint64(timestamp))
	return appendXids(dst, xids)
}

// AppendClogAborted appends the ClogSetAborted payload: n u32 LE, then n
// xids (u32 LE).
func AppendClogAborted(dst []byte, xids []uint32) []byte {
	return appendXids(dst, xids)
}

func appendXids(dst []byte, xids []uint32) []byte {
	dst = le.AppendUint32(dst, uint32(len(xids)))
	for _, x := range xids {
		dst = le.AppendUint32(dst, x)
	}
	return dst
}

// ParseClogCommitted decodes a ClogSetCommitted payload.
func ParseClogCommitted(p []byte) (timestamp int64, xids []uint32, err error) {
	if len(p) < 8 {
		return 0, nil, fmt.Errorf("%w: ClogSetCommitted payload of %d bytes", ErrCorrupt, len(p))
	}
	xids, err = parseXids(p[8:])
	return int64(le.Uint64(p)), xids, err
}

// ParseClogAborted decodes a ClogSetAborted payload.
func ParseClogAborted(p []byte) ([]uint32, error) { return parseXids(p) }

func parseXids(p []byte) ([]uint32, error) {
	if len(p) < 4 {
		return nil, fmt.Errorf("%w: xid list of %d bytes", ErrCorrupt, len(p))
	}
	n := le.Uint32(p)
	if n == 0 || uint64(len(p)-4) != 4*uint64(n) {
		return nil, fmt.Errorf("%w: %d xids in %d bytes", ErrCorrupt, n, len(p)-4)
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = le.Uint32(p[4+4*i:])
	}
	return out, nil
}

// MultiXactOffset is one entry of pg_multixact/offsets: multi's first member
// offset.
type MultiXactOffset struct {
	Multi  uint32
	Offset uint32
}

// AppendMultixactOffsets appends the MultixactOffsetCreate payload: n u8,
// then n × (multi u32 LE, offset u32 LE). All multis must be on one page.
func AppendMultixactOffsets(dst []byte, entries []MultiXactOffset) []byte {
	dst = append(dst, uint8(len(entries)))
	for _, e := range entries {
		dst = le.AppendUint32(dst, e.Multi)
		dst = le.AppendUint32(dst, e.Offset)
	}
	return dst
}

// ParseMultixactOffsets decodes a MultixactOffsetCreate payload.
func ParseMultixactOffsets(p []byte) ([]MultiXactOffset, error) {
	if len(p) < 1 || p[0] == 0 || len(p) != 1+8*int(p[0]) {
		return nil, fmt.Errorf("%w: MultixactOffsetCreate payload of %d bytes", ErrCorrupt, len(p))
	}
	out := make([]MultiXactOffset, p[0])
	for i := range out {
		e := p[1+8*i:]
		out[i] = MultiXactOffset{Multi: le.Uint32(e), Offset: le.Uint32(e[4:])}
	}
	return out, nil
}

// MultiXactMember is one member of a multixact: an xid and its lock or
// update status (MultiXactStatus, 0..5).
type MultiXactMember struct {
	Xid    uint32
	Status uint8
}

// AppendMultixactMembers appends the MultixactMembersCreate payload: the
// offset of the first member (u32 LE), n u32 LE, then n × (xid u32 LE,
// status u8). The members occupy offsets first, first+1, ...; all must be on
// one members page.
func AppendMultixactMembers(dst []byte, first uint32, members []MultiXactMember) []byte {
	dst = le.AppendUint32(dst, first)
	dst = le.AppendUint32(dst, uint32(len(members)))
	for _, m := range members {
		dst = le.AppendUint32(dst, m.Xid)
		dst = append(dst, m.Status)
	}
	return dst
}

// ParseMultixactMembers decodes a MultixactMembersCreate payload.
func ParseMultixactMembers(p []byte) (first uint32, members []MultiXactMember, err error) {
	if len(p) < 8 {
		return 0, nil, fmt.Errorf("%w: MultixactMembersCreate payload of %d bytes", ErrCorrupt, len(p))
	}
	first, n := le.Uint32(p), le.Uint32(p[4:])
	if n == 0 || uint64(len(p)-8) != 5*uint64(n) {
		return 0, nil, fmt.Errorf("%w: %d members in %d bytes", ErrCorrupt, n, len(p)-8)
	}
	members = make([]MultiXactMember, n)
	for i := range members {
		e := p[8+5*i:]
		members[i] = MultiXactMember{Xid: le.Uint32(e), Status: e[4]}
		if members[i].Status > maxMultiXactStatus {
			return 0, nil, fmt.Errorf("%w: multixact member status %d", ErrCorrupt, members[i].Status)
		}
	}
	return first, members, nil
}
