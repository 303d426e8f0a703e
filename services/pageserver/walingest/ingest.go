package walingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/value"
)

// Ingester applies decoded WAL records of one timeline to a Store.
//
// It caches the metadata it has read or written (directories, sizes, the
// checkpoint) and writes what a record changed once, at the record's end
// LSN, after the record's other values. It assumes it is the only writer of
// the timeline's keys. After Ingest returns an error the Ingester is
// poisoned (later calls return the same error): part of the record may be
// stored, so the owner must rebuild an Ingester from the store at its last
// complete record and re-ingest from there.
type Ingester struct {
	store Store
	pages PageReader
	log   *slog.Logger

	cp      rmgr.CheckPoint
	cpDirty bool

	dbDir      map[DbDirEntry]bool // nil until loaded
	dbDirDirty bool
	relDirs    map[DbDirEntry]*relDir
	relSizes   map[pgtypes.RelTag]uint32 // sizes of existing relations seen
	dirtySizes map[pgtypes.RelTag]struct{}
	// lastRel caches relSizes[lastRel.tag] for extend: consecutive records
	// mostly touch one relation. Any change to relSizes clears it.
	lastRel struct {
		tag  pgtypes.RelTag
		size uint32
		ok   bool
	}

	slruDirs       [3]*slruDir // by keyspace.SlruKind
	slruSizes      map[slruSeg]uint32
	dirtySlruSizes map[slruSeg]struct{}

	twoPhase      map[uint32]struct{} // nil until loaded
	twoPhaseDirty bool

	failed error
	stats  Stats

	// valueBuf is reused for the values of block references (Store.Put
	// copies what it keeps): no allocation per block.
	valueBuf []byte
	// metaDirty is set with any dirty mark that flush writes out: most
	// records change no metadata, and flush then costs one test.
	metaDirty bool
}

// Stats counts what the Ingester stored.
type Stats struct {
	Records         uint64
	BlockRecords    uint64 // WAL records stored under a block key
	Images          uint64 // full-page images stored as images (FPI, gap fill, FILE_COPY)
	NativeRecords   uint64
	MetadataPuts    uint64
	RelsCreated     uint64
	RelsDropped     uint64
	CopiedBlocks    uint64 // by CREATE DATABASE FILE_COPY
	GapBlocksZeroed uint64
}

type relDir struct {
	rels  map[RelDirEntry]struct{}
	dirty bool
}

type slruDir struct {
	segs  map[uint32]struct{}
	dirty bool
}

type slruSeg struct {
	kind  keyspace.SlruKind
	segno uint32
}

// New returns an Ingester over store. pages is used only for CREATE
// DATABASE FILE_COPY and may be nil (such records then fail with
// ErrNoPageReader). The stored checkpoint is loaded now; a store without one
// starts from a zero CheckPoint that later records fill in.
func New(ctx context.Context, store Store, pages PageReader, logger *slog.Logger) (*Ingester, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	in := &Ingester{
		store:          store,
		pages:          pages,
		log:            logger,
		relDirs:        make(map[DbDirEntry]*relDir),
		relSizes:       make(map[pgtypes.RelTag]uint32),
		dirtySizes:     make(map[pgtypes.RelTag]struct{}),
		slruSizes:      make(map[slruSeg]uint32),
		dirtySlruSizes: make(map[slruSeg]struct{}),
	}
	b, err := store.Latest(ctx, keyspace.Checkpoint())
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("walingest: loading checkpoint: %w", err)
	default:
		if in.cp, err = rmgr.DecodeCheckPoint(b); err != nil {
			return nil, fmt.Errorf("%w: stored checkpoint: %v", ErrCorrupt, err)
		}
	}
	return in, nil
}

// CheckPoint returns the checkpoint as the records ingested so far leave it
// (what is stored under keyspace.Checkpoint after the last record).
func (in *Ingester) CheckPoint() rmgr.CheckPoint { return in.cp }

// Stats returns counters of what was stored.
func (in *Ingester) Stats() Stats { return in.stats }

