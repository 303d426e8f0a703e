package keyspace

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/stratadb/strata/internal/pgtypes"
)

// Size is the length of a serialized key.
const Size = 18

// Kinds (field1).
const (
	KindRel        uint8 = 0x00
	KindSLRU       uint8 = 0x01
	KindTwoPhase   uint8 = 0x02
	KindControl    uint8 = 0x03
	sizeBlock            = 0xFFFFFFFF
	relDirField6         = 1
	checkpointF6         = 1
	slruBlocksF3         = 1
	slruDirField3        = 0
	controlFileF6        = 0
	relmapFileF6         = 0
	dbDirAllFields       = 0
)

// SlruKind names an SLRU directory.
type SlruKind uint8

// SLRU kinds, numbered as Neon's pagestream numbers them.
const (
	SlruClog             SlruKind = 0
	SlruMultiXactMembers SlruKind = 1
	SlruMultiXactOffsets SlruKind = 2
)

// Dir returns the SLRU's directory in a data directory.
func (k SlruKind) Dir() string {
	switch k {
	case SlruClog:
		return "pg_xact"
	case SlruMultiXactMembers:
		return "pg_multixact/members"
	case SlruMultiXactOffsets:
		return "pg_multixact/offsets"
	}
	return fmt.Sprintf("slru%d", uint8(k))
}

// Valid reports whether k is a known SLRU kind.
func (k SlruKind) Valid() bool { return k <= SlruMultiXactOffsets }

// Key is an 18-byte pageserver key as six fields.
type Key struct {
	F1 uint8
	F2 uint32
	F3 uint32
	F4 uint32
	F5 uint8
	F6 uint32
}

// Min and Max bound the key space.
var (
	Min = Key{}
	Max = Key{0xFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFF, 0xFFFFFFFF}
)

// Compare orders keys by their six fields (the byte order of Bytes).
func (k Key) Compare(o Key) int {
	switch {
	case k.F1 != o.F1:
		return cmp(uint32(k.F1), uint32(o.F1))
	case k.F2 != o.F2:
		return cmp(k.F2, o.F2)
	case k.F3 != o.F3:
		return cmp(k.F3, o.F3)
	case k.F4 != o.F4:
		return cmp(k.F4, o.F4)
	case k.F5 != o.F5:
		return cmp(uint32(k.F5), uint32(o.F5))
	default:
		return cmp(k.F6, o.F6)
	}
}

func cmp(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Less reports k < o.
func (k Key) Less(o Key) bool { return k.Compare(o) < 0 }

// Next returns the smallest key greater than k (Max stays Max).
func (k Key) Next() Key {
	if k == Max {
		return k
	}
	n := k
	n.F6++
	if n.F6 != 0 {
		return n
	}
	n.F5++
	if n.F5 != 0 {
		return n
	}
	n.F4++
	if n.F4 != 0 {
		return n
	}
	n.F3++
	if n.F3 != 0 {
		return n
	}
	n.F2++
	if n.F2 != 0 {
		return n
	}
	n.F1++
	return n
}

// Put writes the 18-byte big-endian form into dst[:Size].
func (k Key) Put(dst []byte) {
	_ = dst[Size-1]
	dst[0] = k.F1
	binary.BigEndian.PutUint32(dst[1:], k.F2)
	binary.BigEndian.PutUint32(dst[5:], k.F3)
	binary.BigEndian.PutUint32(dst[9:], k.F4)
	dst[13] = k.F5
	binary.BigEndian.PutUint32(dst[14:], k.F6)
}

// Bytes returns the 18-byte form.
func (k Key) Bytes() [Size]byte {
	var b [Size]byte
	k.Put(b[:])
	return b
}

// FromBytes decodes the 18-byte form.
func FromBytes(b []byte) (Key, error) {
	if len(b) != Size {
		return Key{}, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(b), Size)
	}
	return Key{
		F1: b[0],
		F2: binary.BigEndian.Uint32(b[1:]),
		F3: binary.BigEndian.Uint32(b[5:]),
		F4: binary.BigEndian.Uint32(b[9:]),
		F5: b[13],
		F6: binary.BigEndian.Uint32(b[14:]),
	}, nil
}

