package walingest

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/native"
	"github.com/stratadb/strata/services/pageserver/value"
)

// PostgreSQL's fixed tablespace of shared catalogs (GLOBALTABLESPACE_OID).
const globalTablespace pgtypes.Oid = 1664

// special handles records with effects beyond their block references
// (neon-anchor §6.2).
func (in *Ingester) special(ctx context.Context, rec *pgwal.DecodedRecord) error {
	switch rec.RmID {
	case rmgr.XLOG, rmgr.Transaction, rmgr.Storage, rmgr.CLOG, rmgr.Database,
		rmgr.MultiXact, rmgr.RelMap, rmgr.Standby, rmgr.Heap, rmgr.Heap2:
	default:
		// Tablespace records are ignored (tablespaces other than the two
		// built-in ones are not supported); LogicalMessage records are
		// ignored because Strata keeps no logical-replication state (Neon
		// stores "neon-file:" messages as AUX files, which only its patched
		// compute writes). Everything else has only block references.
		return nil
	}
	if rec.RmID == rmgr.Heap || rec.RmID == rmgr.Heap2 {
		op := rec.RmgrInfo() & rmgr.HeapOpMask
		if rec.RmID == rmgr.Heap && op != rmgr.InfoHeapInsert && op != rmgr.InfoHeapDelete &&
			op != rmgr.InfoHeapUpdate && op != rmgr.InfoHeapHotUpdate && op != rmgr.InfoHeapLock {
			return nil
		}
		if rec.RmID == rmgr.Heap2 && op != rmgr.InfoHeap2MultiInsert && op != rmgr.InfoHeap2LockUpdated {
			return nil
		}
	}
	if rec.RmID == rmgr.Heap {
		// The common case of a write-heavy stream: no Body allocated.
		newBits, oldBits, ok, err := rmgr.HeapVMClear(rec.Info, rec.MainData)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if ok {
			return in.clearVM(ctx, rec, newBits, oldBits, rec.EndLSN)
		}
	}
	body, err := rmgr.Decode(rec.RmID, rec.Info, rec.MainData)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	end := rec.EndLSN
	switch b := body.(type) {
	// XLOG
	case *rmgr.Checkpoint:
		return in.mergeCheckpoint(ctx, b.CheckPoint, b.Shutdown, end)
	case *rmgr.NextOID:
		if in.cp.NextOid != b.NextOid {
			in.cp.NextOid = b.NextOid
			in.cpDirty = true
			in.metaDirty = true
		}
	case *rmgr.ParameterChange:
		return in.parameterChange(ctx, b, end)
	case *rmgr.EndOfRecovery:
		in.cp.ThisTimeLineID, in.cp.PrevTimeLineID = b.ThisTimeLineID, b.PrevTimeLineID
		in.cpDirty = true
		in.metaDirty = true

	// Storage
	case *rmgr.SmgrCreate:
		// smgr_redo creates the file if it is missing (isRedo): an existing
		// relation keeps its size.
		exists, err := in.relExists(ctx, b.Tag())
		if err != nil || exists {
			return err
		}
		return in.createRel(ctx, b.Tag())
	case *rmgr.SmgrTruncate:
		return in.smgrTruncate(ctx, b, end)

	// Database
	case *rmgr.DBCreateFileCopy:
		return in.createDatabaseFileCopy(ctx, b, rec.LSN, end)
	case *rmgr.DBCreateWalLog:
		// The directory exists from now on; its relmapper file and pages
		// follow as ordinary records.
		return in.ensureDb(ctx, DbDirEntry{SpcNode: b.TablespaceID, DbNode: b.DbID}, false)
	case *rmgr.DBDrop:
		return in.dropDatabase(ctx, b)

	// Transaction
	case *rmgr.XactCommit:
		return in.xactCompletion(ctx, rec, &b.XactCompletion, true, b.Prepared, end)
	case *rmgr.XactAbort:
		return in.xactCompletion(ctx, rec, &b.XactCompletion, false, b.Prepared, end)
	case *rmgr.XactPrepare:
		return in.prepare(ctx, rec, b, end)
	case *rmgr.XactAssignment:
		in.observeXid(b.Xtop)
		for _, x := range b.Subxacts {
			in.observeXid(x)
		}

	// CLOG
	case *rmgr.ClogZeroPage:
		return in.zeroSlruPage(ctx, keyspace.SlruClog, uint32(b.PageNo), end)
	case *rmgr.ClogTruncate:
		return in.clogTruncate(ctx, b)

	// MultiXact
	case *rmgr.MultiXactZeroOffPage:
		return in.zeroSlruPage(ctx, keyspace.SlruMultiXactOffsets, uint32(b.PageNo), end)
	case *rmgr.MultiXactZeroMemPage:
		return in.zeroSlruPage(ctx, keyspace.SlruMultiXactMembers, uint32(b.PageNo), end)
	case *rmgr.MultiXactCreate:
		return in.multiXactCreate(ctx, rec, b, end)
	case *rmgr.MultiXactTruncate:
		return in.multiXactTruncate(ctx, b)

	// RelMap
	case *rmgr.RelMapUpdate:
		if err := in.putMeta(ctx, keyspace.RelMapFile(b.TsID, b.DbID), end, b.Data); err != nil {
			return err
		}
		return in.ensureDb(ctx, DbDirEntry{SpcNode: b.TsID, DbNode: b.DbID}, true)

	// Standby
	case *rmgr.RunningXacts:
		if in.cp.OldestActiveXid != b.OldestRunningXid {
			in.cp.OldestActiveXid = b.OldestRunningXid
			in.cpDirty = true
			in.metaDirty = true
		}
		if b.NextXid > firstNormalXid {
			in.observeXid(b.NextXid - 1)
		}

	// Heap and Heap2
	case rmgr.VMClearer:
		newBits, oldBits := b.VMClear()
		return in.clearVM(ctx, rec, newBits, oldBits, end)
	}
	return nil
}

