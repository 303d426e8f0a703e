package native

import (
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// Apply applies the native record (subtype, payload) to page, the 8 KB
// version of key just before the record. recordLSN is the LSN the record is
// stored at; it is used only in error messages, because none of these
// changes sets a page LSN in PostgreSQL. Errors wrap ErrCorrupt,
// ErrUnknownSubtype, ErrWrongPage or ErrBadPage; page is left unchanged on
// error.
func Apply(subtype uint8, payload, page []byte, key keyspace.Key, recordLSN lsn.LSN) error {
	if len(page) != pgtypes.BLCKSZ {
		return fmt.Errorf("%w: %d bytes for %s at %s", ErrBadPage, len(page), key, recordLSN)
	}
	var err error
	switch subtype {
	case SubtypeClearVisibilityMapFlags:
		err = applyClearVM(payload, page, key)
	case SubtypeTruncateVisibilityMap:
		err = applyTruncateVM(payload, page, key)
	case SubtypeClogSetCommitted:
		var xids []uint32
		if _, xids, err = ParseClogCommitted(payload); err == nil {
			err = setClog(page, key, xids, ClogStatusCommitted)
		}
	case SubtypeClogSetAborted:
		var xids []uint32
		if xids, err = ParseClogAborted(payload); err == nil {
			err = setClog(page, key, xids, ClogStatusAborted)
		}
	case SubtypeMultixactOffsetCreate:
		err = applyOffsets(payload, page, key)
	case SubtypeMultixactMembersCreate:
		err = applyMembers(payload, page, key)
	default:
		err = fmt.Errorf("%w: %d", ErrUnknownSubtype, subtype)
	}
	if err != nil {
		return fmt.Errorf("native: applying %s to %s at %s: %w", SubtypeName(subtype), key, recordLSN, err)
	}
	return nil
}

// slruPage returns the SLRU page number a key addresses, checking its kind.
func slruPage(key keyspace.Key, kind keyspace.SlruKind) (uint32, error) {
	if !key.IsSlruBlock() || keyspace.SlruKind(key.F2) != kind {
		return 0, fmt.Errorf("%w: key %s is not a %s block", ErrWrongPage, key, kind.Dir())
	}
	if key.F6 >= SlruPagesPerSegment {
		return 0, fmt.Errorf("%w: SLRU block %d beyond a segment", ErrWrongPage, key.F6)
	}
	return key.F4*SlruPagesPerSegment + key.F6, nil
}

// vmBlockOf returns the VM block a key addresses, checking its fork.
func vmBlockOf(key keyspace.Key) (uint32, error) {
	if !key.IsRelBlock() || pgtypes.ForkNumber(key.F5) != pgtypes.VisibilityMapForkNum {
		return 0, fmt.Errorf("%w: key %s is not a visibility-map block", ErrWrongPage, key)
	}
	return key.F6, nil
}

func setClog(page []byte, key keyspace.Key, xids []uint32, status uint8) error {
	pageno, err := slruPage(key, keyspace.SlruClog)
	if err != nil {
		return err
	}
	for _, xid := range xids {
		if ClogPage(xid) != pageno {
			return fmt.Errorf("%w: xid %d is on pg_xact page %d, not %d", ErrWrongPage, xid, ClogPage(xid), pageno)
		}
	}
	// As clog.c's TransactionIdSetStatusBit: the lowest xid sits in the
	// low-order bits of its byte. Sub-committed (3) is a transient state on
	// the primary; redo writes the final state directly.
	for _, xid := range xids {
		inPage := xid % ClogXactsPerPage
		b := inPage / ClogXactsPerByte
		shift := (inPage % ClogXactsPerByte) * 2
		page[b] = page[b]&^(0x03<<shift) | status<<shift
	}
	return nil
}

func applyOffsets(payload, page []byte, key keyspace.Key) error {
	entries, err := ParseMultixactOffsets(payload)
	if err != nil {
		return err
	}
	pageno, err := slruPage(key, keyspace.SlruMultiXactOffsets)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if MultiXactOffsetPage(e.Multi) != pageno {
			return fmt.Errorf("%w: multixact %d is on offsets page %d, not %d", ErrWrongPage, e.Multi, MultiXactOffsetPage(e.Multi), pageno)
		}
	}
	for _, e := range entries {
		le.PutUint32(page[(e.Multi%MultiXactOffsetsPerPage)*4:], e.Offset)
	}
	return nil
}

func applyMembers(payload, page []byte, key keyspace.Key) error {
	first, members, err := ParseMultixactMembers(payload)
	if err != nil {
		return err
	}
	pageno, err := slruPage(key, keyspace.SlruMultiXactMembers)
	if err != nil {
		return err
	}
	last := first + uint32(len(members)) - 1
	if MultiXactMemberPage(first) != pageno || MultiXactMemberPage(last) != pageno || last < first {
		return fmt.Errorf("%w: members at offsets %d..%d are not all on members page %d", ErrWrongPage, first, last, pageno)
	}
	for i, m := range members {
		flagByte, xidOff := memberPositions(first + uint32(i))
		// The flag word holds 8 bits per member; the status uses the low
		// bits of its byte (MXACT_MEMBER_BITS_PER_XACT = 8).
		page[flagByte] = m.Status
		le.PutUint32(page[xidOff:], m.Xid)
	}
	return nil
}

func applyClearVM(payload, page []byte, key keyspace.Key) error {
	clears, err := ParseClearVM(payload)
	if err != nil {
		return err
	}
	blk, err := vmBlockOf(key)
	if err != nil {
		return err
	}
	for _, c := range clears {
		if VMBlock(c.HeapBlock) != blk {
			return fmt.Errorf("%w: heap block %d is on VM block %d, not %d", ErrWrongPage, c.HeapBlock, VMBlock(c.HeapBlock), blk)
		}
	}
	for _, c := range clears {
		b, shift := vmByteAndShift(c.HeapBlock)
		page[vmMapOffset+b] &^= c.Flags << shift
	}
	return nil
}

func applyTruncateVM(payload, page []byte, key keyspace.Key) error {
	heapBlocks, err := ParseTruncateVM(payload)
	if err != nil {
		return err
	}
	blk, err := vmBlockOf(key)
	if err != nil {
		return err
	}
	truncByte, truncShift := vmByteAndShift(heapBlocks)
	if VMBlock(heapBlocks) != blk || (truncByte == 0 && truncShift == 0) {
		// A cut on a page boundary removes whole pages; the ingest never
		// emits this record for it.
		return fmt.Errorf("%w: truncation to %d heap blocks does not cut VM block %d", ErrWrongPage, heapBlocks, blk)
	}
	m := page[vmMapOffset:]
	m[truncByte] &= byte(1)<<truncShift - 1
	clear(m[truncByte+1:])
	return nil
}