// Ingest stores everything rec changes, at rec.EndLSN. Records must come in
// WAL order, each exactly once.
func (in *Ingester) Ingest(ctx context.Context, rec *pgwal.DecodedRecord) error {
	if in.failed != nil {
		return in.failed
	}
	if err := in.ingest(ctx, rec); err != nil {
		in.failed = fmt.Errorf("walingest: record at %s (%s): %w", rec.LSN, rmgr.RecordName(rec.RmID, rec.Info), err)
		return in.failed
	}
	in.stats.Records++
	return nil
}

func (in *Ingester) ingest(ctx context.Context, rec *pgwal.DecodedRecord) error {
	in.observeXid(rec.Xid)
	if err := in.special(ctx, rec); err != nil {
		return err
	}
	if err := in.blocks(ctx, rec); err != nil {
		return err
	}
	return in.flush(ctx, rec.EndLSN)
}

// blocks does the generic handling of block references (neon-anchor §6.1):
// full-page images of XLOG FPI records become images, everything else is
// stored as the whole record once per block; writes past the end extend the
// relation.
func (in *Ingester) blocks(ctx context.Context, rec *pgwal.DecodedRecord) error {
	if len(rec.Blocks) == 0 {
		return nil
	}
	isFPI := rec.RmID == rmgr.XLOG && (rec.RmgrInfo() == rmgr.InfoFPI || rec.RmgrInfo() == rmgr.InfoFPIForHint)
	for i := range rec.Blocks {
		blk := &rec.Blocks[i]
		tag := blk.Tag()
		if err := in.extend(ctx, tag.Rel, tag.BlockNum, rec.EndLSN); err != nil {
			return err
		}
		key := keyspace.RelBlock(tag.Rel, tag.BlockNum)
		var v []byte
		if isFPI && blk.HasImage() && blk.ApplyImage() {
			// As xlog_redo for XLOG_FPI: restore the image, then set the
			// page LSN to the record's end unless the page is new.
			v = value.AppendImage(in.valueBuf[:0], zeroPage[:])
			page := v[len(v)-pgtypes.BLCKSZ:]
			if err := blk.RestorePage(page); err != nil {
				return fmt.Errorf("%w: restoring image of %s: %v", ErrCorrupt, tag, err)
			}
			if !pgtypes.PageIsNew(page) {
				pgtypes.PageSetLSN(page, rec.EndLSN)
			}
			in.stats.Images++
		} else {
			v = value.AppendRecord(in.valueBuf[:0], rec.LSN, blk.WillInit() || blk.ApplyImage(), rec.Raw)
			in.stats.BlockRecords++
		}
		in.valueBuf = v
		if err := in.store.Put(ctx, key, rec.EndLSN, v); err != nil {
			return err
		}
	}
	return nil
}

// extend makes sure rel exists and has at least blkno+1 blocks, filling a
// gap with zero-page images (PostgreSQL's smgrextend writes zeros there).
func (in *Ingester) extend(ctx context.Context, rel pgtypes.RelTag, blkno uint32, at lsn.LSN) error {
	if in.lastRel.ok && in.lastRel.tag == rel && blkno < in.lastRel.size {
		return nil // the common case: the relation of the previous record
	}
	if n, ok := in.relSizes[rel]; ok && blkno < n {
		in.lastRel.tag, in.lastRel.size, in.lastRel.ok = rel, n, true
		return nil // in one map lookup
	}
	exists, err := in.relExists(ctx, rel)
	if err != nil {
		return err
	}
	if !exists {
		if err := in.createRel(ctx, rel); err != nil {
			return err
		}
	}
	n, err := in.relSize(ctx, rel)
	if err != nil {
		return err
	}
	if blkno < n {
		return nil
	}
	for gap := n; gap < blkno; gap++ {
		if err := in.putZeroPage(ctx, keyspace.RelBlock(rel, gap), at); err != nil {
			return err
		}
		in.stats.GapBlocksZeroed++
	}
	in.setRelSize(rel, blkno+1)
	return nil
}

func (in *Ingester) putZeroPage(ctx context.Context, key keyspace.Key, at lsn.LSN) error {
	in.stats.Images++
	in.valueBuf = value.AppendImage(in.valueBuf[:0], zeroPage[:])
	return in.store.Put(ctx, key, at, in.valueBuf)
}