// smgrTruncate mirrors smgr_redo's XLOG_SMGR_TRUNCATE: the main fork is cut
// to Blkno blocks, the FSM and VM to what covers Blkno heap blocks, the
// partial last FSM page is zeroed and the partial last VM page loses the
// bits of the removed heap blocks.
func (in *Ingester) smgrTruncate(ctx context.Context, b *rmgr.SmgrTruncate, at lsn.LSN) error {
	if b.TruncatesHeap() {
		if err := in.truncateRel(ctx, b.Rel.Tag(pgtypes.MainForkNum), b.Blkno); err != nil {
			return err
		}
	}
	if b.TruncatesFSM() {
		fsm := b.Rel.Tag(pgtypes.FSMForkNum)
		exists, err := in.relExists(ctx, fsm)
		if err != nil {
			return err
		}
		if exists {
			n, err := in.relSize(ctx, fsm)
			if err != nil {
				return err
			}
			first := fsmLogicalToPhysical(b.Blkno / fsmSlotsPerPage)
			if b.Blkno%fsmSlotsPerPage != 0 {
				// FreeSpaceMapPrepareTruncateRel clears the tail slots of
				// the last FSM leaf page; a zeroed FSM page is valid (no
				// free space recorded), as Neon does.
				if first < n {
					if err := in.putZeroPage(ctx, keyspace.RelBlock(fsm, first), at); err != nil {
						return err
					}
				}
				first++
			}
			if first < n {
				in.setRelSize(fsm, first)
			}
		}
	}
	if b.TruncatesVM() {
		vm := b.Rel.Tag(pgtypes.VisibilityMapForkNum)
		exists, err := in.relExists(ctx, vm)
		if err != nil {
			return err
		}
		if exists {
			n, err := in.relSize(ctx, vm)
			if err != nil {
				return err
			}
			keep := native.VMBlock(b.Blkno)
			if b.Blkno%native.VMHeapBlocksPerPage != 0 {
				if keep < n {
					payload := native.AppendTruncateVM(nil, b.Blkno)
					if err := in.putNative(ctx, keyspace.RelBlock(vm, keep), at, native.SubtypeTruncateVisibilityMap, payload); err != nil {
						return err
					}
				}
				keep++
			}
			if keep < n {
				in.setRelSize(vm, keep)
			}
		}
	}
	return nil
}

// truncateRel shrinks an existing relation to n blocks (never grows it,
// like mdtruncate in recovery).
func (in *Ingester) truncateRel(ctx context.Context, rel pgtypes.RelTag, n uint32) error {
	exists, err := in.relExists(ctx, rel)
	if err != nil || !exists {
		return err
	}
	old, err := in.relSize(ctx, rel)
	if err != nil {
		return err
	}
	if n < old {
		in.setRelSize(rel, n)
	}
	return nil
}

