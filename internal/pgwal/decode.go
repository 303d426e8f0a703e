package pgwal

import (
	"encoding/binary"
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

// Record layout constants of PostgreSQL 15 (access/xlogrecord.h).
const (
	// MaxBlockID is XLR_MAX_BLOCK_ID.
	MaxBlockID = 32

	blockIDDataShort   = 255 // XLR_BLOCK_ID_DATA_SHORT
	blockIDDataLong    = 254 // XLR_BLOCK_ID_DATA_LONG
	blockIDOrigin      = 253 // XLR_BLOCK_ID_ORIGIN
	blockIDToplevelXid = 252 // XLR_BLOCK_ID_TOPLEVEL_XID

	// Fork and flag bits of XLogRecordBlockHeader.fork_flags.
	BkpBlockForkMask = 0x0F
	BkpBlockHasImage = 0x10
	BkpBlockHasData  = 0x20
	BkpBlockWillInit = 0x40
	BkpBlockSameRel  = 0x80

	// Bits of XLogRecordBlockImageHeader.bimg_info.
	BkpImageHasHole      = 0x01
	BkpImageApply        = 0x02
	BkpImageCompressPGLZ = 0x04
	BkpImageCompressLZ4  = 0x08
	BkpImageCompressZSTD = 0x10
	bkpImageCompressed   = BkpImageCompressPGLZ | BkpImageCompressLZ4 | BkpImageCompressZSTD

	// XLR_INFO_MASK: the low nibble of xl_info belongs to the WAL machinery.
	InfoMask = 0x0F
	// XLR_SPECIAL_REL_UPDATE and XLR_CHECK_CONSISTENCY.
	InfoSpecialRelUpdate  = 0x01
	InfoCheckConsistency  = 0x02
	blockImageHeaderSize  = 5 // SizeOfXLogRecordBlockImageHeader
	blockHeaderSize       = 4 // SizeOfXLogRecordBlockHeader
	relFileNodeSize       = 12
	noOrigin              = 0 // InvalidRepOriginId
	invalidTransactionID  = 0
	blockNumberSize       = 4
	compressHeaderSize    = 2
	shortDataHeaderSize   = 2
	longDataHeaderSize    = 5
	originHeaderSize      = 3
	toplevelXidHeaderSize = 5
)

// Compression is the method a full-page image was compressed with.
type Compression uint8

// Compression methods of PostgreSQL 15's wal_compression.
const (
	CompressionNone Compression = iota
	CompressionPGLZ
	CompressionLZ4
	CompressionZSTD
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionPGLZ:
		return "pglz"
	case CompressionLZ4:
		return "lz4"
	case CompressionZSTD:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// BlockRef is one block reference of a record.
type BlockRef struct {
	// ID is the block reference id (0..32) that redo routines use.
	ID uint8
	// ForkFlags is the raw fork_flags byte: fork number in the low nibble,
	// BkpBlock* flags in the high one.
	ForkFlags uint8
	Rel       pgtypes.RelFileNode
	Fork      pgtypes.ForkNumber
	Block     uint32

	// Image fields, meaningful when HasImage.
	ImageLen   uint16 // bimg_len: bytes stored in the record
	HoleOffset uint16
	HoleLength uint16
	ImageInfo  uint8 // bimg_info
	// Image is the stored (possibly compressed) image; it aliases the raw record.
	Image []byte

	// Data is the block's rmgr data; it aliases the raw record.
	Data []byte
}

// HasImage reports BKPBLOCK_HAS_IMAGE.
func (b *BlockRef) HasImage() bool { return b.ForkFlags&BkpBlockHasImage != 0 }

// HasData reports BKPBLOCK_HAS_DATA.
func (b *BlockRef) HasData() bool { return b.ForkFlags&BkpBlockHasData != 0 }

// WillInit reports BKPBLOCK_WILL_INIT: redo rebuilds the page from nothing.
func (b *BlockRef) WillInit() bool { return b.ForkFlags&BkpBlockWillInit != 0 }

// ApplyImage reports BKPIMAGE_APPLY: redo restores the image instead of
// replaying the record on the block. An image without it exists only for
// wal_consistency_checking.
func (b *BlockRef) ApplyImage() bool { return b.HasImage() && b.ImageInfo&BkpImageApply != 0 }

// Compression returns how the image is compressed.
func (b *BlockRef) Compression() Compression {
	switch {
	case b.ImageInfo&BkpImageCompressPGLZ != 0:
		return CompressionPGLZ
	case b.ImageInfo&BkpImageCompressLZ4 != 0:
		return CompressionLZ4
	case b.ImageInfo&BkpImageCompressZSTD != 0:
		return CompressionZSTD
	}
	return CompressionNone
}

// Tag returns the buffer tag of the referenced block.
func (b *BlockRef) Tag() pgtypes.BufferTag {
	return pgtypes.BufferTag{Rel: b.Rel.Tag(b.Fork), BlockNum: b.Block}
}

// DecodedRecord is a record split into its parts. Slices alias the raw
// record given to DecodeRecord. A DecodedRecord may be reused across calls;
// its Blocks slice keeps its capacity.
type DecodedRecord struct {
	// LSN and EndLSN are set by Record.Decode; DecodeRecord leaves them zero.
	LSN    lsn.LSN
	EndLSN lsn.LSN

	TotalLen uint32 // xl_tot_len
	Xid      uint32 // xl_xid
	Prev     lsn.LSN
	Info     uint8 // xl_info
	RmID     rmgr.ID
	CRC      uint32

	// Blocks holds the block references in ascending ID order; IDs may have
	// gaps.
	Blocks []BlockRef

	// Origin is the replication origin (XLR_BLOCK_ID_ORIGIN), 0 if none.
	Origin uint16
	// ToplevelXid is the top-level transaction id of a subtransaction's first
	// record (XLR_BLOCK_ID_TOPLEVEL_XID), 0 if none.
	ToplevelXid uint32

	// MainData is the record's main data, nil if none.
	MainData []byte
	// Raw is the whole record.
	Raw []byte
}

// RmgrInfo returns xl_info without the WAL machinery's bits (xl_info & 0xF0).
func (r *DecodedRecord) RmgrInfo() uint8 { return r.Info &^ InfoMask }

// Block returns the block reference with the given id, or nil.
func (r *DecodedRecord) Block(id uint8) *BlockRef {
	for i := range r.Blocks {
		if r.Blocks[i].ID == id {
			return &r.Blocks[i]
		}
	}
	return nil
}

// MaxBlockID returns the highest block id in use, or -1.
func (r *DecodedRecord) MaxBlockID() int {
	if len(r.Blocks) == 0 {
		return -1
	}
	return int(r.Blocks[len(r.Blocks)-1].ID)
}

// FPILen returns the bytes of full-page images stored in the record.
func (r *DecodedRecord) FPILen() uint32 {
	var n uint32
	for i := range r.Blocks {
		if r.Blocks[i].HasImage() {
			n += uint32(r.Blocks[i].ImageLen)
		}
	}
	return n
}

// RecLen returns pg_waldump's "rec" length: xl_tot_len without images.
func (r *DecodedRecord) RecLen() uint32 { return r.TotalLen - r.FPILen() }

// Decode decodes r into into, setting its LSNs; errors name the record's LSN.
func (r Record) Decode(into *DecodedRecord) error {
	if err := DecodeRecord(r.Raw, into); err != nil {
		return fmt.Errorf("record at %s: %w", r.LSN, err)
	}
	into.LSN, into.EndLSN = r.LSN, r.EndLSN
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// DecodeRecord splits raw, exactly one record of xl_tot_len bytes, into
// into, as PostgreSQL 15's DecodeXLogRecord does, with the same checks. It
// does not verify the CRC (the reader does). Errors wrap ErrCorrupt.
func DecodeRecord(raw []byte, into *DecodedRecord) error {
	blocks := into.Blocks[:0]
	*into = DecodedRecord{Blocks: blocks, Raw: raw}
	if len(raw) < RecordHeaderSize {
		return corrupt("record of %d bytes is shorter than its %d-byte header", len(raw), RecordHeaderSize)
	}
	le := binary.LittleEndian
	into.TotalLen = le.Uint32(raw[0:])
	into.Xid = le.Uint32(raw[4:])
	into.Prev = lsn.LSN(le.Uint64(raw[8:]))
	into.Info = raw[16]
	into.RmID = rmgr.ID(raw[17])
	into.CRC = le.Uint32(raw[20:])
	if uint64(into.TotalLen) != uint64(len(raw)) {
		return corrupt("xl_tot_len %d does not match the %d bytes of the record", into.TotalLen, len(raw))
	}

	pos := RecordHeaderSize
	remaining := uint64(len(raw) - RecordHeaderSize)
	var dataTotal, mainLen uint64
	haveRel := false
	var dataLens [MaxBlockID + 1]uint16 // by index in into.Blocks
	maxID := -1
	need := func(n int) bool { return uint64(n) <= remaining }
	take := func(n int) []byte {
		b := raw[pos : pos+n]
		pos += n
		remaining -= uint64(n)
		return b
	}
	short := func() error {
		return corrupt("record with invalid length: header at offset %d runs past xl_tot_len %d", pos, into.TotalLen)
	}
loop:
	for remaining > dataTotal {
		if !need(1) {
			return short()
		}
		id := take(1)[0]
		switch {
		case id == blockIDDataShort:
			if !need(1) {
				return short()
			}
			mainLen = uint64(take(1)[0])
			dataTotal += mainLen
			break loop // by convention the main data header is last
		case id == blockIDDataLong:
			if !need(4) {
				return short()
			}
			mainLen = uint64(le.Uint32(take(4)))
			dataTotal += mainLen
			break loop
		case id == blockIDOrigin:
			if !need(2) {
				return short()
			}
			into.Origin = le.Uint16(take(2))
		case id == blockIDToplevelXid:
			if !need(4) {
				return short()
			}
			into.ToplevelXid = le.Uint32(take(4))
		case id <= MaxBlockID:
			if int(id) <= maxID {
				return corrupt("out-of-order block_id %d", id)
			}
			maxID = int(id)
			if !need(3) {
				return short()
			}
			var b BlockRef
			b.ID = id
			b.ForkFlags = take(1)[0]
			b.Fork = pgtypes.ForkNumber(b.ForkFlags & BkpBlockForkMask)
			dataLen := le.Uint16(take(2))
			if b.HasData() && dataLen == 0 {
				return corrupt("BKPBLOCK_HAS_DATA set, but no data included (block %d)", id)
			}
			if !b.HasData() && dataLen != 0 {
				return corrupt("BKPBLOCK_HAS_DATA not set, but data length is %d (block %d)", dataLen, id)
			}
			dataTotal += uint64(dataLen)
			dataLens[len(into.Blocks)] = dataLen
			if b.HasImage() {
				if !need(blockImageHeaderSize) {
					return short()
				}
				h := take(blockImageHeaderSize)
				b.ImageLen = le.Uint16(h[0:])
				b.HoleOffset = le.Uint16(h[2:])
				b.ImageInfo = h[4]
				compressed := b.ImageInfo&bkpImageCompressed != 0
				if compressed {
					if b.ImageInfo&BkpImageHasHole != 0 {
						if !need(compressHeaderSize) {
							return short()
						}
						b.HoleLength = le.Uint16(take(compressHeaderSize))
					}
				} else {
					if b.ImageLen > pgtypes.BLCKSZ {
						return corrupt("block image length %d is larger than a page (block %d)", b.ImageLen, id)
					}
					b.HoleLength = pgtypes.BLCKSZ - b.ImageLen
				}
				dataTotal += uint64(b.ImageLen)
				hasHole := b.ImageInfo&BkpImageHasHole != 0
				switch {
				case hasHole && (b.HoleOffset == 0 || b.HoleLength == 0 || b.ImageLen == pgtypes.BLCKSZ):
					return corrupt("BKPIMAGE_HAS_HOLE set, but hole offset %d length %d block image length %d (block %d)", b.HoleOffset, b.HoleLength, b.ImageLen, id)
				case !hasHole && (b.HoleOffset != 0 || b.HoleLength != 0):
					return corrupt("BKPIMAGE_HAS_HOLE not set, but hole offset %d length %d (block %d)", b.HoleOffset, b.HoleLength, id)
				case compressed && b.ImageLen == pgtypes.BLCKSZ:
					return corrupt("BKPIMAGE_COMPRESSED set, but block image length %d (block %d)", b.ImageLen, id)
				case !hasHole && !compressed && b.ImageLen != pgtypes.BLCKSZ:
					return corrupt("neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block image length is %d (block %d)", b.ImageLen, id)
				case uint32(b.HoleOffset)+uint32(b.HoleLength) > pgtypes.BLCKSZ:
					return corrupt("hole offset %d length %d runs past the page (block %d)", b.HoleOffset, b.HoleLength, id)
				}
			}
			if b.ForkFlags&BkpBlockSameRel == 0 {
				if !need(relFileNodeSize) {
					return short()
				}
				h := take(relFileNodeSize)
				b.Rel = pgtypes.RelFileNode{
					SpcNode: pgtypes.Oid(le.Uint32(h[0:])),
					DbNode:  pgtypes.Oid(le.Uint32(h[4:])),
					RelNode: pgtypes.Oid(le.Uint32(h[8:])),
				}
				haveRel = true
			} else {
				if !haveRel {
					return corrupt("BKPBLOCK_SAME_REL set but no previous rel (block %d)", id)
				}
				b.Rel = into.Blocks[len(into.Blocks)-1].Rel
			}
			if !need(blockNumberSize) {
				return short()
			}
			b.Block = le.Uint32(take(blockNumberSize))
			into.Blocks = append(into.Blocks, b)
		default:
			return corrupt("invalid block_id %d", id)
		}
	}
	if remaining != dataTotal {
		return corrupt("record with invalid length: %d bytes of payload declared, %d present", dataTotal, remaining)
	}
	for i := range into.Blocks {
		b := &into.Blocks[i]
		if b.HasImage() {
			b.Image = raw[pos : pos+int(b.ImageLen) : pos+int(b.ImageLen)]
			pos += int(b.ImageLen)
		}
		if n := int(dataLens[i]); n > 0 {
			b.Data = raw[pos : pos+n : pos+n]
			pos += n
		}
	}
	if mainLen > 0 {
		into.MainData = raw[pos : pos+int(mainLen) : pos+int(mainLen)]
	}
	return nil
}
