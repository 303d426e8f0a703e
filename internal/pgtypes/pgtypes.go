package pgtypes

import (
	"encoding/binary"
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
)

// Oid is a PostgreSQL object identifier.
type Oid uint32

// Well-known OIDs and sizes of PostgreSQL 15.
const (
	InvalidOid Oid = 0
	// DefaultTablespaceOid is pg_default (base/).
	DefaultTablespaceOid Oid = 1663
	// GlobalTablespaceOid is pg_global (global/).
	GlobalTablespaceOid Oid = 1664

	// BLCKSZ is the size of a relation page and of an SLRU page.
	BLCKSZ = 8192
	// RelSegSize is RELSEG_SIZE: blocks per 1 GiB relation segment file.
	RelSegSize = 131072
	// WALSegSize is the WAL segment size Strata supports (16 MiB).
	WALSegSize = 16 << 20
	// SLRUPagesPerSegment is SLRU_PAGES_PER_SEGMENT.
	SLRUPagesPerSegment = 32
	// InvalidBlockNumber is 0xFFFFFFFF.
	InvalidBlockNumber uint32 = 0xFFFFFFFF
	// MaxBlockNumber is the largest valid block number.
	MaxBlockNumber uint32 = 0xFFFFFFFE

	// PGMajorVersion is the only major version Strata supports.
	PGMajorVersion = 15
	// CatalogVersion is PG15's catversion.
	CatalogVersion = 202209061
)

// ForkNumber identifies a relation fork.
type ForkNumber uint8

// Forks of a relation.
const (
	MainForkNum          ForkNumber = 0
	FSMForkNum           ForkNumber = 1
	VisibilityMapForkNum ForkNumber = 2
	InitForkNum          ForkNumber = 3
	// MaxForkNum is the highest valid fork number.
	MaxForkNum = InitForkNum
)

// String returns the fork's name as PostgreSQL's forkNames[] spells it.
func (f ForkNumber) String() string {
	switch f {
	case MainForkNum:
		return "main"
	case FSMForkNum:
		return "fsm"
	case VisibilityMapForkNum:
		return "vm"
	case InitForkNum:
		return "init"
	}
	return fmt.Sprintf("fork%d", uint8(f))
}

// FileSuffix returns the relation file suffix of the fork: "" for main,
// "_fsm", "_vm", "_init".
func (f ForkNumber) FileSuffix() string {
	if f == MainForkNum {
		return ""
	}
	return "_" + f.String()
}

// Valid reports whether f is a fork PostgreSQL 15 knows.
func (f ForkNumber) Valid() bool { return f <= MaxForkNum }

// RelFileNode names a relation's files (spcNode, dbNode, relNode).
type RelFileNode struct {
	SpcNode Oid
	DbNode  Oid
	RelNode Oid
}

// String formats the node as pg_waldump does: "spc/db/rel".
func (r RelFileNode) String() string {
	return fmt.Sprintf("%d/%d/%d", r.SpcNode, r.DbNode, r.RelNode)
}

// RelTag names one fork of a relation.
type RelTag struct {
	SpcNode Oid
	DbNode  Oid
	RelNode Oid
	ForkNum ForkNumber
}

// Tag returns the RelTag of fork f of r.
func (r RelFileNode) Tag(f ForkNumber) RelTag {
	return RelTag{SpcNode: r.SpcNode, DbNode: r.DbNode, RelNode: r.RelNode, ForkNum: f}
}

// Node returns the RelFileNode of the tag.
func (t RelTag) Node() RelFileNode {
	return RelFileNode{SpcNode: t.SpcNode, DbNode: t.DbNode, RelNode: t.RelNode}
}

// String formats the tag as "spc/db/rel" with a "_fork" suffix for non-main forks.
func (t RelTag) String() string {
	return t.Node().String() + t.ForkNum.FileSuffix()
}

// Path returns the relation file path of the first segment relative to the
// data directory, as PostgreSQL's relpathperm would: base/<db>/<rel>[_fork],
// global/<rel>[_fork] or pg_tblspc/<spc>/PG_15_202209061/<db>/<rel>[_fork].
func (t RelTag) Path() string {
	name := fmt.Sprintf("%d%s", t.RelNode, t.ForkNum.FileSuffix())
	switch t.SpcNode {
	case GlobalTablespaceOid:
		return "global/" + name
	case DefaultTablespaceOid:
		return fmt.Sprintf("base/%d/%s", t.DbNode, name)
	default:
		return fmt.Sprintf("pg_tblspc/%d/PG_%d_%d/%d/%s", t.SpcNode, PGMajorVersion, CatalogVersion, t.DbNode, name)
	}
}