// FSM geometry (freespace.c, fsm_internals.h) for BLCKSZ 8192.
const (
	fsmNodesPerPage   = 8192 - 24 - 4 // BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - offsetof(FSMPageData, fp_nodes)
	fsmNonLeafPerPage = 8192/2 - 1
	fsmSlotsPerPage   = fsmNodesPerPage - fsmNonLeafPerPage // 4069
	fsmTreeDepth      = 3
)

// fsmLogicalToPhysical is fsm_logical_to_physical for a bottom-level page.
func fsmLogicalToPhysical(logical uint32) uint32 {
	leaf := uint64(logical)
	pages := uint64(0)
	for range fsmTreeDepth {
		pages += leaf + 1
		leaf /= fsmSlotsPerPage
	}
	return uint32(pages - 1)
}

// createDatabaseFileCopy copies the source database's relmapper file and
// every block of every relation as of the record (dbase_redo copies the
// directory).
func (in *Ingester) createDatabaseFileCopy(ctx context.Context, b *rmgr.DBCreateFileCopy, start, end lsn.LSN) error {
	src := DbDirEntry{SpcNode: b.SrcTablespaceID, DbNode: b.SrcDbID}
	dst := DbDirEntry{SpcNode: b.TablespaceID, DbNode: b.DbID}
	dbs, err := in.loadDbDir(ctx)
	if err != nil {
		return err
	}
	hasRelmap, ok := dbs[src]
	if !ok {
		return fmt.Errorf("%w: source database %d/%d of CREATE DATABASE %d is not in the database directory", ErrMissingBase, src.SpcNode, src.DbNode, dst.DbNode)
	}
	if in.pages == nil {
		return ErrNoPageReader
	}
	if err := in.ensureDb(ctx, dst, hasRelmap); err != nil {
		return err
	}
	if hasRelmap {
		m, found, err := in.latest(ctx, keyspace.RelMapFile(src.SpcNode, src.DbNode))
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: relmapper file of database %d/%d", ErrMissingBase, src.SpcNode, src.DbNode)
		}
		if err := in.putMeta(ctx, keyspace.RelMapFile(dst.SpcNode, dst.DbNode), end, m); err != nil {
			return err
		}
	}
	srcDir, err := in.loadRelDir(ctx, src)
	if err != nil {
		return err
	}
	rels := slices.SortedFunc(maps.Keys(srcDir.rels), func(a, b RelDirEntry) int {
		if a.RelNode != b.RelNode {
			return int(int64(a.RelNode) - int64(b.RelNode))
		}
		return int(a.Fork) - int(b.Fork)
	})
	for _, e := range rels {
		srcRel := pgtypes.RelTag{SpcNode: src.SpcNode, DbNode: src.DbNode, RelNode: e.RelNode, ForkNum: e.Fork}
		dstRel := pgtypes.RelTag{SpcNode: dst.SpcNode, DbNode: dst.DbNode, RelNode: e.RelNode, ForkNum: e.Fork}
		n, err := in.relSize(ctx, srcRel)
		if err != nil {
			return err
		}
		if err := in.createRel(ctx, dstRel); err != nil {
			return err
		}
		in.setRelSize(dstRel, n)
		for blk := range n {
			page, err := in.pages.PageAt(ctx, keyspace.RelBlock(srcRel, blk), start)
			if err != nil {
				return fmt.Errorf("walingest: copying %s block %d for CREATE DATABASE: %w", srcRel, blk, err)
			}
			if len(page) != pgtypes.BLCKSZ {
				return fmt.Errorf("%w: page of %s block %d has %d bytes", ErrCorrupt, srcRel, blk, len(page))
			}
			v := value.AppendImage(make([]byte, 0, 2+pgtypes.BLCKSZ), page)
			if err := in.store.Put(ctx, keyspace.RelBlock(dstRel, blk), end, v); err != nil {
				return err
			}
			in.stats.CopiedBlocks++
			in.stats.Images++
		}
	}
	return nil
}

// dropDatabase removes the database from the database directory and empties
// its relation directory in every listed tablespace.
func (in *Ingester) dropDatabase(ctx context.Context, b *rmgr.DBDrop) error {
	dbs, err := in.loadDbDir(ctx)
	if err != nil {
		return err
	}
	for _, spc := range b.TablespaceIDs {
		db := DbDirEntry{SpcNode: spc, DbNode: b.DbID}
		if _, ok := dbs[db]; ok {
			delete(dbs, db)
			in.dbDirDirty = true
			in.metaDirty = true
		}
		d, err := in.loadRelDir(ctx, db)
		if err != nil {
			return err
		}
		if len(d.rels) > 0 {
			in.stats.RelsDropped += uint64(len(d.rels))
			clear(d.rels)
			d.dirty = true
			in.metaDirty = true
		}
		for rel := range in.relSizes {
			if rel.SpcNode == spc && rel.DbNode == b.DbID {
				delete(in.relSizes, rel)
				delete(in.dirtySizes, rel)
				in.lastRel.ok = false
			}
		}
	}
	return nil
}

