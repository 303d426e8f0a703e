package rmgr

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
)

// Transaction record opcodes (info & XactOpMask; src/include/access/xact.h).
const (
	InfoXactCommit         uint8 = 0x00
	InfoXactPrepare        uint8 = 0x10
	InfoXactAbort          uint8 = 0x20
	InfoXactCommitPrepared uint8 = 0x30
	InfoXactAbortPrepared  uint8 = 0x40
	InfoXactAssignment     uint8 = 0x50
	InfoXactInvalidations  uint8 = 0x60

	// XactOpMask selects the opcode from xl_info.
	XactOpMask uint8 = 0x70
	// XactHasInfo (XLOG_XACT_HAS_INFO) means an xinfo word follows xact_time.
	XactHasInfo uint8 = 0x80
)

// xinfo bits of commit and abort records (XACT_XINFO_* and XACT_COMPLETION_*).
const (
	XactXinfoHasDBInfo       uint32 = 1 << 0
	XactXinfoHasSubxacts     uint32 = 1 << 1
	XactXinfoHasRelFileNodes uint32 = 1 << 2
	XactXinfoHasInvals       uint32 = 1 << 3
	XactXinfoHasTwophase     uint32 = 1 << 4
	XactXinfoHasOrigin       uint32 = 1 << 5
	XactXinfoHasAELocks      uint32 = 1 << 6
	XactXinfoHasGID          uint32 = 1 << 7
	XactXinfoHasDroppedStats uint32 = 1 << 8

	XactCompletionApplyFeedback      uint32 = 1 << 29
	XactCompletionUpdateRelcacheFile uint32 = 1 << 30
	XactCompletionForceSyncCommit    uint32 = 1 << 31
)

// TwoPhaseMagic is TWOPHASE_MAGIC, the first word of a PREPARE record's main
// data and of a pg_twophase state file.
const TwoPhaseMagic uint32 = 0x57F94534

// SharedInvalMsgSize is sizeof(SharedInvalidationMessage).
const SharedInvalMsgSize = 16

const (
	xactPrepareHeaderSize = 72 // sizeof(xl_xact_prepare), already MAXALIGNed
	maxAlign              = 8
	droppedStatSize       = 12 // sizeof(xl_xact_stats_item)
	relFileNodeSize       = 12
)

// DroppedStat is one xl_xact_stats_item: a statistics entry dropped with the
// transaction (new in PostgreSQL 15).
type DroppedStat struct {
	Kind   int32
	DbOid  pgtypes.Oid
	ObjOid pgtypes.Oid
}

// XactCompletion is the parsed main data shared by COMMIT, ABORT,
// COMMIT_PREPARED and ABORT_PREPARED (ParseCommitRecord/ParseAbortRecord).
// Parts whose xinfo bit is clear are zero.
type XactCompletion struct {
	XactTime TimestampTz // the commit (or abort) timestamp
	XInfo    uint32      // 0 when the record has no XLOG_XACT_HAS_INFO
	DbID     pgtypes.Oid
	TsID     pgtypes.Oid
	Subxacts []uint32
	// Rels are the relations whose files are unlinked at commit (or abort).
	Rels         []pgtypes.RelFileNode
	DroppedStats []DroppedStat
	// InvalMsgs holds the SharedInvalidationMessages (16 bytes each; commit
	// only). It aliases Decode's input; the ingest does not interpret them.
	InvalMsgs       []byte
	TwophaseXid     uint32 // the prepared xact's xid (XACT_XINFO_HAS_TWOPHASE); 0 otherwise
	TwophaseGID     string
	OriginLSN       lsn.LSN
	OriginTimestamp TimestampTz
}

// Xid returns the transaction the record finishes: TwophaseXid when set
// (COMMIT_PREPARED/ABORT_PREPARED carry xl_xid = 0), else recordXid.
func (x *XactCompletion) Xid(recordXid uint32) uint32 {
	if x.TwophaseXid != 0 {
		return x.TwophaseXid
	}
	return recordXid
}

// Xids returns Xid(recordXid) followed by the subtransactions: every xid
// whose CLOG status the record sets.
func (x *XactCompletion) Xids(recordXid uint32) []uint32 {
	out := make([]uint32, 0, 1+len(x.Subxacts))
	out = append(out, x.Xid(recordXid))
	return append(out, x.Subxacts...)
}

// NumInvalMsgs returns the number of invalidation messages.
func (x *XactCompletion) NumInvalMsgs() int { return len(x.InvalMsgs) / SharedInvalMsgSize }

