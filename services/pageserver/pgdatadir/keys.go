package pgdatadir

import (
	"context"
	"fmt"
	"slices"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/walingest"
)

// Keys lists every key that exists at at, sorted: the database directory,
// each database's relation directory and relmapper file, every relation
// fork's size key and blocks below its size, the SLRU directories with
// their segments' size keys and pages, the two-phase directory and state
// files, the control file and the checkpoint. It is the keyspace an image
// layer at at must hold (Neon's collect_keyspace); compaction images it.
func (r *Reader) Keys(ctx context.Context, at lsn.LSN) ([]keyspace.Key, error) {
	var out []keyspace.Key
	add := func(k keyspace.Key, ok bool, err error) error {
		if err == nil && ok {
			out = append(out, k)
		}
		return err
	}
	exists := func(k keyspace.Key) (keyspace.Key, bool, error) {
		_, ok, err := r.get(ctx, k, at)
		return k, ok, err
	}
	if err := add(exists(keyspace.DbDir())); err != nil {
		return nil, err
	}
	dbs, err := r.Databases(ctx, at)
	if err != nil {
		return nil, err
	}
	for _, db := range dbs {
		if err := add(exists(keyspace.RelDir(db.Spc, db.Db))); err != nil {
			return nil, err
		}
		if db.HasRelmap {
			if err := add(exists(keyspace.RelMapFile(db.Spc, db.Db))); err != nil {
				return nil, err
			}
		}
	}
	rels, err := r.Relations(ctx, at)
	if err != nil {
		return nil, err
	}
	for _, rel := range rels {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := add(exists(keyspace.RelSize(rel))); err != nil {
			return nil, err
		}
		n, err := r.RelSize(ctx, rel, at)
		if err != nil {
			return nil, fmt.Errorf("pgdatadir: listing the keys at %s: %w", at, err)
		}
		for blk := uint32(0); blk < n; blk++ {
			out = append(out, keyspace.RelBlock(rel, blk))
		}
	}
	for _, kind := range []keyspace.SlruKind{keyspace.SlruClog, keyspace.SlruMultiXactMembers, keyspace.SlruMultiXactOffsets} {
		if err := add(exists(keyspace.SlruDir(kind))); err != nil {
			return nil, err
		}
		segs, err := r.SlruSegments(ctx, kind, at)
		if err != nil {
			return nil, err
		}
		for _, seg := range segs {
			b, ok, err := r.get(ctx, keyspace.SlruSegmentSize(kind, seg), at)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			out = append(out, keyspace.SlruSegmentSize(kind, seg))
			n, err := walingest.DecodeRelSize(b)
			if err != nil {
				return nil, fmt.Errorf("pgdatadir: %s segment %04X size at %s: %w", kind.Dir(), seg, at, err)
			}
			for blk := uint32(0); blk < n; blk++ {
				out = append(out, keyspace.SlruBlock(kind, seg, blk))
			}
		}
	}
	if err := add(exists(keyspace.TwoPhaseDir())); err != nil {
		return nil, err
	}
	xids, err := r.TwoPhaseFiles(ctx, at)
	if err != nil {
		return nil, err
	}
	for _, xid := range xids {
		if err := add(exists(keyspace.TwoPhaseFile(xid))); err != nil {
			return nil, err
		}
	}
	for _, k := range []keyspace.Key{keyspace.ControlFile(), keyspace.Checkpoint()} {
		if err := add(exists(k)); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, keyspace.Key.Compare)
	return slices.CompactFunc(out, func(a, b keyspace.Key) bool { return a == b }), nil
}