// xactCompletion handles COMMIT, ABORT and their *_PREPARED forms: CLOG
// bits for the xact and its subxacts (one native record per CLOG page),
// relation files dropped, the twophase file of a prepared xact removed.
func (in *Ingester) xactCompletion(ctx context.Context, rec *pgwal.DecodedRecord, x *rmgr.XactCompletion, commit, prepared bool, at lsn.LSN) error {
	xids := x.Xids(rec.Xid)
	for _, xid := range xids {
		in.observeXid(xid)
	}
	for len(xids) > 0 {
		// Group by CLOG page, keeping the record's order within a page
		// (TransactionIdSetTreeStatus also works page by page).
		page := native.ClogPage(xids[0])
		var onPage, rest []uint32
		for _, xid := range xids {
			if native.ClogPage(xid) == page {
				onPage = append(onPage, xid)
			} else {
				rest = append(rest, xid)
			}
		}
		var err error
		if commit {
			err = in.putNative(ctx, slruKey(keyspace.SlruClog, page), at, native.SubtypeClogSetCommitted,
				native.AppendClogCommitted(nil, int64(x.XactTime), onPage))
		} else {
			err = in.putNative(ctx, slruKey(keyspace.SlruClog, page), at, native.SubtypeClogSetAborted,
				native.AppendClogAborted(nil, onPage))
		}
		if err != nil {
			return err
		}
		xids = rest
	}
	for _, node := range x.Rels {
		if err := in.dropRelFile(ctx, node); err != nil {
			return err
		}
	}
	if prepared {
		tp, err := in.loadTwoPhase(ctx)
		if err != nil {
			return err
		}
		xid := x.Xid(rec.Xid)
		if _, ok := tp[xid]; ok {
			delete(tp, xid)
			in.twoPhaseDirty = true
			in.metaDirty = true
		}
	}
	return nil
}

// prepare stores the twophase state file of a PREPARE TRANSACTION: the
// record's main data followed by its CRC-32C, byte for byte what
// pg_twophase/<XID> holds (pg15-formats §6.6).
func (in *Ingester) prepare(ctx context.Context, rec *pgwal.DecodedRecord, b *rmgr.XactPrepare, at lsn.LSN) error {
	in.observeXid(b.Xid)
	for _, x := range b.Subxacts {
		in.observeXid(x)
	}
	file := make([]byte, 0, len(rec.MainData)+4)
	file = append(file, rec.MainData...)
	file = binary.LittleEndian.AppendUint32(file, crc32.Checksum(rec.MainData, castagnoli))
	if err := in.putMeta(ctx, keyspace.TwoPhaseFile(uint64(b.Xid)), at, file); err != nil {
		return err
	}
	tp, err := in.loadTwoPhase(ctx)
	if err != nil {
		return err
	}
	tp[b.Xid] = struct{}{}
	in.twoPhaseDirty = true
	in.metaDirty = true
	return nil
}

// clogTruncate mirrors clog_redo's TRUNCATE: advance oldestXid, delete the
// segments wholly before the cutoff page.
func (in *Ingester) clogTruncate(ctx context.Context, b *rmgr.ClogTruncate) error {
	in.cp.OldestXid, in.cp.OldestXidDB = b.OldestXact, b.OldestXactDb
	in.cpDirty = true
	in.metaDirty = true
	d, err := in.loadSlruDir(ctx, keyspace.SlruClog)
	if err != nil {
		return err
	}
	cutoff := uint32(b.PageNo)
	cutoff -= cutoff % slruPagesPerSegment
	for seg := range d.segs {
		first := seg * slruPagesPerSegment
		if clogPagePrecedes(first, cutoff) && clogPagePrecedes(first+slruPagesPerSegment-1, cutoff) {
			in.dropSlruSegment(keyspace.SlruClog, seg)
		}
	}
	return nil
}

// clogPagePrecedes is CLOGPagePrecedes.
func clogPagePrecedes(p1, p2 uint32) bool {
	x1 := p1*native.ClogXactsPerPage + firstNormalXid + 1
	x2 := p2*native.ClogXactsPerPage + firstNormalXid + 1
	return xidPrecedes(x1, x2) && xidPrecedes(x1, x2+native.ClogXactsPerPage-1)
}