func (in *Ingester) putNative(ctx context.Context, key keyspace.Key, at lsn.LSN, subtype uint8, payload []byte) error {
	in.stats.NativeRecords++
	in.valueBuf = value.AppendNative(in.valueBuf[:0], subtype, payload)
	return in.store.Put(ctx, key, at, in.valueBuf)
}

func (in *Ingester) putMeta(ctx context.Context, key keyspace.Key, at lsn.LSN, image []byte) error {
	in.stats.MetadataPuts++
	in.valueBuf = value.AppendImage(in.valueBuf[:0], image)
	return in.store.Put(ctx, key, at, in.valueBuf)
}

// zeroPage is the image of a new (all-zero) page; never modified.
var zeroPage [pgtypes.BLCKSZ]byte

// latest wraps Store.Latest: found reports whether the key has a value.
func (in *Ingester) latest(ctx context.Context, key keyspace.Key) (b []byte, found bool, err error) {
	b, err = in.store.Latest(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("walingest: reading %s: %w", key.Describe(), err)
	}
	return b, true, nil
}

// ---- databases and relations ----

func (in *Ingester) loadDbDir(ctx context.Context) (map[DbDirEntry]bool, error) {
	if in.dbDir != nil {
		return in.dbDir, nil
	}
	b, found, err := in.latest(ctx, keyspace.DbDir())
	if err != nil {
		return nil, err
	}
	in.dbDir = make(map[DbDirEntry]bool)
	if found {
		if in.dbDir, err = DecodeDbDir(b); err != nil {
			return nil, err
		}
	}
	return in.dbDir, nil
}

func (in *Ingester) loadRelDir(ctx context.Context, db DbDirEntry) (*relDir, error) {
	if d, ok := in.relDirs[db]; ok {
		return d, nil
	}
	b, found, err := in.latest(ctx, keyspace.RelDir(db.SpcNode, db.DbNode))
	if err != nil {
		return nil, err
	}
	d := &relDir{rels: make(map[RelDirEntry]struct{})}
	if found {
		if d.rels, err = DecodeRelDir(b); err != nil {
			return nil, fmt.Errorf("relation directory of %d/%d: %w", db.SpcNode, db.DbNode, err)
		}
	}
	in.relDirs[db] = d
	return d, nil
}

func dbOf(rel pgtypes.RelTag) DbDirEntry { return DbDirEntry{SpcNode: rel.SpcNode, DbNode: rel.DbNode} }

func (in *Ingester) relExists(ctx context.Context, rel pgtypes.RelTag) (bool, error) {
	if _, ok := in.relSizes[rel]; ok {
		return true, nil
	}
	d, err := in.loadRelDir(ctx, dbOf(rel))
	if err != nil {
		return false, err
	}
	_, ok := d.rels[RelDirEntry{RelNode: rel.RelNode, Fork: rel.ForkNum}]
	return ok, nil
}

// relSize returns the size of an existing relation.
func (in *Ingester) relSize(ctx context.Context, rel pgtypes.RelTag) (uint32, error) {
	if n, ok := in.relSizes[rel]; ok {
		return n, nil
	}
	b, found, err := in.latest(ctx, keyspace.RelSize(rel))
	if err != nil || !found {
		// A relation in its directory without a size key has never been
		// extended.
		return 0, err
	}
	n, err := DecodeRelSize(b)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", rel, err)
	}
	in.relSizes[rel] = n
	in.lastRel.ok = false
	return n, nil
}

func (in *Ingester) setRelSize(rel pgtypes.RelTag, n uint32) {
	in.relSizes[rel] = n
	in.lastRel.ok = false
	in.dirtySizes[rel] = struct{}{}
	in.metaDirty = true
}

// createRel adds rel to its database's relation directory with size 0,
// creating the database's directory entry if needed.
func (in *Ingester) createRel(ctx context.Context, rel pgtypes.RelTag) error {
	if err := in.ensureDb(ctx, dbOf(rel), false); err != nil {
		return err
	}
	d, err := in.loadRelDir(ctx, dbOf(rel))
	if err != nil {
		return err
	}
	d.rels[RelDirEntry{RelNode: rel.RelNode, Fork: rel.ForkNum}] = struct{}{}
	d.dirty = true
	in.metaDirty = true
	in.setRelSize(rel, 0)
	in.stats.RelsCreated++
	return nil
}

