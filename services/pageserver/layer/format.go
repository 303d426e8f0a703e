package layer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// Format constants (version 1). doc.go describes the layout byte by byte.
const (
	// BlockSize is the unit of every read and of the page cache.
	BlockSize = 8192
	// PayloadSize is the usable part of a block; the last 4 bytes hold its
	// CRC-32C.
	PayloadSize = BlockSize - 4
	// FormatVersion is the version written to, and the only one accepted
	// from, the header.
	FormatVersion = 1
	// MaxValueLen bounds one value (PostgreSQL's largest WAL record,
	// XLogRecordMaxSize, is 1020 MB).
	MaxValueLen = 1 << 30

	magic = 0x53544C59 // "STLY"

	entryHeaderLen = keyspace.Size + 8 + 4 // key, lsn, value length
	ikeyLen        = keyspace.Size + 8     // index key: key, lsn
	nodeHeaderLen  = 4                     // level u8, reserved u8, count u16
	nodeEntryLen   = ikeyLen + 8           // index key, u64 value
	// nodeCapacity is the number of entries in a full index node.
	nodeCapacity = (PayloadSize - nodeHeaderLen) / nodeEntryLen // 240
	maxDepth     = 8

	headerLen    = 156 // bytes covered by the header CRC
	hdrCRCOffset = headerLen
)

// castagnoli is read-only after package init.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Kind is a layer's kind.
type Kind uint8

