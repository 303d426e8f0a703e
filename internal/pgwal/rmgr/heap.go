package rmgr

import (
	"fmt"
	"strings"
)

// Heap record opcodes (info & HeapOpMask; src/include/access/heapam_xlog.h).
const (
	InfoHeapInsert       uint8 = 0x00
	InfoHeapDelete       uint8 = 0x10
	InfoHeapUpdate       uint8 = 0x20
	InfoHeapTruncate     uint8 = 0x30
	InfoHeapHotUpdate    uint8 = 0x40
	InfoHeapConfirm      uint8 = 0x50
	InfoHeapLock         uint8 = 0x60
	InfoHeapInplace      uint8 = 0x70
	InfoHeap2Rewrite     uint8 = 0x00
	InfoHeap2Prune       uint8 = 0x10
	InfoHeap2Vacuum      uint8 = 0x20
	InfoHeap2FreezePage  uint8 = 0x30
	InfoHeap2Visible     uint8 = 0x40
	InfoHeap2MultiInsert uint8 = 0x50
	InfoHeap2LockUpdated uint8 = 0x60
	InfoHeap2NewCID      uint8 = 0x70
	HeapOpMask           uint8 = 0x70
	HeapInitPage         uint8 = 0x80 // XLOG_HEAP_INIT_PAGE: the page is re-initialized
)

// Flag bits of heap records' flags bytes (XLH_*).
const (
	XLHInsertAllVisibleCleared    uint8 = 1 << 0
	XLHInsertLastInMulti          uint8 = 1 << 1
	XLHInsertIsSpeculative        uint8 = 1 << 2
	XLHInsertContainsNewTuple     uint8 = 1 << 3
	XLHInsertOnToastRelation      uint8 = 1 << 4
	XLHInsertAllFrozenSet         uint8 = 1 << 5
	XLHUpdateOldAllVisibleCleared uint8 = 1 << 0
	XLHUpdateNewAllVisibleCleared uint8 = 1 << 1
	XLHDeleteAllVisibleCleared    uint8 = 1 << 0
	XLHLockAllFrozenCleared       uint8 = 1 << 0
)

// infobits (XLHL_*) of delete, update and lock records.
const (
	XLHLXmaxIsMulti    uint8 = 0x01
	XLHLXmaxLockOnly   uint8 = 0x02
	XLHLXmaxExclLock   uint8 = 0x04
	XLHLXmaxKeyshrLock uint8 = 0x08
	XLHLKeysUpdated    uint8 = 0x10
)

// Visibility-map bits of one heap page.
const (
	VMAllVisible uint8 = 0x01
	VMAllFrozen  uint8 = 0x02
	VMValidBits  uint8 = 0x03
)

// VMClearer is implemented by the heap bodies whose redo clears
// visibility-map bits. The VM page is not a block reference of these
// records: the consumer computes it from the heap block number.
type VMClearer interface {
	// VMClear returns the VM bits to clear (0 = none) for the heap page of
	// block reference 0 and, for UPDATE/HOT_UPDATE only, for the old tuple's
	// page: block reference 1 when the record has one, else block 0.
	VMClear() (block0Bits, oldPageBits uint8)
}

func outInfobits(s *strings.Builder, infobits uint8) {
	if infobits&XLHLXmaxIsMulti != 0 {
		s.WriteString("IS_MULTI ")
	}
	if infobits&XLHLXmaxLockOnly != 0 {
		s.WriteString("LOCK_ONLY ")
	}
	if infobits&XLHLXmaxExclLock != 0 {
		s.WriteString("EXCL_LOCK ")
	}
	if infobits&XLHLXmaxKeyshrLock != 0 {
		s.WriteString("KEYSHR_LOCK ")
	}
	if infobits&XLHLKeysUpdated != 0 {
		s.WriteString("KEYS_UPDATED ")
	}
}