// multiOffsetPagePrecedes is MultiXactOffsetPagePrecedes.
func multiOffsetPagePrecedes(p1, p2 uint32) bool {
	m1 := p1*native.MultiXactOffsetsPerPage + firstMultiXact
	m2 := p2*native.MultiXactOffsetsPerPage + firstMultiXact
	return multiPrecedes(m1, m2) && multiPrecedes(m1, m2+native.MultiXactOffsetsPerPage-1)
}

// multiXactCreate mirrors multixact_redo's CREATE_ID (RecordNewMultiXact of
// PostgreSQL 15.18): the multi's offset, the next multi's offset, the
// members; then nextMulti, nextMultiOffset and nextXid advance.
func (in *Ingester) multiXactCreate(ctx context.Context, rec *pgwal.DecodedRecord, b *rmgr.MultiXactCreate, at lsn.LSN) error {
	next := b.Mid + 1
	if next < firstMultiXact {
		next = firstMultiXact
	}
	nextOffset := b.Moff + uint32(len(b.Members))
	if nextOffset == 0 {
		nextOffset = 1 // as GetNewMultiXactId, offset 0 is skipped
	}
	page := native.MultiXactOffsetPage(b.Mid)
	entries := []native.MultiXactOffset{{Multi: b.Mid, Offset: b.Moff}}
	nextPage := native.MultiXactOffsetPage(next)
	if nextPage == page {
		entries = append(entries, native.MultiXactOffset{Multi: next, Offset: nextOffset})
	}
	if err := in.putNative(ctx, slruKey(keyspace.SlruMultiXactOffsets, page), at, native.SubtypeMultixactOffsetCreate,
		native.AppendMultixactOffsets(nil, entries)); err != nil {
		return err
	}
	if nextPage != page {
		nextEntry := []native.MultiXactOffset{{Multi: next, Offset: nextOffset}}
		exists, err := in.slruPageExists(ctx, keyspace.SlruMultiXactOffsets, nextPage)
		if err != nil {
			return err
		}
		if exists {
			err = in.putNative(ctx, slruKey(keyspace.SlruMultiXactOffsets, nextPage), at, native.SubtypeMultixactOffsetCreate,
				native.AppendMultixactOffsets(nil, nextEntry))
		} else {
			// WAL of older minor versions does not zero the next page
			// first; recovery then initializes it (RecordNewMultiXact). One
			// value per key and LSN: store the resulting image.
			img := make([]byte, pgtypes.BLCKSZ)
			key := slruKey(keyspace.SlruMultiXactOffsets, nextPage)
			if err := native.Apply(native.SubtypeMultixactOffsetCreate, native.AppendMultixactOffsets(nil, nextEntry), img, key, at); err != nil {
				return err
			}
			if err = in.extendSlru(ctx, keyspace.SlruMultiXactOffsets, nextPage); err == nil {
				in.stats.Images++
				err = in.store.Put(ctx, key, at, value.AppendImage(nil, img))
			}
		}
		if err != nil {
			return err
		}
	}
	// Members, one record per members page.
	members := make([]native.MultiXactMember, len(b.Members))
	for i, m := range b.Members {
		members[i] = native.MultiXactMember{Xid: m.Xid, Status: uint8(m.Status)}
		in.observeXid(m.Xid)
	}
	off := b.Moff
	for len(members) > 0 {
		page := native.MultiXactMemberPage(off)
		n := 0
		for n < len(members) && native.MultiXactMemberPage(off+uint32(n)) == page {
			n++
		}
		if err := in.putNative(ctx, slruKey(keyspace.SlruMultiXactMembers, page), at, native.SubtypeMultixactMembersCreate,
			native.AppendMultixactMembers(nil, off, members[:n])); err != nil {
			return err
		}
		members, off = members[n:], off+uint32(n)
	}
	if multiPrecedes(in.cp.NextMulti, next) {
		in.cp.NextMulti = next
		in.cpDirty = true
		in.metaDirty = true
	}
	if multiPrecedes(in.cp.NextMultiOffset, nextOffset) {
		in.cp.NextMultiOffset = nextOffset
		in.cpDirty = true
		in.metaDirty = true
	}
	return nil
}

