package pgdatadir

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/timeline"
	"github.com/stratadb/strata/services/pageserver/walingest"
)

// Getter reads the value of a key at an LSN (timeline.Timeline.Get).
type Getter interface {
	Get(ctx context.Context, key keyspace.Key, at lsn.LSN, dst []byte) ([]byte, error)
}

// Reader answers typed questions about a timeline at an LSN.
type Reader struct {
	tl Getter
}

var _ basebackup.Source = (*Reader)(nil)

// NewReader returns a Reader over tl.
func NewReader(tl Getter) *Reader { return &Reader{tl: tl} }

// get returns the value, or (nil, false) when the key does not exist.
func (r *Reader) get(ctx context.Context, key keyspace.Key, at lsn.LSN) ([]byte, bool, error) {
	v, err := r.tl.Get(ctx, key, at, nil)
	if errors.Is(err, timeline.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func (r *Reader) dbDir(ctx context.Context, at lsn.LSN) (map[walingest.DbDirEntry]bool, error) {
	b, ok, err := r.get(ctx, keyspace.DbDir(), at)
	if err != nil || !ok {
		return map[walingest.DbDirEntry]bool{}, err
	}
	return walingest.DecodeDbDir(b)
}

func (r *Reader) relDir(ctx context.Context, spc, db pgtypes.Oid, at lsn.LSN) (map[walingest.RelDirEntry]struct{}, error) {
	b, ok, err := r.get(ctx, keyspace.RelDir(spc, db), at)
	if err != nil || !ok {
		return map[walingest.RelDirEntry]struct{}{}, err
	}
	return walingest.DecodeRelDir(b)
}

// RelExists reports whether rel exists at at.
func (r *Reader) RelExists(ctx context.Context, rel pgtypes.RelTag, at lsn.LSN) (bool, error) {
	b, ok, err := r.get(ctx, keyspace.RelDir(rel.SpcNode, rel.DbNode), at)
	if err != nil || !ok {
		return false, err
	}
	return walingest.RelDirContains(b, walingest.RelDirEntry{RelNode: rel.RelNode, Fork: rel.ForkNum})
}

// RelSize returns rel's size in blocks at at; a missing relation is an
// error wrapping ErrRelNotFound.
func (r *Reader) RelSize(ctx context.Context, rel pgtypes.RelTag, at lsn.LSN) (uint32, error) {
	ok, err := r.RelExists(ctx, rel, at)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: %s at %s", ErrRelNotFound, rel, at)
	}
	b, found, err := r.get(ctx, keyspace.RelSize(rel), at)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, nil
	}
	return walingest.DecodeRelSize(b)
}

// Page writes block blkno of rel at at into dst (8192 bytes). A block at or
// beyond the relation's size reads as zeros; a missing relation is an
// error wrapping ErrRelNotFound.
func (r *Reader) Page(ctx context.Context, rel pgtypes.RelTag, blkno uint32, at lsn.LSN, dst []byte) error {
	n, err := r.RelSize(ctx, rel, at)
	if err != nil {
		return err
	}
	if blkno >= n {
		clear(dst[:pgtypes.BLCKSZ])
		return nil
	}
	return r.Block(ctx, rel, blkno, at, dst)
}

// Block implements basebackup.Source: block blkno of rel at at, which the
// caller knows to be below the relation's size (no directory or size
// lookups).
func (r *Reader) Block(ctx context.Context, rel pgtypes.RelTag, blkno uint32, at lsn.LSN, dst []byte) error {
	v, err := r.tl.Get(ctx, keyspace.RelBlock(rel, blkno), at, dst[:0])
	if err != nil {
		return err
	}
	if len(v) != pgtypes.BLCKSZ {
		return fmt.Errorf("pgdatadir: %s blk %d at %s is %d bytes, not a page", rel, blkno, at, len(v))
	}
	if &v[0] != &dst[0] {
		copy(dst, v)
	}
	return nil
}

// Databases implements basebackup.Source.
func (r *Reader) Databases(ctx context.Context, at lsn.LSN) ([]basebackup.Database, error) {
	dbs, err := r.dbDir(ctx, at)
	if err != nil {
		return nil, err
	}
	out := make([]basebackup.Database, 0, len(dbs))
	for e, hasRelmap := range dbs {
		out = append(out, basebackup.Database{Spc: e.SpcNode, Db: e.DbNode, HasRelmap: hasRelmap})
	}
	slices.SortFunc(out, func(a, b basebackup.Database) int {
		if a.Spc != b.Spc {
			return int(int64(a.Spc) - int64(b.Spc))
		}
		return int(int64(a.Db) - int64(b.Db))
	})
	return out, nil
}

// Relations implements basebackup.Source: every relation fork at at.
func (r *Reader) Relations(ctx context.Context, at lsn.LSN) ([]pgtypes.RelTag, error) {
	dbs, err := r.Databases(ctx, at)
	if err != nil {
		return nil, err
	}
	var out []pgtypes.RelTag
	for _, db := range dbs {
		rels, err := r.relDir(ctx, db.Spc, db.Db, at)
		if err != nil {
			return nil, err
		}
		for e := range rels {
			out = append(out, pgtypes.RelTag{SpcNode: db.Spc, DbNode: db.Db, RelNode: e.RelNode, ForkNum: e.Fork})
		}
	}
	slices.SortFunc(out, func(a, b pgtypes.RelTag) int {
		return keyspace.RelSize(a).Compare(keyspace.RelSize(b))
	})
	return out, nil
}