// ensureDb adds db to the database directory; hasRelmap only ever turns an
// entry's flag on.
func (in *Ingester) ensureDb(ctx context.Context, db DbDirEntry, hasRelmap bool) error {
	dbs, err := in.loadDbDir(ctx)
	if err != nil {
		return err
	}
	old, ok := dbs[db]
	if ok && (old || !hasRelmap) {
		return nil
	}
	dbs[db] = hasRelmap
	in.dbDirDirty = true
	in.metaDirty = true
	if !ok {
		// A new database starts with an empty relation directory, stored so
		// that readers can tell "no relations" from "unknown".
		d, err := in.loadRelDir(ctx, db)
		if err != nil {
			return err
		}
		d.dirty = true
		in.metaDirty = true
	}
	return nil
}

// dropRelFile removes every fork of node.
func (in *Ingester) dropRelFile(ctx context.Context, node pgtypes.RelFileNode) error {
	db := DbDirEntry{SpcNode: node.SpcNode, DbNode: node.DbNode}
	d, err := in.loadRelDir(ctx, db)
	if err != nil {
		return err
	}
	for fork := pgtypes.MainForkNum; fork <= pgtypes.MaxForkNum; fork++ {
		e := RelDirEntry{RelNode: node.RelNode, Fork: fork}
		if _, ok := d.rels[e]; ok {
			delete(d.rels, e)
			d.dirty = true
			in.metaDirty = true
			in.stats.RelsDropped++
		}
		tag := node.Tag(fork)
		delete(in.relSizes, tag)
		delete(in.dirtySizes, tag)
		in.lastRel.ok = false
	}
	return nil
}

// ---- SLRUs ----

func (in *Ingester) loadSlruDir(ctx context.Context, kind keyspace.SlruKind) (*slruDir, error) {
	if !kind.Valid() {
		return nil, fmt.Errorf("%w: SLRU kind %d", ErrCorrupt, kind)
	}
	if d := in.slruDirs[kind]; d != nil {
		return d, nil
	}
	b, found, err := in.latest(ctx, keyspace.SlruDir(kind))
	if err != nil {
		return nil, err
	}
	d := &slruDir{segs: make(map[uint32]struct{})}
	if found {
		if d.segs, err = DecodeSlruDir(b); err != nil {
			return nil, err
		}
	}
	in.slruDirs[kind] = d
	return d, nil
}

// slruSegSize returns a segment's size in pages, 0 if it does not exist.
func (in *Ingester) slruSegSize(ctx context.Context, seg slruSeg) (uint32, error) {
	if n, ok := in.slruSizes[seg]; ok {
		return n, nil
	}
	d, err := in.loadSlruDir(ctx, seg.kind)
	if err != nil {
		return 0, err
	}
	if _, ok := d.segs[seg.segno]; !ok {
		return 0, nil
	}
	b, found, err := in.latest(ctx, keyspace.SlruSegmentSize(seg.kind, seg.segno))
	if err != nil || !found {
		return 0, err
	}
	n, err := DecodeRelSize(b)
	if err != nil {
		return 0, err
	}
	in.slruSizes[seg] = n
	return n, nil
}

// slruPageExists reports whether an SLRU page is within its segment.
func (in *Ingester) slruPageExists(ctx context.Context, kind keyspace.SlruKind, pageno uint32) (bool, error) {
	n, err := in.slruSegSize(ctx, slruSeg{kind, pageno / slruPagesPerSegment})
	return pageno%slruPagesPerSegment < n, err
}