// Layer kinds as stored in the header.
const (
	KindDelta Kind = 1
	KindImage Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindDelta:
		return "delta"
	case KindImage:
		return "image"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// LSNRange is a half-open LSN range [Start, End).
type LSNRange struct {
	Start, End lsn.LSN
}

// Contains reports whether l is in r.
func (r LSNRange) Contains(l lsn.LSN) bool { return l >= r.Start && l < r.End }

// IsEmpty reports whether r holds no LSN.
func (r LSNRange) IsEmpty() bool { return r.Start >= r.End }

func (r LSNRange) String() string { return r.Start.String() + "-" + r.End.String() }

// Summary is what the header of a layer file says about it.
type Summary struct {
	Kind     Kind
	Tenant   ids.TenantID
	Timeline ids.TimelineID
	// Keys is the declared key range [Start, End); every entry lies in it.
	Keys keyspace.Range
	// LSNs is the declared LSN range [Start, End) of a delta layer; for an
	// image layer it is [ImageLSN, ImageLSN+1).
	LSNs LSNRange
	// Entries counts (key, LSN, value) entries; DistinctKeys the keys.
	Entries      uint64
	DistinctKeys uint64
	// DataBytes is the length of the entry stream; MaxValueLen the longest
	// value in it.
	DataBytes   uint64
	MaxValueLen uint32
	// Blocks is the file size in blocks.
	Blocks uint32

	// Layout, checked on decode.
	dataBlocks  uint32
	indexStart  uint32
	indexBlocks uint32
	leafBlocks  uint32
	root        uint32
	depth       uint8
}

// ImageLSN is the LSN an image layer's values are valid at.
func (s Summary) ImageLSN() lsn.LSN { return s.LSNs.Start }

// FileName is the layer's canonical file name (see ParseFileName).
func (s Summary) FileName() string {
	if s.Kind == KindImage {
		return ImageFileName(s.Keys, s.ImageLSN())
	}
	return DeltaFileName(s.Keys, s.LSNs)
}

// indexShape returns the number of nodes per level (leaves first) of the
// index of n entries: leaves hold nodeCapacity entries, inner nodes
// nodeCapacity children; an empty layer has one empty leaf.
func indexShape(n uint64) (levels []uint64) {
	nodes := (n + nodeCapacity - 1) / nodeCapacity
	if nodes == 0 {
		nodes = 1
	}
	for {
		levels = append(levels, nodes)
		if nodes == 1 {
			return levels
		}
		nodes = (nodes + nodeCapacity - 1) / nodeCapacity
	}
}

// layout fills the layout fields of s from its counts. It reports false
// when the file would exceed the format's limits.
func (s *Summary) layout() bool {
	if s.DataBytes > math.MaxUint32*PayloadSize {
		return false
	}
	dataBlocks := (s.DataBytes + PayloadSize - 1) / PayloadSize
	levels := indexShape(s.Entries)
	var indexBlocks uint64
	for _, n := range levels {
		indexBlocks += n
	}
	total := 1 + dataBlocks + indexBlocks
	if total > math.MaxUint32 || len(levels) > maxDepth {
		return false
	}
	s.dataBlocks = uint32(dataBlocks)
	s.indexStart = uint32(1 + dataBlocks)
	s.indexBlocks = uint32(indexBlocks)
	s.leafBlocks = uint32(levels[0])
	s.root = uint32(total - 1)
	s.depth = uint8(len(levels))
	s.Blocks = uint32(total)
	return true
}

// encodeHeader writes s into the payload of block 0 (which must be zero).
func encodeHeader(p []byte, s *Summary) {
	be := binary.BigEndian
	be.PutUint32(p[0:], magic)
	be.PutUint16(p[4:], FormatVersion)
	p[6] = byte(s.Kind)
	p[7] = 0
	copy(p[8:24], s.Tenant[:])
	copy(p[24:40], s.Timeline[:])
	s.Keys.Start.Put(p[40:58])
	s.Keys.End.Put(p[58:76])
	be.PutUint64(p[76:], uint64(s.LSNs.Start))
	be.PutUint64(p[84:], uint64(s.LSNs.End))
	be.PutUint64(p[92:], s.Entries)
	be.PutUint64(p[100:], s.DistinctKeys)
	be.PutUint64(p[108:], s.DataBytes)
	be.PutUint32(p[116:], 1) // data start block
	be.PutUint32(p[120:], s.dataBlocks)
	be.PutUint32(p[124:], s.indexStart)
	be.PutUint32(p[128:], s.indexBlocks)
	be.PutUint32(p[132:], s.leafBlocks)
	be.PutUint32(p[136:], s.root)
	p[140] = s.depth
	be.PutUint32(p[144:], s.MaxValueLen)
	be.PutUint32(p[148:], s.Blocks)
	be.PutUint32(p[152:], 0) // reserved
	be.PutUint32(p[hdrCRCOffset:], crc32.Checksum(p[:headerLen], castagnoli))
}

// decodeHeader parses and validates the payload of block 0. Every field is
// checked against every other so that a header that passes describes a
// file this package could have written; the error text says which check
// failed (the caller wraps it into a CorruptError for block 0).
func decodeHeader(p []byte) (Summary, error) {
	var s Summary
	if len(p) < PayloadSize {
		return s, fmt.Errorf("header is %d bytes, want %d", len(p), PayloadSize)
	}
	be := binary.BigEndian
	if m := be.Uint32(p[0:]); m != magic {
		return s, fmt.Errorf("bad magic %#08x, want %#08x", m, magic)
	}
	if v := be.Uint16(p[4:]); v != FormatVersion {
		return s, fmt.Errorf("format version %d, this build reads only %d", v, FormatVersion)
	}
	if got, want := be.Uint32(p[hdrCRCOffset:]), crc32.Checksum(p[:headerLen], castagnoli); got != want {
		return s, fmt.Errorf("header checksum %#08x, computed %#08x", got, want)
	}
	for i := hdrCRCOffset + 4; i < PayloadSize; i++ {
		if p[i] != 0 {
			return s, fmt.Errorf("non-zero byte at header offset %d", i)
		}
	}
	s.Kind = Kind(p[6])
	if s.Kind != KindDelta && s.Kind != KindImage {
		return s, fmt.Errorf("unknown layer kind %d", p[6])
	}
	if p[7] != 0 || be.Uint32(p[152:]) != 0 || p[141] != 0 || p[142] != 0 || p[143] != 0 {
		return s, fmt.Errorf("reserved header bytes are not zero")
	}
	copy(s.Tenant[:], p[8:24])
	copy(s.Timeline[:], p[24:40])
	s.Keys.Start, _ = keyspace.FromBytes(p[40:58])
	s.Keys.End, _ = keyspace.FromBytes(p[58:76])
	s.LSNs = LSNRange{lsn.LSN(be.Uint64(p[76:])), lsn.LSN(be.Uint64(p[84:]))}
	s.Entries = be.Uint64(p[92:])
	s.DistinctKeys = be.Uint64(p[100:])
	s.DataBytes = be.Uint64(p[108:])
	s.MaxValueLen = be.Uint32(p[144:])
	s.Blocks = be.Uint32(p[148:])

	if s.Keys.IsEmpty() {
		return s, fmt.Errorf("empty key range %s", s.Keys)
	}
	if s.LSNs.IsEmpty() {
		return s, fmt.Errorf("empty LSN range %s", s.LSNs)
	}
	if s.Kind == KindImage && s.LSNs.End != s.LSNs.Start+1 {
		return s, fmt.Errorf("image layer LSN range %s is not one LSN", s.LSNs)
	}
	if s.DistinctKeys > s.Entries || (s.DistinctKeys == 0) != (s.Entries == 0) {
		return s, fmt.Errorf("%d distinct keys for %d entries", s.DistinctKeys, s.Entries)
	}
	if s.Kind == KindImage && s.DistinctKeys != s.Entries {
		return s, fmt.Errorf("image layer has %d entries for %d keys", s.Entries, s.DistinctKeys)
	}
	if s.MaxValueLen > MaxValueLen {
		return s, fmt.Errorf("longest value %d bytes exceeds the limit %d", s.MaxValueLen, MaxValueLen)
	}
	// Every entry takes at least its header; this also bounds Entries by
	// the file size.
	if s.Entries > s.DataBytes/entryHeaderLen {
		return s, fmt.Errorf("%d entries cannot fit %d data bytes", s.Entries, s.DataBytes)
	}
	if hi, lo := bits.Mul64(s.Entries, entryHeaderLen+uint64(s.MaxValueLen)); s.Entries > 0 && hi == 0 && s.DataBytes > lo {
		return s, fmt.Errorf("%d data bytes exceed %d entries of at most %d bytes", s.DataBytes, s.Entries, s.MaxValueLen)
	}
	if s.Entries == 0 && s.DataBytes != 0 {
		return s, fmt.Errorf("%d data bytes but no entries", s.DataBytes)
	}
	want := Summary{Entries: s.Entries, DataBytes: s.DataBytes}
	if !want.layout() {
		return s, fmt.Errorf("%d entries and %d data bytes exceed the format's limits", s.Entries, s.DataBytes)
	}
	got := [...]uint32{be.Uint32(p[116:]), be.Uint32(p[120:]), be.Uint32(p[124:]), be.Uint32(p[128:]), be.Uint32(p[132:]), be.Uint32(p[136:]), uint32(p[140]), s.Blocks}
	exp := [...]uint32{1, want.dataBlocks, want.indexStart, want.indexBlocks, want.leafBlocks, want.root, uint32(want.depth), want.Blocks}
	if got != exp {
		return s, fmt.Errorf("layout (data start, data blocks, index start, index blocks, leaf blocks, root, depth, total) %v does not match %d entries in %d data bytes, want %v", got, s.Entries, s.DataBytes, exp)
	}
	s.dataBlocks, s.indexStart, s.indexBlocks = want.dataBlocks, want.indexStart, want.indexBlocks
	s.leafBlocks, s.root, s.depth = want.leafBlocks, want.root, want.depth
	return s, nil
}

// blockCRC is the CRC-32C of a block's payload followed by its block number
// (big-endian), so a block that is stored at the wrong place fails too. To
// avoid an allocation per block it puts the block number in the checksum
// slot (blk[PayloadSize:]) and checksums the whole block; the caller owns
// blk and restores or overwrites the slot.
func blockCRC(blk []byte, blkno uint32) uint32 {
	binary.BigEndian.PutUint32(blk[PayloadSize:BlockSize], blkno)
	return crc32.Checksum(blk[:BlockSize], castagnoli)
}

// sealBlock stores the checksum of blk (BlockSize bytes) as block blkno.
func sealBlock(blk []byte, blkno uint32) {
	binary.BigEndian.PutUint32(blk[PayloadSize:], blockCRC(blk, blkno))
}

// verifyBlock checks the checksum of blk as block blkno; blk is unchanged.
func verifyBlock(blk []byte, blkno uint32) error {
	stored := binary.BigEndian.Uint32(blk[PayloadSize:])
	want := blockCRC(blk, blkno)
	binary.BigEndian.PutUint32(blk[PayloadSize:], stored)
	if stored != want {
		return fmt.Errorf("block checksum %#08x, computed %#08x", stored, want)
	}
	return nil
}

// An index key is the 18-byte key followed by the big-endian LSN, so byte
// order is (key, LSN) order.
type ikey [ikeyLen]byte

func makeIKey(k keyspace.Key, l lsn.LSN) ikey {
	var ik ikey
	k.Put(ik[:keyspace.Size])
	binary.BigEndian.PutUint64(ik[keyspace.Size:], uint64(l))
	return ik
}

func (ik *ikey) lsn() lsn.LSN { return lsn.LSN(binary.BigEndian.Uint64(ik[keyspace.Size:])) }

// node is a decoded view of an index block's payload; it aliases the block.
type node struct {
	level uint8
	count int
	p     []byte
}

// decodeNode checks an index node's header. Entries are read lazily.
func decodeNode(p []byte) (node, error) {
	if len(p) < PayloadSize {
		return node{}, fmt.Errorf("index node is %d bytes, want %d", len(p), PayloadSize)
	}
	n := node{level: p[0], count: int(binary.BigEndian.Uint16(p[2:])), p: p}
	if p[1] != 0 {
		return node{}, fmt.Errorf("index node reserved byte is %d", p[1])
	}
	if n.count > nodeCapacity {
		return node{}, fmt.Errorf("index node holds %d entries, capacity %d", n.count, nodeCapacity)
	}
	if n.level >= maxDepth {
		return node{}, fmt.Errorf("index node level %d", n.level)
	}
	return n, nil
}

func (n node) keyAt(i int) []byte {
	off := nodeHeaderLen + i*nodeEntryLen
	return n.p[off : off+ikeyLen]
}

func (n node) valueAt(i int) uint64 {
	off := nodeHeaderLen + i*nodeEntryLen + ikeyLen
	return binary.BigEndian.Uint64(n.p[off:])
}

// lowerBound returns the first i with keyAt(i) >= k, or count.
func (n node) lowerBound(k []byte) int {
	lo, hi := 0, n.count
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(n.keyAt(m), k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// indexEntry is one index entry: in a leaf, the (key, LSN) of an entry and
// its offset in the entry stream; in an inner node, the first index key of
// a child node and the child's block number.
type indexEntry struct {
	k   ikey
	val uint64
}

// encodeNode writes entries into an index block payload (zeroed by the
// caller).
func encodeNode(p []byte, level uint8, entries []indexEntry) {
	p[0] = level
	p[1] = 0
	binary.BigEndian.PutUint16(p[2:], uint16(len(entries)))
	for i := range entries {
		off := nodeHeaderLen + i*nodeEntryLen
		copy(p[off:], entries[i].k[:])
		binary.BigEndian.PutUint64(p[off+ikeyLen:], entries[i].val)
	}
}
