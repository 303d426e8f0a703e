package pagecache

import "encoding/binary"

// Kind is the mapping kind of a cached page. It labels metrics and selects
// how the kind-specific part of a key is read.
type Kind uint8

// Mapping kinds. The zero Kind is reserved for "no key".
const (
	KindImmutable Kind = iota + 1
	KindEphemeral
	KindMaterialized
	numKinds // one past the last kind; arrays indexed by Kind have this length
)

var kindNames = [numKinds]string{
	KindImmutable:    "immutable",
	KindEphemeral:    "ephemeral",
	KindMaterialized: "materialized",
}

// String returns the kind's metric label.
func (k Kind) String() string {
	if k == 0 || k >= numKinds {
		return "unknown"
	}
	return kindNames[k]
}

// FileID names a file (immutable layer file or ephemeral file) for the
// lifetime of the process. Ids come from Cache.NewFileID and are never reused,
// so a page of a deleted file can never be mistaken for a page of a new one.
type FileID uint64

// keyIDLen is the size of the largest kind-specific key:
// tenant (16) + timeline (16) + key (18) of a materialized page.
const keyIDLen = 16 + 16 + 18

// cacheKey identifies a mapping entry: a kind tag and a fixed-size,
// kind-specific identity. It is comparable with no padding, so Go maps hash
// it as one block of memory without allocating.
type cacheKey struct {
	id   [keyIDLen]byte
	kind Kind
}

// blockKey is the key of block blk of file f for the file-block kinds.
// Layout: file id (8 bytes LE), block (4 bytes LE), zeros.
func blockKey(kind Kind, f FileID, blk uint32) cacheKey {
	var k cacheKey
	k.kind = kind
	binary.LittleEndian.PutUint64(k.id[0:8], uint64(f))
	binary.LittleEndian.PutUint32(k.id[8:12], blk)
	return k
}

// materializedKey is the key of a materialized page, without its LSN.
// Layout: tenant (16), timeline (16), key (18).
func materializedKey(tenant, timeline *[16]byte, key *[18]byte) cacheKey {
	var k cacheKey
	k.kind = KindMaterialized
	copy(k.id[0:16], tenant[:])
	copy(k.id[16:32], timeline[:])
	copy(k.id[32:50], key[:])
	return k
}

func (k *cacheKey) fileID() FileID { return FileID(binary.LittleEndian.Uint64(k.id[0:8])) }

func (k *cacheKey) isFileBlock() bool { return k.kind == KindImmutable || k.kind == KindEphemeral }

// sameTimeline reports whether a materialized key belongs to (tenant, timeline).
func (k *cacheKey) sameTimeline(tenant, timeline *[16]byte) bool {
	return k.kind == KindMaterialized && [16]byte(k.id[0:16]) == *tenant && [16]byte(k.id[16:32]) == *timeline
}

// shard picks the mapping shard of k. It folds the key into 64 bits and
// mixes them (the finalizer of splitmix64); this is cheaper than hashing
// the bytes one by one and spreads sequential block numbers over shards.
func (k *cacheKey) shard() uint32 {
	le := binary.LittleEndian
	h := le.Uint64(k.id[0:8]) ^ le.Uint64(k.id[8:16])*0x9e3779b97f4a7c15 ^ uint64(k.kind)
	if !k.isFileBlock() { // file-block keys use only the first 12 bytes
		h ^= le.Uint64(k.id[16:24]) ^ le.Uint64(k.id[24:32]) ^ le.Uint64(k.id[32:40]) ^
			le.Uint64(k.id[40:48]) ^ uint64(le.Uint16(k.id[48:50]))<<8
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return uint32(h) & (numShards - 1)
}