// extendSlru records that page pageno exists: its segment is in the
// directory and at least pageno%32+1 pages long.
func (in *Ingester) extendSlru(ctx context.Context, kind keyspace.SlruKind, pageno uint32) error {
	seg := slruSeg{kind, pageno / slruPagesPerSegment}
	n, err := in.slruSegSize(ctx, seg)
	if err != nil {
		return err
	}
	d, err := in.loadSlruDir(ctx, kind)
	if err != nil {
		return err
	}
	if _, ok := d.segs[seg.segno]; !ok {
		d.segs[seg.segno] = struct{}{}
		d.dirty = true
		in.metaDirty = true
	}
	if blk := pageno % slruPagesPerSegment; blk >= n {
		in.slruSizes[seg] = blk + 1
		in.dirtySlruSizes[seg] = struct{}{}
		in.metaDirty = true
	}
	return nil
}

func (in *Ingester) dropSlruSegment(kind keyspace.SlruKind, segno uint32) {
	d := in.slruDirs[kind]
	delete(d.segs, segno)
	d.dirty = true
	in.metaDirty = true
	delete(in.slruSizes, slruSeg{kind, segno})
	delete(in.dirtySlruSizes, slruSeg{kind, segno})
}

func slruKey(kind keyspace.SlruKind, pageno uint32) keyspace.Key {
	return keyspace.SlruBlock(kind, pageno/slruPagesPerSegment, pageno%slruPagesPerSegment)
}

// zeroSlruPage stores a zero page and extends the segment (ZEROPAGE records).
func (in *Ingester) zeroSlruPage(ctx context.Context, kind keyspace.SlruKind, pageno uint32, at lsn.LSN) error {
	if err := in.extendSlru(ctx, kind, pageno); err != nil {
		return err
	}
	return in.putZeroPage(ctx, slruKey(kind, pageno), at)
}

// ---- twophase ----

func (in *Ingester) loadTwoPhase(ctx context.Context) (map[uint32]struct{}, error) {
	if in.twoPhase != nil {
		return in.twoPhase, nil
	}
	b, found, err := in.latest(ctx, keyspace.TwoPhaseDir())
	if err != nil {
		return nil, err
	}
	in.twoPhase = make(map[uint32]struct{})
	if found {
		if in.twoPhase, err = DecodeTwoPhaseDir(b); err != nil {
			return nil, err
		}
	}
	return in.twoPhase, nil
}

// ---- flush ----

// flush writes the metadata the record changed, at its end LSN.
func (in *Ingester) flush(ctx context.Context, at lsn.LSN) error {
	if !in.metaDirty {
		return nil
	}
	in.metaDirty = false
	for rel := range in.dirtySizes {
		if err := in.putMeta(ctx, keyspace.RelSize(rel), at, EncodeRelSize(in.relSizes[rel])); err != nil {
			return err
		}
	}
	clear(in.dirtySizes)
	for db, d := range in.relDirs {
		if d.dirty {
			if err := in.putMeta(ctx, keyspace.RelDir(db.SpcNode, db.DbNode), at, EncodeRelDir(d.rels)); err != nil {
				return err
			}
			d.dirty = false
		}
	}
	if in.dbDirDirty {
		if err := in.putMeta(ctx, keyspace.DbDir(), at, EncodeDbDir(in.dbDir)); err != nil {
			return err
		}
		in.dbDirDirty = false
	}
	for seg := range in.dirtySlruSizes {
		if err := in.putMeta(ctx, keyspace.SlruSegmentSize(seg.kind, seg.segno), at, EncodeRelSize(in.slruSizes[seg])); err != nil {
			return err
		}
	}
	clear(in.dirtySlruSizes)
	for kind, d := range in.slruDirs {
		if d != nil && d.dirty {
			if err := in.putMeta(ctx, keyspace.SlruDir(keyspace.SlruKind(kind)), at, EncodeSlruDir(d.segs)); err != nil {
				return err
			}
			d.dirty = false
		}
	}
	if in.twoPhaseDirty {
		if err := in.putMeta(ctx, keyspace.TwoPhaseDir(), at, EncodeTwoPhaseDir(in.twoPhase)); err != nil {
			return err
		}
		in.twoPhaseDirty = false
	}
	if in.cpDirty {
		if err := in.putMeta(ctx, keyspace.Checkpoint(), at, in.cp.Encode()); err != nil {
			return err
		}
		in.cpDirty = false
	}
	return nil
}