// multiXactTruncate mirrors multixact_redo's TRUNCATE_ID: oldestMulti
// advances; members segments [start, end) and offsets segments before the
// one holding endTruncOff-1 are deleted.
func (in *Ingester) multiXactTruncate(ctx context.Context, b *rmgr.MultiXactTruncate) error {
	in.cp.OldestMulti, in.cp.OldestMultiDB = b.EndTruncOff, b.OldestMultiDB
	in.cpDirty = true
	in.metaDirty = true

	mem, err := in.loadSlruDir(ctx, keyspace.SlruMultiXactMembers)
	if err != nil {
		return err
	}
	startSeg := native.MultiXactMemberPage(b.StartTruncMemb) / slruPagesPerSegment
	endSeg := native.MultiXactMemberPage(b.EndTruncMemb) / slruPagesPerSegment
	for seg := range mem.segs {
		if inCircularRange(seg, startSeg, endSeg) {
			in.dropSlruSegment(keyspace.SlruMultiXactMembers, seg)
		}
	}

	off, err := in.loadSlruDir(ctx, keyspace.SlruMultiXactOffsets)
	if err != nil {
		return err
	}
	prev := b.EndTruncOff - 1
	if prev < firstMultiXact {
		prev = ^uint32(0) // PreviousMultiXactId wraps to MaxMultiXactId
	}
	cutoff := native.MultiXactOffsetPage(prev)
	cutoff -= cutoff % slruPagesPerSegment
	for seg := range off.segs {
		first := seg * slruPagesPerSegment
		if multiOffsetPagePrecedes(first, cutoff) && multiOffsetPagePrecedes(first+slruPagesPerSegment-1, cutoff) {
			in.dropSlruSegment(keyspace.SlruMultiXactOffsets, seg)
		}
	}
	return nil
}

func inCircularRange(v, start, end uint32) bool {
	if start <= end {
		return start <= v && v < end
	}
	return v >= start || v < end
}

// clearVM emits ClearVisibilityMapFlags for the heap pages whose
// all-visible/all-frozen bits the record clears (heap_xlog_insert & co. call
// visibilitymap_clear): newBits on block 0's page, oldBits on the old
// tuple's page (rmgr.VMClearer). The VM page is not a block reference of
// these records. A VM page beyond the VM fork's size is skipped, as redo
// would find no page to clear.
func (in *Ingester) clearVM(ctx context.Context, rec *pgwal.DecodedRecord, newBits, oldBits uint8, at lsn.LSN) error {
	if newBits == 0 && oldBits == 0 {
		return nil
	}
	blk0 := rec.Block(0)
	if blk0 == nil {
		return fmt.Errorf("%w: heap record without block 0", ErrCorrupt)
	}
	oldBlk := blk0
	if b1 := rec.Block(1); b1 != nil {
		oldBlk = b1
	}
	vm := blk0.Rel.Tag(pgtypes.VisibilityMapForkNum)
	exists, err := in.relExists(ctx, vm)
	if err != nil || !exists {
		return err
	}
	vmSize, err := in.relSize(ctx, vm)
	if err != nil {
		return err
	}
	var clears [2]native.VMClear
	n := 0
	if newBits != 0 {
		clears[n] = native.VMClear{HeapBlock: blk0.Block, Flags: newBits}
		n++
	}
	if oldBits != 0 {
		if n == 1 && clears[0].HeapBlock == oldBlk.Block {
			clears[0].Flags |= oldBits
		} else {
			clears[n] = native.VMClear{HeapBlock: oldBlk.Block, Flags: oldBits}
			n++
		}
	}
	// One record per VM page (one value per key and LSN).
	if n == 2 && native.VMBlock(clears[0].HeapBlock) != native.VMBlock(clears[1].HeapBlock) {
		for _, c := range clears[:n] {
			if err := in.putClearVM(ctx, vm, vmSize, []native.VMClear{c}, at); err != nil {
				return err
			}
		}
		return nil
	}
	return in.putClearVM(ctx, vm, vmSize, clears[:n], at)
}

func (in *Ingester) putClearVM(ctx context.Context, vm pgtypes.RelTag, vmSize uint32, clears []native.VMClear, at lsn.LSN) error {
	vmBlk := native.VMBlock(clears[0].HeapBlock)
	if vmBlk >= vmSize {
		in.log.Debug("VM page beyond the VM fork; nothing to clear", "rel", vm.String(), "vm_block", vmBlk, "vm_size", vmSize)
		return nil
	}
	return in.putNative(ctx, keyspace.RelBlock(vm, vmBlk), at, native.SubtypeClearVisibilityMapFlags, native.AppendClearVM(nil, clears))
}