// SegmentPath returns the path of relation segment seg (0 = no suffix).
func (t RelTag) SegmentPath(seg uint32) string {
	if seg == 0 {
		return t.Path()
	}
	return fmt.Sprintf("%s.%d", t.Path(), seg)
}

// BufferTag names one block of one fork of a relation.
type BufferTag struct {
	Rel      RelTag
	BlockNum uint32
}

// String formats the tag as "spc/db/rel[_fork] blk N".
func (b BufferTag) String() string {
	return fmt.Sprintf("%s blk %d", b.Rel, b.BlockNum)
}

// Standard page header (PageHeaderData) offsets.
const (
	PageHeaderSize        = 24
	pdLSNOff              = 0
	pdChecksumOff         = 8
	pdFlagsOff            = 10
	pdLowerOff            = 12
	pdUpperOff            = 14
	pdSpecialOff          = 16
	pdPageSizeVersionOff  = 18
	pdPruneXidOff         = 20
	PageLayoutVersion     = 4
	PageSizeVersion       = BLCKSZ | PageLayoutVersion
	PageFlagHasFreeLines  = 0x1
	PageFlagPageFull      = 0x2
	PageFlagAllVisible    = 0x4
	PageFlagValidFlagBits = 0x7
)

// PageGetLSN returns pd_lsn (high half first on disk).
func PageGetLSN(page []byte) lsn.LSN {
	hi := binary.LittleEndian.Uint32(page[pdLSNOff:])
	lo := binary.LittleEndian.Uint32(page[pdLSNOff+4:])
	return lsn.LSN(uint64(hi)<<32 | uint64(lo))
}

// PageSetLSN sets pd_lsn.
func PageSetLSN(page []byte, l lsn.LSN) {
	binary.LittleEndian.PutUint32(page[pdLSNOff:], uint32(uint64(l)>>32))
	binary.LittleEndian.PutUint32(page[pdLSNOff+4:], uint32(l))
}

// PageIsNew reports whether the page is uninitialized (pd_upper == 0), as
// PostgreSQL's PageIsNew does.
func PageIsNew(page []byte) bool {
	return binary.LittleEndian.Uint16(page[pdUpperOff:]) == 0
}

// PageHeader is a decoded PageHeaderData.
type PageHeader struct {
	LSN             lsn.LSN
	Checksum        uint16
	Flags           uint16
	Lower           uint16
	Upper           uint16
	Special         uint16
	PageSizeVersion uint16
	PruneXid        uint32
}

// ParsePageHeader decodes the first 24 bytes of page. It does not validate.
func ParsePageHeader(page []byte) (PageHeader, error) {
	if len(page) < PageHeaderSize {
		return PageHeader{}, fmt.Errorf("pgtypes: page of %d bytes is shorter than its %d-byte header", len(page), PageHeaderSize)
	}
	le := binary.LittleEndian
	return PageHeader{
		LSN:             PageGetLSN(page),
		Checksum:        le.Uint16(page[pdChecksumOff:]),
		Flags:           le.Uint16(page[pdFlagsOff:]),
		Lower:           le.Uint16(page[pdLowerOff:]),
		Upper:           le.Uint16(page[pdUpperOff:]),
		Special:         le.Uint16(page[pdSpecialOff:]),
		PageSizeVersion: le.Uint16(page[pdPageSizeVersionOff:]),
		PruneXid:        le.Uint32(page[pdPruneXidOff:]),
	}, nil
}

// Validate applies PostgreSQL's PageIsVerified header checks (without the
// checksum): flags, lower/upper/special ordering and the size/version word.
func (h PageHeader) Validate() error {
	switch {
	case h.Flags&^PageFlagValidFlagBits != 0:
		return fmt.Errorf("pgtypes: page header has unknown flag bits 0x%x", h.Flags)
	case h.Lower < PageHeaderSize || h.Lower > h.Upper || h.Upper > h.Special || h.Special > BLCKSZ:
		return fmt.Errorf("pgtypes: page header has lower=%d upper=%d special=%d out of order", h.Lower, h.Upper, h.Special)
	case h.PageSizeVersion != PageSizeVersion:
		return fmt.Errorf("pgtypes: page header has size/version 0x%x, want 0x%x", h.PageSizeVersion, PageSizeVersion)
	}
	return nil
}