// parseCompletion mirrors ParseCommitRecord (commit) and ParseAbortRecord
// (abort, which has no invalidations part).
func parseCompletion(c *cursor, info uint8, commit bool) XactCompletion {
	var x XactCompletion
	x.XactTime = TimestampTz(c.i64("xact_time"))
	if info&XactHasInfo != 0 {
		x.XInfo = c.u32("xinfo")
	}
	if x.XInfo&XactXinfoHasDBInfo != 0 {
		x.DbID = c.oid("dbId")
		x.TsID = c.oid("tsId")
	}
	if x.XInfo&XactXinfoHasSubxacts != 0 {
		n := c.count("subxacts", 4)
		x.Subxacts = c.u32s(n, "subxacts")
	}
	if x.XInfo&XactXinfoHasRelFileNodes != 0 {
		n := c.count("relfilenodes", relFileNodeSize)
		x.Rels = c.relFileNodes(n, "relfilenodes")
	}
	if x.XInfo&XactXinfoHasDroppedStats != 0 {
		n := c.count("dropped stats", droppedStatSize)
		x.DroppedStats = readDroppedStats(c, n)
	}
	if commit && x.XInfo&XactXinfoHasInvals != 0 {
		n := c.count("invals", SharedInvalMsgSize)
		x.InvalMsgs = c.bytes(n*SharedInvalMsgSize, "invals")
	}
	if x.XInfo&XactXinfoHasTwophase != 0 {
		x.TwophaseXid = c.u32("twophase xid")
		if x.XInfo&XactXinfoHasGID != 0 {
			x.TwophaseGID = c.cstring("gid")
		}
	}
	// No alignment is guaranteed from here on; the cursor reads unaligned.
	if x.XInfo&XactXinfoHasOrigin != 0 {
		x.OriginLSN = lsn.LSN(c.u64("origin_lsn"))
		x.OriginTimestamp = TimestampTz(c.i64("origin_timestamp"))
	}
	return x
}

func readDroppedStats(c *cursor, n int) []DroppedStat {
	if n == 0 || !c.need(n*droppedStatSize, "dropped stats") {
		return nil
	}
	out := make([]DroppedStat, n)
	for i := range out {
		out[i] = DroppedStat{Kind: c.i32("kind"), DbOid: c.oid("dboid"), ObjOid: c.oid("objoid")}
	}
	return out
}

// XactCommit is Transaction COMMIT, or COMMIT_PREPARED when Prepared.
type XactCommit struct {
	Prepared bool
	XactCompletion
}

func (*XactCommit) isBody() {}

// Rmgr implements Body.
func (*XactCommit) Rmgr() ID { return Transaction }

// RecordName implements Body.
func (b *XactCommit) RecordName() string {
	if b.Prepared {
		return "COMMIT_PREPARED"
	}
	return "COMMIT"
}

// String implements Body (xact_desc_commit).
func (b *XactCommit) String() string {
	var s strings.Builder
	x := &b.XactCompletion
	if x.TwophaseXid != 0 {
		fmt.Fprintf(&s, "%d: ", x.TwophaseXid)
	}
	s.WriteString(x.XactTime.String())
	descRelations(&s, "rels", x.Rels)
	descSubxacts(&s, x.Subxacts)
	descStats(&s, "", x.DroppedStats)
	descInvals(&s, x.InvalMsgs, x.DbID, x.TsID, x.XInfo&XactCompletionUpdateRelcacheFile != 0)
	if x.XInfo&XactCompletionApplyFeedback != 0 {
		s.WriteString("; apply_feedback")
	}
	if x.XInfo&XactCompletionForceSyncCommit != 0 {
		s.WriteString("; sync")
	}
	descOrigin(&s, x)
	return s.String()
}

// XactAbort is Transaction ABORT, or ABORT_PREPARED when Prepared.
type XactAbort struct {
	Prepared bool
	XactCompletion
}

func (*XactAbort) isBody() {}

// Rmgr implements Body.
func (*XactAbort) Rmgr() ID { return Transaction }

// RecordName implements Body.
func (b *XactAbort) RecordName() string {
	if b.Prepared {
		return "ABORT_PREPARED"
	}
	return "ABORT"
}

// String implements Body (xact_desc_abort).
func (b *XactAbort) String() string {
	var s strings.Builder
	x := &b.XactCompletion
	if x.TwophaseXid != 0 {
		fmt.Fprintf(&s, "%d: ", x.TwophaseXid)
	}
	s.WriteString(x.XactTime.String())
	descRelations(&s, "rels", x.Rels)
	descSubxacts(&s, x.Subxacts)
	descOrigin(&s, x)
	descStats(&s, "", x.DroppedStats)
	return s.String()
}