// HeapInsert is Heap INSERT (xl_heap_insert); InitPage is XLOG_HEAP_INIT_PAGE.
type HeapInsert struct {
	InitPage bool
	OffNum   uint16
	Flags    uint8
}

func (*HeapInsert) isBody() {}

// Rmgr implements Body.
func (*HeapInsert) Rmgr() ID { return Heap }

// RecordName implements Body.
func (b *HeapInsert) RecordName() string { return initName("INSERT", b.InitPage) }

// String implements Body.
func (b *HeapInsert) String() string { return fmt.Sprintf("off %d flags 0x%02X", b.OffNum, b.Flags) }

// VMClear implements VMClearer.
func (b *HeapInsert) VMClear() (uint8, uint8) {
	if b.Flags&XLHInsertAllVisibleCleared != 0 {
		return VMValidBits, 0
	}
	return 0, 0
}

// HeapDelete is Heap DELETE (xl_heap_delete).
type HeapDelete struct {
	Xmax        uint32
	OffNum      uint16
	InfobitsSet uint8
	Flags       uint8
}

func (*HeapDelete) isBody() {}

// Rmgr implements Body.
func (*HeapDelete) Rmgr() ID { return Heap }

// RecordName implements Body.
func (*HeapDelete) RecordName() string { return "DELETE" }

// String implements Body.
func (b *HeapDelete) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "off %d flags 0x%02X ", b.OffNum, b.Flags)
	outInfobits(&s, b.InfobitsSet)
	return s.String()
}

// VMClear implements VMClearer.
func (b *HeapDelete) VMClear() (uint8, uint8) {
	if b.Flags&XLHDeleteAllVisibleCleared != 0 {
		return VMValidBits, 0
	}
	return 0, 0
}

// HeapUpdate is Heap UPDATE, or HOT_UPDATE when Hot (xl_heap_update). Block
// reference 0 is the new page; block 1, when present, the old one.
type HeapUpdate struct {
	Hot            bool
	InitPage       bool
	OldXmax        uint32
	OldOffNum      uint16
	OldInfobitsSet uint8
	Flags          uint8
	NewXmax        uint32
	NewOffNum      uint16
}

func (*HeapUpdate) isBody() {}

// Rmgr implements Body.
func (*HeapUpdate) Rmgr() ID { return Heap }

// RecordName implements Body.
func (b *HeapUpdate) RecordName() string {
	if b.Hot {
		return initName("HOT_UPDATE", b.InitPage)
	}
	return initName("UPDATE", b.InitPage)
}

// String implements Body.
func (b *HeapUpdate) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "off %d xmax %d flags 0x%02X ", b.OldOffNum, b.OldXmax, b.Flags)
	outInfobits(&s, b.OldInfobitsSet)
	fmt.Fprintf(&s, "; new off %d xmax %d", b.NewOffNum, b.NewXmax)
	return s.String()
}

// VMClear implements VMClearer.
func (b *HeapUpdate) VMClear() (uint8, uint8) {
	var newBits, oldBits uint8
	if b.Flags&XLHUpdateNewAllVisibleCleared != 0 {
		newBits = VMValidBits
	}
	if b.Flags&XLHUpdateOldAllVisibleCleared != 0 {
		oldBits = VMValidBits
	}
	return newBits, oldBits
}

// HeapLock is Heap LOCK (xl_heap_lock).
type HeapLock struct {
	LockingXid  uint32
	OffNum      uint16
	InfobitsSet uint8
	Flags       uint8
}

func (*HeapLock) isBody() {}

// Rmgr implements Body.
func (*HeapLock) Rmgr() ID { return Heap }

// RecordName implements Body.
func (*HeapLock) RecordName() string { return "LOCK" }

// String implements Body.
func (b *HeapLock) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "off %d: xid %d: flags 0x%02X ", b.OffNum, b.LockingXid, b.Flags)
	outInfobits(&s, b.InfobitsSet)
	return s.String()
}

