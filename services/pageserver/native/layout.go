package native

import "github.com/stratadb/strata/internal/pgtypes"

// SLRU and visibility-map geometry of PostgreSQL 15 (BLCKSZ 8192).
const (
	// SlruPagesPerSegment is SLRU_PAGES_PER_SEGMENT.
	SlruPagesPerSegment = 32

	// ClogXactsPerByte, ClogXactsPerPage: clog.c, 2 bits per xid.
	ClogXactsPerByte = 4
	ClogXactsPerPage = pgtypes.BLCKSZ * ClogXactsPerByte

	// Transaction status values stored in pg_xact (clog.h).
	ClogStatusInProgress  = 0x00
	ClogStatusCommitted   = 0x01
	ClogStatusAborted     = 0x02
	ClogStatusSubCommited = 0x03

	// MultiXactOffsetsPerPage is MULTIXACT_OFFSETS_PER_PAGE.
	MultiXactOffsetsPerPage = pgtypes.BLCKSZ / 4
	// Members are stored in groups of 4 flag bytes + 4 xids (multixact.c).
	multiXactMembersPerGroup = 4
	multiXactGroupSize       = 4 + 4*multiXactMembersPerGroup
	multiXactGroupsPerPage   = pgtypes.BLCKSZ / multiXactGroupSize
	// MultiXactMembersPerPage is MULTIXACT_MEMBERS_PER_PAGE (1636).
	MultiXactMembersPerPage = multiXactGroupsPerPage * multiXactMembersPerGroup
	// maxMultiXactStatus is MultiXactStatusUpdate.
	maxMultiXactStatus = 5

	// vmMapOffset is where the map starts: MAXALIGN(SizeOfPageHeaderData).
	vmMapOffset = 24
	// VMMapSize is MAPSIZE, the bytes of map on one VM page.
	VMMapSize = pgtypes.BLCKSZ - vmMapOffset
	// VMHeapBlocksPerByte and VMHeapBlocksPerPage: 2 bits per heap block.
	VMHeapBlocksPerByte = 4
	VMHeapBlocksPerPage = VMMapSize * VMHeapBlocksPerByte
	// VMValidBits is VISIBILITYMAP_VALID_BITS.
	VMValidBits = 0x03
)

// ClogPage returns the pg_xact page holding xid's status.
func ClogPage(xid uint32) uint32 { return xid / ClogXactsPerPage }

// MultiXactOffsetPage returns the pg_multixact/offsets page holding multi's
// offset.
func MultiXactOffsetPage(multi uint32) uint32 { return multi / MultiXactOffsetsPerPage }

// MultiXactMemberPage returns the pg_multixact/members page holding the
// member at offset.
func MultiXactMemberPage(offset uint32) uint32 { return offset / MultiXactMembersPerPage }

// VMBlock returns the visibility-map block that holds heapBlock's bits
// (HEAPBLK_TO_MAPBLOCK).
func VMBlock(heapBlock uint32) uint32 { return heapBlock / VMHeapBlocksPerPage }

// vmByteAndShift returns HEAPBLK_TO_MAPBYTE and HEAPBLK_TO_OFFSET.
func vmByteAndShift(heapBlock uint32) (int, uint) {
	inPage := heapBlock % VMHeapBlocksPerPage
	return int(inPage / VMHeapBlocksPerByte), uint(inPage%VMHeapBlocksPerByte) * 2
}

// memberPositions returns the flag byte and xid positions of the member at
// offset within its page (MXOffsetToFlagsOffset, MXOffsetToMemberOffset).
func memberPositions(offset uint32) (flagByte, xidOff int) {
	group := int(offset/multiXactMembersPerGroup) % multiXactGroupsPerPage
	inGroup := int(offset % multiXactMembersPerGroup)
	flagByte = group*multiXactGroupSize + inGroup
	xidOff = group*multiXactGroupSize + 4 + inGroup*4
	return flagByte, xidOff
}