// XactPrepare is Transaction PREPARE. Its main data is exactly the content of
// the pg_twophase state file without the trailing CRC (pg15-formats.md §6.6);
// Raw keeps it whole so the ingest can store the file.
type XactPrepare struct {
	TotalLen        uint32 // size of the state file including its CRC
	Xid             uint32
	Database        pgtypes.Oid
	PreparedAt      TimestampTz
	Owner           pgtypes.Oid
	InitFileInval   bool
	OriginLSN       lsn.LSN
	OriginTimestamp TimestampTz
	GID             string
	Subxacts        []uint32
	CommitRels      []pgtypes.RelFileNode
	AbortRels       []pgtypes.RelFileNode
	CommitStats     []DroppedStat
	AbortStats      []DroppedStat
	InvalMsgs       []byte // aliases Decode's input
	// Raw is the whole main data (aliases Decode's input). The 2PC records
	// after the invalidation messages are left in it undecoded.
	Raw []byte
}

func (*XactPrepare) isBody() {}

// Rmgr implements Body.
func (*XactPrepare) Rmgr() ID { return Transaction }

// RecordName implements Body.
func (*XactPrepare) RecordName() string { return "PREPARE" }

// String implements Body (xact_desc_prepare).
func (b *XactPrepare) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "gid %s: %s", b.GID, b.PreparedAt)
	descRelations(&s, "rels(commit)", b.CommitRels)
	descRelations(&s, "rels(abort)", b.AbortRels)
	descStats(&s, "commit ", b.CommitStats)
	descStats(&s, "abort ", b.AbortStats)
	descSubxacts(&s, b.Subxacts)
	descInvals(&s, b.InvalMsgs, b.Database, 0, b.InitFileInval)
	return s.String()
}

// parsePrepare mirrors ParsePrepareRecord: a 72-byte header, then gid,
// subxacts, commit rels, abort rels, commit stats, abort stats and inval
// messages, each padded to MAXALIGN.
func parsePrepare(c *cursor) *XactPrepare {
	p := &XactPrepare{Raw: c.b}
	if !c.need(xactPrepareHeaderSize, "xl_xact_prepare header") {
		return p
	}
	magic := c.u32("magic")
	if magic != TwoPhaseMagic {
		c.fail(ErrCorrupt, "magic %#x, want %#x", magic, TwoPhaseMagic)
		return p
	}
	p.TotalLen = c.u32("total_len")
	p.Xid = c.u32("xid")
	p.Database = c.oid("database")
	p.PreparedAt = TimestampTz(c.i64("prepared_at"))
	p.Owner = c.oid("owner")
	nsubxacts := c.i32("nsubxacts")
	ncommitrels := c.i32("ncommitrels")
	nabortrels := c.i32("nabortrels")
	ncommitstats := c.i32("ncommitstats")
	nabortstats := c.i32("nabortstats")
	ninvalmsgs := c.i32("ninvalmsgs")
	p.InitFileInval = c.boolean("initfileinval")
	c.skip(1, "pad") // garbage has been seen here
	gidlen := c.u16("gidlen")
	p.OriginLSN = lsn.LSN(c.u64("origin_lsn"))
	p.OriginTimestamp = TimestampTz(c.i64("origin_timestamp"))

	gid := c.bytes(int(gidlen), "gid")
	for i, ch := range gid {
		if ch == 0 {
			gid = gid[:i]
			break
		}
	}
	p.GID = string(gid)
	c.alignTo(maxAlign)

	n := c.checkCount("subxacts", int64(nsubxacts), 4)
	p.Subxacts = c.u32s(n, "subxacts")
	c.alignTo(maxAlign)
	n = c.checkCount("commit rels", int64(ncommitrels), relFileNodeSize)
	p.CommitRels = c.relFileNodes(n, "commit rels")
	c.alignTo(maxAlign)
	n = c.checkCount("abort rels", int64(nabortrels), relFileNodeSize)
	p.AbortRels = c.relFileNodes(n, "abort rels")
	c.alignTo(maxAlign)
	n = c.checkCount("commit stats", int64(ncommitstats), droppedStatSize)
	p.CommitStats = readDroppedStats(c, n)
	c.alignTo(maxAlign)
	n = c.checkCount("abort stats", int64(nabortstats), droppedStatSize)
	p.AbortStats = readDroppedStats(c, n)
	c.alignTo(maxAlign)
	n = c.checkCount("invals", int64(ninvalmsgs), SharedInvalMsgSize)
	p.InvalMsgs = c.bytes(n*SharedInvalMsgSize, "invals")
	return p
}

// XactAssignment is Transaction ASSIGNMENT: subtransaction xids assigned
// under top-level transaction Xtop.
type XactAssignment struct {
	Xtop     uint32
	Subxacts []uint32
}

func (*XactAssignment) isBody() {}

// Rmgr implements Body.
func (*XactAssignment) Rmgr() ID { return Transaction }

// RecordName implements Body.
func (*XactAssignment) RecordName() string { return "ASSIGNMENT" }

// String implements Body.
func (b *XactAssignment) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "xtop %d: subxacts:", b.Xtop)
	for _, x := range b.Subxacts {
		fmt.Fprintf(&s, " %d", x)
	}
	return s.String()
}

