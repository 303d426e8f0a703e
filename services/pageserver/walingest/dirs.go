package walingest

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/stratadb/strata/internal/pgtypes"
)

// Directory values (format version 1). Every directory is an image value
// holding
//
//	version u8 (= 1) | kind u8 | count u32 LE | count entries, strictly ascending
//
// with entries, all integers little-endian:
//
//	RelDir       'R'  relnode u32, fork u8                  (5 bytes)
//	DbDir        'D'  spcnode u32, dbnode u32, has_relmap u8 (9 bytes)
//	SlruDir      'S'  segno u32                              (4 bytes)
//	TwoPhaseDir  'T'  xid u32 (PostgreSQL 15's 32-bit xids)  (4 bytes)
//
// Entries are sorted so that equal sets encode to equal bytes. Decoders
// reject anything else (wrong version or kind, length, order, duplicates).
const (
	dirFormatVersion = 1
	dirHeaderLen     = 6

	dirKindRel      = 'R'
	dirKindDb       = 'D'
	dirKindSlru     = 'S'
	dirKindTwoPhase = 'T'
)

// RelDirEntry is one relation fork of a database's relation directory.
type RelDirEntry struct {
	RelNode pgtypes.Oid
	Fork    pgtypes.ForkNumber
}

// DbDirEntry is one database of the database directory.
type DbDirEntry struct {
	SpcNode pgtypes.Oid
	DbNode  pgtypes.Oid
}

func dirHeader(dst []byte, kind byte, n int) []byte {
	dst = append(dst, dirFormatVersion, kind)
	return binary.LittleEndian.AppendUint32(dst, uint32(n))
}

func dirBody(b []byte, kind byte, entryLen int) (int, []byte, error) {
	if len(b) < dirHeaderLen || b[0] != dirFormatVersion || b[1] != kind {
		return 0, nil, fmt.Errorf("%w: directory %q: bad header", ErrCorrupt, kind)
	}
	n := binary.LittleEndian.Uint32(b[2:])
	body := b[dirHeaderLen:]
	if uint64(len(body)) != uint64(n)*uint64(entryLen) {
		return 0, nil, fmt.Errorf("%w: directory %q: %d entries in %d bytes", ErrCorrupt, kind, n, len(body))
	}
	return int(n), body, nil
}

// EncodeRelDir encodes a relation directory.
func EncodeRelDir(rels map[RelDirEntry]struct{}) []byte {
	keys := slices.SortedFunc(maps.Keys(rels), func(a, b RelDirEntry) int {
		return cmp.Or(cmp.Compare(a.RelNode, b.RelNode), cmp.Compare(a.Fork, b.Fork))
	})
	dst := dirHeader(make([]byte, 0, dirHeaderLen+5*len(keys)), dirKindRel, len(keys))
	for _, k := range keys {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k.RelNode))
		dst = append(dst, uint8(k.Fork))
	}
	return dst
}

// DecodeRelDir decodes a relation directory.
func DecodeRelDir(b []byte) (map[RelDirEntry]struct{}, error) {
	n, body, err := dirBody(b, dirKindRel, 5)
	if err != nil {
		return nil, err
	}
	out := make(map[RelDirEntry]struct{}, n)
	var prev RelDirEntry
	for i := range n {
		e := RelDirEntry{RelNode: pgtypes.Oid(binary.LittleEndian.Uint32(body[5*i:])), Fork: pgtypes.ForkNumber(body[5*i+4])}
		if e.Fork > pgtypes.MaxForkNum {
			return nil, fmt.Errorf("%w: relation directory: fork %d", ErrCorrupt, e.Fork)
		}
		if i > 0 && (e.RelNode < prev.RelNode || e.RelNode == prev.RelNode && e.Fork <= prev.Fork) {
			return nil, fmt.Errorf("%w: relation directory not strictly sorted", ErrCorrupt)
		}
		out[e], prev = struct{}{}, e
	}
	return out, nil
}