// DbSize returns the total size in bytes of a database's relations.
func (r *Reader) DbSize(ctx context.Context, spc, db pgtypes.Oid, at lsn.LSN) (uint64, error) {
	dbs, err := r.dbDir(ctx, at)
	if err != nil {
		return 0, err
	}
	if _, ok := dbs[walingest.DbDirEntry{SpcNode: spc, DbNode: db}]; !ok {
		return 0, fmt.Errorf("%w: %d/%d at %s", ErrDbNotFound, spc, db, at)
	}
	rels, err := r.relDir(ctx, spc, db, at)
	if err != nil {
		return 0, err
	}
	var total uint64
	for e := range rels {
		n, err := r.RelSize(ctx, pgtypes.RelTag{SpcNode: spc, DbNode: db, RelNode: e.RelNode, ForkNum: e.Fork}, at)
		if err != nil {
			return 0, err
		}
		total += uint64(n) * pgtypes.BLCKSZ
	}
	return total, nil
}

// RelMapFile implements basebackup.Source.
func (r *Reader) RelMapFile(ctx context.Context, spc, db pgtypes.Oid, at lsn.LSN) ([]byte, error) {
	b, ok, err := r.get(ctx, keyspace.RelMapFile(spc, db), at)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: relmapper file of %d/%d at %s", ErrDbNotFound, spc, db, at)
	}
	return b, nil
}

// SlruSegments implements basebackup.Source.
func (r *Reader) SlruSegments(ctx context.Context, kind keyspace.SlruKind, at lsn.LSN) ([]uint32, error) {
	b, ok, err := r.get(ctx, keyspace.SlruDir(kind), at)
	if err != nil || !ok {
		return nil, err
	}
	set, err := walingest.DecodeSlruDir(b)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// SlruSegment implements basebackup.Source: the segment's pages at at.
func (r *Reader) SlruSegment(ctx context.Context, kind keyspace.SlruKind, segno uint32, at lsn.LSN) ([]byte, error) {
	b, ok, err := r.get(ctx, keyspace.SlruSegmentSize(kind, segno), at)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("pgdatadir: %s segment %04X does not exist at %s", kind.Dir(), segno, at)
	}
	n, err := walingest.DecodeRelSize(b)
	if err != nil {
		return nil, err
	}
	if n > pgtypes.SLRUPagesPerSegment {
		return nil, fmt.Errorf("pgdatadir: %s segment %04X has %d pages, more than %d", kind.Dir(), segno, n, pgtypes.SLRUPagesPerSegment)
	}
	out := make([]byte, 0, int(n)*pgtypes.BLCKSZ)
	for blk := uint32(0); blk < n; blk++ {
		page, found, err := r.get(ctx, keyspace.SlruBlock(kind, segno, blk), at)
		if err != nil {
			return nil, err
		}
		if !found || len(page) != pgtypes.BLCKSZ {
			page = make([]byte, pgtypes.BLCKSZ)
		}
		out = append(out, page...)
	}
	return out, nil
}

// TwoPhaseFiles implements basebackup.Source.
func (r *Reader) TwoPhaseFiles(ctx context.Context, at lsn.LSN) ([]uint64, error) {
	b, ok, err := r.get(ctx, keyspace.TwoPhaseDir(), at)
	if err != nil || !ok {
		return nil, err
	}
	set, err := walingest.DecodeTwoPhaseDir(b)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, 0, len(set))
	for x := range set {
		out = append(out, uint64(x))
	}
	slices.Sort(out)
	return out, nil
}

// TwoPhaseFile implements basebackup.Source: the state file without its
// trailing CRC (walingest stores the file as PostgreSQL writes it).
func (r *Reader) TwoPhaseFile(ctx context.Context, xid uint64, at lsn.LSN) ([]byte, error) {
	b, ok, err := r.get(ctx, keyspace.TwoPhaseFile(xid), at)
	if err != nil {
		return nil, err
	}
	if !ok || len(b) < 4 {
		return nil, fmt.Errorf("pgdatadir: twophase state of xid %d missing at %s", xid, at)
	}
	return b[:len(b)-4], nil
}

// ControlFile implements basebackup.Source.
func (r *Reader) ControlFile(ctx context.Context, at lsn.LSN) ([]byte, error) {
	b, ok, err := r.get(ctx, keyspace.ControlFile(), at)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("pgdatadir: no control file stored at %s (the timeline was not imported or bootstrapped)", at)
	}
	return b, nil
}

// Checkpoint implements basebackup.Source.
func (r *Reader) Checkpoint(ctx context.Context, at lsn.LSN) (rmgr.CheckPoint, error) {
	b, ok, err := r.get(ctx, keyspace.Checkpoint(), at)
	if err != nil {
		return rmgr.CheckPoint{}, err
	}
	if !ok {
		return rmgr.CheckPoint{}, fmt.Errorf("pgdatadir: no checkpoint stored at %s", at)
	}
	return rmgr.DecodeCheckPoint(b)
}