// XactInvalidations is Transaction INVALIDATIONS (wal_level=logical only).
type XactInvalidations struct {
	InvalMsgs []byte // 16 bytes each; aliases Decode's input
}

func (*XactInvalidations) isBody() {}

// Rmgr implements Body.
func (*XactInvalidations) Rmgr() ID { return Transaction }

// RecordName implements Body.
func (*XactInvalidations) RecordName() string { return "INVALIDATION" }

// String implements Body.
func (b *XactInvalidations) String() string {
	var s strings.Builder
	descInvals(&s, b.InvalMsgs, 0, 0, false)
	// pg_waldump prints the separator even at the start.
	return s.String()
}

func decodeXact(info uint8, data []byte) (Body, error) {
	op := info & XactOpMask
	c := newCursor(Transaction, info, data)
	var b Body
	switch op {
	case InfoXactCommit, InfoXactCommitPrepared:
		b = &XactCommit{Prepared: op == InfoXactCommitPrepared, XactCompletion: parseCompletion(c, info, true)}
	case InfoXactAbort, InfoXactAbortPrepared:
		b = &XactAbort{Prepared: op == InfoXactAbortPrepared, XactCompletion: parseCompletion(c, info, false)}
	case InfoXactPrepare:
		b = parsePrepare(c)
	case InfoXactAssignment:
		a := &XactAssignment{Xtop: c.u32("xtop")}
		n := c.count("subxacts", 4)
		a.Subxacts = c.u32s(n, "subxacts")
		b = a
	case InfoXactInvalidations:
		n := c.count("invals", SharedInvalMsgSize)
		b = &XactInvalidations{InvalMsgs: c.bytes(n*SharedInvalMsgSize, "invals")}
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}

func descRelations(s *strings.Builder, label string, rels []pgtypes.RelFileNode) {
	if len(rels) == 0 {
		return
	}
	fmt.Fprintf(s, "; %s:", label)
	for _, r := range rels {
		s.WriteByte(' ')
		s.WriteString(r.Tag(pgtypes.MainForkNum).Path())
	}
}

func descSubxacts(s *strings.Builder, xids []uint32) {
	if len(xids) == 0 {
		return
	}
	s.WriteString("; subxacts:")
	for _, x := range xids {
		fmt.Fprintf(s, " %d", x)
	}
}

func descStats(s *strings.Builder, label string, stats []DroppedStat) {
	if len(stats) == 0 {
		return
	}
	fmt.Fprintf(s, "; %sdropped stats:", label)
	for _, st := range stats {
		fmt.Fprintf(s, " %d/%d/%d", st.Kind, st.DbOid, st.ObjOid)
	}
}

func descOrigin(s *strings.Builder, x *XactCompletion) {
	if x.XInfo&XactXinfoHasOrigin != 0 {
		// The origin's node id is in the record header, not the main data.
		fmt.Fprintf(s, "; origin: lsn %s, at %s", x.OriginLSN, x.OriginTimestamp)
	}
}

// Shared invalidation message kinds (the int8 id of a
// SharedInvalidationMessage; >= 0 is a catcache id).
const (
	sharedInvalCatalogID  = -1
	sharedInvalRelcacheID = -2
	sharedInvalSmgrID     = -3
	sharedInvalRelmapID   = -4
	sharedInvalSnapshotID = -5
)

// descInvals mirrors standby_desc_invalidations.
func descInvals(s *strings.Builder, msgs []byte, dbID, tsID pgtypes.Oid, relcacheInitFileInval bool) {
	if len(msgs) < SharedInvalMsgSize {
		return
	}
	if relcacheInitFileInval {
		fmt.Fprintf(s, "; relcache init file inval dbid %d tsid %d", dbID, tsID)
	}
	s.WriteString("; inval msgs:")
	for off := 0; off+SharedInvalMsgSize <= len(msgs); off += SharedInvalMsgSize {
		m := msgs[off : off+SharedInvalMsgSize]
		id := int8(m[0])
		w1 := binary.LittleEndian.Uint32(m[4:])
		w2 := binary.LittleEndian.Uint32(m[8:])
		switch {
		case id >= 0:
			fmt.Fprintf(s, " catcache %d", id)
		case id == sharedInvalCatalogID:
			fmt.Fprintf(s, " catalog %d", w2)
		case id == sharedInvalRelcacheID:
			fmt.Fprintf(s, " relcache %d", w2)
		case id == sharedInvalSmgrID:
			s.WriteString(" smgr")
		case id == sharedInvalRelmapID:
			fmt.Fprintf(s, " relmap db %d", w1)
		case id == sharedInvalSnapshotID:
			fmt.Fprintf(s, " snapshot %d", w2)
		default:
			fmt.Fprintf(s, " unrecognized id %d", id)
		}
	}
}