// VMClear implements VMClearer: a lock clears only ALL_FROZEN.
func (b *HeapLock) VMClear() (uint8, uint8) {
	if b.Flags&XLHLockAllFrozenCleared != 0 {
		return VMAllFrozen, 0
	}
	return 0, 0
}

// HeapLockUpdated is Heap2 LOCK_UPDATED (xl_heap_lock_updated).
type HeapLockUpdated struct {
	Xmax        uint32
	OffNum      uint16
	InfobitsSet uint8
	Flags       uint8
}

func (*HeapLockUpdated) isBody() {}

// Rmgr implements Body.
func (*HeapLockUpdated) Rmgr() ID { return Heap2 }

// RecordName implements Body.
func (*HeapLockUpdated) RecordName() string { return "LOCK_UPDATED" }

// String implements Body.
func (b *HeapLockUpdated) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "off %d: xmax %d: flags 0x%02X ", b.OffNum, b.Xmax, b.Flags)
	outInfobits(&s, b.InfobitsSet)
	return s.String()
}

// VMClear implements VMClearer: like LOCK, only ALL_FROZEN.
func (b *HeapLockUpdated) VMClear() (uint8, uint8) {
	if b.Flags&XLHLockAllFrozenCleared != 0 {
		return VMAllFrozen, 0
	}
	return 0, 0
}

// HeapMultiInsert is Heap2 MULTI_INSERT (xl_heap_multi_insert). Offsets is
// nil when InitPage (the tuples then go to offsets 1..NTuples).
type HeapMultiInsert struct {
	InitPage bool
	Flags    uint8
	NTuples  uint16
	Offsets  []uint16
}

func (*HeapMultiInsert) isBody() {}

// Rmgr implements Body.
func (*HeapMultiInsert) Rmgr() ID { return Heap2 }

// RecordName implements Body.
func (b *HeapMultiInsert) RecordName() string { return initName("MULTI_INSERT", b.InitPage) }

// String implements Body.
func (b *HeapMultiInsert) String() string {
	return fmt.Sprintf("%d tuples flags 0x%02X", b.NTuples, b.Flags)
}

// VMClear implements VMClearer.
func (b *HeapMultiInsert) VMClear() (uint8, uint8) {
	if b.Flags&XLHInsertAllVisibleCleared != 0 {
		return VMValidBits, 0
	}
	return 0, 0
}

// VMSet returns the VM bits the record sets on block 0's heap page:
// ALL_VISIBLE|ALL_FROZEN for COPY FREEZE (XLH_INSERT_ALL_FROZEN_SET), else 0.
func (b *HeapMultiInsert) VMSet() uint8 {
	if b.Flags&XLHInsertAllFrozenSet != 0 {
		return VMAllVisible | VMAllFrozen
	}
	return 0
}

// HeapVisible is Heap2 VISIBLE (xl_heap_visible): it sets VM bits Flags for
// the heap page of block reference 1; block 0 is the VM page itself.
type HeapVisible struct {
	CutoffXid uint32
	Flags     uint8
}

func (*HeapVisible) isBody() {}

// Rmgr implements Body.
func (*HeapVisible) Rmgr() ID { return Heap2 }

// RecordName implements Body.
func (*HeapVisible) RecordName() string { return "VISIBLE" }

// String implements Body.
func (b *HeapVisible) String() string {
	return fmt.Sprintf("cutoff xid %d flags 0x%02X", b.CutoffXid, b.Flags)
}

func initName(name string, init bool) string {
	if init {
		return name + "+INIT"
	}
	return name
}