// RelDirContains reports whether the encoded relation directory b holds
// e, by binary search over its sorted entries: a read path asking about one
// relation need not decode the whole directory.
func RelDirContains(b []byte, e RelDirEntry) (bool, error) {
	n, body, err := dirBody(b, dirKindRel, 5)
	if err != nil {
		return false, err
	}
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		rel := pgtypes.Oid(binary.LittleEndian.Uint32(body[5*m:]))
		fork := pgtypes.ForkNumber(body[5*m+4])
		switch c := cmp.Or(cmp.Compare(rel, e.RelNode), cmp.Compare(fork, e.Fork)); {
		case c == 0:
			return true, nil
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return false, nil
}

// EncodeDbDir encodes the database directory; the value of each entry says
// whether the database has a relmapper file.
func EncodeDbDir(dbs map[DbDirEntry]bool) []byte {
	keys := slices.SortedFunc(maps.Keys(dbs), func(a, b DbDirEntry) int {
		return cmp.Or(cmp.Compare(a.SpcNode, b.SpcNode), cmp.Compare(a.DbNode, b.DbNode))
	})
	dst := dirHeader(make([]byte, 0, dirHeaderLen+9*len(keys)), dirKindDb, len(keys))
	for _, k := range keys {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k.SpcNode))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k.DbNode))
		hasRelmap := byte(0)
		if dbs[k] {
			hasRelmap = 1
		}
		dst = append(dst, hasRelmap)
	}
	return dst
}

// DecodeDbDir decodes the database directory.
func DecodeDbDir(b []byte) (map[DbDirEntry]bool, error) {
	n, body, err := dirBody(b, dirKindDb, 9)
	if err != nil {
		return nil, err
	}
	out := make(map[DbDirEntry]bool, n)
	var prev DbDirEntry
	for i := range n {
		e := body[9*i:]
		d := DbDirEntry{SpcNode: pgtypes.Oid(binary.LittleEndian.Uint32(e)), DbNode: pgtypes.Oid(binary.LittleEndian.Uint32(e[4:]))}
		if e[8] > 1 {
			return nil, fmt.Errorf("%w: database directory: has_relmap %d", ErrCorrupt, e[8])
		}
		if i > 0 && (d.SpcNode < prev.SpcNode || d.SpcNode == prev.SpcNode && d.DbNode <= prev.DbNode) {
			return nil, fmt.Errorf("%w: database directory not strictly sorted", ErrCorrupt)
		}
		out[d], prev = e[8] == 1, d
	}
	return out, nil
}

// EncodeSlruDir encodes an SLRU's set of segment numbers.
func EncodeSlruDir(segs map[uint32]struct{}) []byte { return encodeU32Set(dirKindSlru, segs) }

// DecodeSlruDir decodes an SLRU's set of segment numbers.
func DecodeSlruDir(b []byte) (map[uint32]struct{}, error) { return decodeU32Set(dirKindSlru, b) }

// EncodeTwoPhaseDir encodes the set of prepared transactions' xids.
func EncodeTwoPhaseDir(xids map[uint32]struct{}) []byte { return encodeU32Set(dirKindTwoPhase, xids) }

// DecodeTwoPhaseDir decodes the set of prepared transactions' xids.
func DecodeTwoPhaseDir(b []byte) (map[uint32]struct{}, error) {
	return decodeU32Set(dirKindTwoPhase, b)
}

func encodeU32Set(kind byte, set map[uint32]struct{}) []byte {
	keys := slices.Sorted(maps.Keys(set))
	dst := dirHeader(make([]byte, 0, dirHeaderLen+4*len(keys)), kind, len(keys))
	for _, k := range keys {
		dst = binary.LittleEndian.AppendUint32(dst, k)
	}
	return dst
}

func decodeU32Set(kind byte, b []byte) (map[uint32]struct{}, error) {
	n, body, err := dirBody(b, kind, 4)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]struct{}, n)
	var prev uint32
	for i := range n {
		v := binary.LittleEndian.Uint32(body[4*i:])
		if i > 0 && v <= prev {
			return nil, fmt.Errorf("%w: directory %q not strictly sorted", ErrCorrupt, kind)
		}
		out[v], prev = struct{}{}, v
	}
	return out, nil
}

// EncodeRelSize encodes a relation or SLRU segment size in blocks: 4 bytes,
// little-endian (as Neon).
func EncodeRelSize(nblocks uint32) []byte { return binary.LittleEndian.AppendUint32(nil, nblocks) }

// DecodeRelSize decodes a size value.
func DecodeRelSize(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: size value of %d bytes", ErrCorrupt, len(b))
	}
	return binary.LittleEndian.Uint32(b), nil
}