// String is the 36-character uppercase hex form used in layer file names.
func (k Key) String() string {
	b := k.Bytes()
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// Parse parses the 36-character hex form.
func Parse(s string) (Key, error) {
	if len(s) != 2*Size {
		return Key{}, fmt.Errorf("%w: %q has %d characters, want 36 hexadecimal characters", ErrInvalidKey, s, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %q: %v", ErrInvalidKey, s, err)
	}
	return FromBytes(b)
}

// RelBlock is the key of block blkno of rel. blkno must not be
// pgtypes.InvalidBlockNumber, which is reserved for the size key.
func RelBlock(rel pgtypes.RelTag, blkno uint32) Key {
	return Key{KindRel, uint32(rel.SpcNode), uint32(rel.DbNode), uint32(rel.RelNode), uint8(rel.ForkNum), blkno}
}

// RelSize is the key holding rel's size in blocks.
func RelSize(rel pgtypes.RelTag) Key { return RelBlock(rel, sizeBlock) }

// RelDir is the key of the relation directory of database (spc, db).
func RelDir(spc, db pgtypes.Oid) Key {
	return Key{KindRel, uint32(spc), uint32(db), 0, 0, relDirField6}
}

// RelMapFile is the key of the pg_filenode.map of database (spc, db); for
// the shared map use (GlobalTablespaceOid, 0).
func RelMapFile(spc, db pgtypes.Oid) Key {
	return Key{KindRel, uint32(spc), uint32(db), 0, 0, relmapFileF6}
}

// DbDir is the key of the database directory.
func DbDir() Key { return Key{KindRel, 0, 0, 0, 0, dbDirAllFields} }

// RelRange returns the keys of every block of every fork of every relation
// of database (spc, db), including size keys: [start, end).
func RelRange(spc, db pgtypes.Oid) (start, end Key) {
	start = Key{KindRel, uint32(spc), uint32(db), 1, 0, 0}
	end = Key{KindRel, uint32(spc), uint32(db) + 1, 0, 0, 0}
	if db == 0xFFFFFFFF {
		end = Key{KindRel, uint32(spc) + 1, 0, 0, 0, 0}
	}
	return start, end
}

// SlruDir is the key of an SLRU's segment directory.
func SlruDir(kind SlruKind) Key { return Key{KindSLRU, uint32(kind), slruDirField3, 0, 0, 0} }

// SlruBlock is the key of block blkno of SLRU segment segno.
func SlruBlock(kind SlruKind, segno, blkno uint32) Key {
	return Key{KindSLRU, uint32(kind), slruBlocksF3, segno, 0, blkno}
}

// SlruSegmentSize is the key holding a segment's size in blocks.
func SlruSegmentSize(kind SlruKind, segno uint32) Key { return SlruBlock(kind, segno, sizeBlock) }

// TwoPhaseDir is the key of the set of prepared transactions.
func TwoPhaseDir() Key { return Key{KindTwoPhase, 0, 0, 0, 0, 0} }

// TwoPhaseFile is the key of the state file of prepared transaction xid
// (a 64-bit FullTransactionId-compatible layout, as Neon's).
func TwoPhaseFile(xid uint64) Key {
	return Key{KindTwoPhase, 0, 0, uint32(xid >> 40), uint8(xid >> 32), uint32(xid)}
}

// ControlFile is the key of the pg_control image.
func ControlFile() Key { return Key{KindControl, 0, 0, 0, 0, controlFileF6} }

// Checkpoint is the key of the latest CheckPoint struct.
func Checkpoint() Key { return Key{KindControl, 0, 0, 0, 0, checkpointF6} }

// IsRelBlock reports whether k is a relation block key (not a size key,
// directory or relmapper file).
func (k Key) IsRelBlock() bool {
	return k.F1 == KindRel && k.F4 != 0 && k.F6 != sizeBlock
}

// IsRelSize reports whether k is a relation size key.
func (k Key) IsRelSize() bool { return k.F1 == KindRel && k.F4 != 0 && k.F6 == sizeBlock }

// IsSlruBlock reports whether k is an SLRU block key.
func (k Key) IsSlruBlock() bool {
	return k.F1 == KindSLRU && k.F3 == slruBlocksF3 && k.F6 != sizeBlock
}

// RelTag returns the relation of a relation block or size key.
func (k Key) RelTag() (pgtypes.RelTag, error) {
	if k.F1 != KindRel || k.F4 == 0 {
		return pgtypes.RelTag{}, fmt.Errorf("%w: %s is not a relation block or size key", ErrInvalidKey, k)
	}
	return pgtypes.RelTag{SpcNode: pgtypes.Oid(k.F2), DbNode: pgtypes.Oid(k.F3), RelNode: pgtypes.Oid(k.F4), ForkNum: pgtypes.ForkNumber(k.F5)}, nil
}

// BlockNumber returns the block of a relation or SLRU block key.
func (k Key) BlockNumber() uint32 { return k.F6 }

// Describe returns a human-readable form for logs and errors, e.g.
// "rel 1663/5/16384 blk 7" or "slru pg_xact seg 0 blk 3".
func (k Key) Describe() string {
	switch k.F1 {
	case KindRel:
		switch {
		case k == DbDir():
			return "dbdir"
		case k.F4 == 0 && k.F5 == 0 && k.F6 == relDirField6:
			return fmt.Sprintf("reldir %d/%d", k.F2, k.F3)
		case k.F4 == 0 && k.F5 == 0 && k.F6 == relmapFileF6:
			return fmt.Sprintf("relmap %d/%d", k.F2, k.F3)
		case k.F4 != 0:
			rel, _ := k.RelTag()
			if k.F6 == sizeBlock {
				return fmt.Sprintf("rel %s size", rel)
			}
			return fmt.Sprintf("rel %s blk %d", rel, k.F6)
		}
	case KindSLRU:
		kind := SlruKind(k.F2)
		switch {
		case k.F3 == slruDirField3 && k.F4 == 0 && k.F5 == 0 && k.F6 == 0:
			return fmt.Sprintf("slru %s dir", kind.Dir())
		case k.F3 == slruBlocksF3 && k.F6 == sizeBlock:
			return fmt.Sprintf("slru %s seg %d size", kind.Dir(), k.F4)
		case k.F3 == slruBlocksF3:
			return fmt.Sprintf("slru %s seg %d blk %d", kind.Dir(), k.F4, k.F6)
		}
	case KindTwoPhase:
		if k == TwoPhaseDir() {
			return "twophase dir"
		}
		return fmt.Sprintf("twophase xid %d", uint64(k.F4)<<40|uint64(k.F5)<<32|uint64(k.F6))
	case KindControl:
		switch k.F6 {
		case controlFileF6:
			return "controlfile"
		case checkpointF6:
			return "checkpoint"
		}
	}
	return "key " + k.String()
}

// Range is a half-open key range [Start, End).
type Range struct {
	Start, End Key
}

// Contains reports whether k is in r.
func (r Range) Contains(k Key) bool { return !k.Less(r.Start) && k.Less(r.End) }

// Overlaps reports whether r and o share a key.
func (r Range) Overlaps(o Range) bool { return r.Start.Less(o.End) && o.Start.Less(r.End) }

// IsEmpty reports whether r holds no key.
func (r Range) IsEmpty() bool { return !r.Start.Less(r.End) }

// String formats the range as "START-END" in the 36-hex form.
func (r Range) String() string { return r.Start.String() + "-" + r.End.String() }