func decodeHeap(info uint8, data []byte) (Body, error) {
	op := info & HeapOpMask
	initPage := info&HeapInitPage != 0
	c := newCursor(Heap, info, data)
	var b Body
	switch op {
	case InfoHeapInsert:
		h := &HeapInsert{InitPage: initPage}
		h.read(c)
		b = h
	case InfoHeapDelete:
		h := &HeapDelete{}
		h.read(c)
		b = h
	case InfoHeapUpdate, InfoHeapHotUpdate:
		h := &HeapUpdate{Hot: op == InfoHeapHotUpdate, InitPage: initPage}
		h.read(c)
		b = h
	case InfoHeapLock:
		h := &HeapLock{}
		h.read(c)
		b = h
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}

func (h *HeapInsert) read(c *cursor) {
	h.OffNum = c.u16("offnum")
	h.Flags = c.u8("flags")
}

func (h *HeapDelete) read(c *cursor) {
	h.Xmax = c.u32("xmax")
	h.OffNum = c.u16("offnum")
	h.InfobitsSet = c.u8("infobits_set")
	h.Flags = c.u8("flags")
}

func (h *HeapUpdate) read(c *cursor) {
	h.OldXmax = c.u32("old_xmax")
	h.OldOffNum = c.u16("old_offnum")
	h.OldInfobitsSet = c.u8("old_infobits_set")
	h.Flags = c.u8("flags")
	h.NewXmax = c.u32("new_xmax")
	h.NewOffNum = c.u16("new_offnum")
}

func (h *HeapLock) read(c *cursor) {
	h.LockingXid = c.u32("locking_xid")
	h.OffNum = c.u16("offnum")
	h.InfobitsSet = c.u8("infobits_set")
	h.Flags = c.u8("flags")
}

// HeapVMClear is, for a Heap INSERT, DELETE, UPDATE, HOT_UPDATE or LOCK
// record, Decode followed by VMClearer.VMClear, without allocating the Body
// (these records are most of a write-heavy WAL stream): the same fields are
// read and fail the same way. ok is false for other Heap records.
func HeapVMClear(info uint8, data []byte) (block0Bits, oldPageBits uint8, ok bool, err error) {
	c := cursor{id: Heap, info: info, b: data}
	switch op := info & HeapOpMask; op {
	case InfoHeapInsert:
		var h HeapInsert
		h.read(&c)
		block0Bits, oldPageBits = h.VMClear()
	case InfoHeapDelete:
		var h HeapDelete
		h.read(&c)
		block0Bits, oldPageBits = h.VMClear()
	case InfoHeapUpdate, InfoHeapHotUpdate:
		var h HeapUpdate
		h.read(&c)
		block0Bits, oldPageBits = h.VMClear()
	case InfoHeapLock:
		var h HeapLock
		h.read(&c)
		block0Bits, oldPageBits = h.VMClear()
	default:
		return 0, 0, false, nil
	}
	if c.err != nil {
		return 0, 0, true, c.err
	}
	return block0Bits, oldPageBits, true, nil
}

func decodeHeap2(info uint8, data []byte) (Body, error) {
	op := info & HeapOpMask
	initPage := info&HeapInitPage != 0
	c := newCursor(Heap2, info, data)
	var b Body
	switch op {
	case InfoHeap2Visible:
		h := &HeapVisible{}
		h.CutoffXid = c.u32("cutoff_xid")
		h.Flags = c.u8("flags")
		b = h
	case InfoHeap2MultiInsert:
		h := &HeapMultiInsert{InitPage: initPage}
		h.Flags = c.u8("flags")
		c.skip(1, "pad")
		h.NTuples = c.u16("ntuples")
		if !initPage {
			n := c.checkCount("offsets", int64(h.NTuples), 2)
			if n > 0 && c.need(2*n, "offsets") {
				h.Offsets = make([]uint16, n)
				for i := range h.Offsets {
					h.Offsets[i] = c.u16("offset")
				}
			}
		}
		b = h
	case InfoHeap2LockUpdated:
		h := &HeapLockUpdated{}
		h.Xmax = c.u32("xmax")
		h.OffNum = c.u16("offnum")
		h.InfobitsSet = c.u8("infobits_set")
		h.Flags = c.u8("flags")
		b = h
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}
