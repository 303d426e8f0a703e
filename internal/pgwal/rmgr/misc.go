package rmgr

import (
	"fmt"
	"strings"

	"github.com/stratadb/strata/internal/pgtypes"
)

// RelMap, Standby and LogicalMessage record types.
const (
	InfoRelMapUpdate uint8 = 0x00

	InfoStandbyLock          uint8 = 0x00
	InfoStandbyRunningXacts  uint8 = 0x10
	InfoStandbyInvalidations uint8 = 0x20

	InfoLogicalMessage uint8 = 0x00
)

// RelMapFileSize is sizeof(RelMapFile): the size of pg_filenode.map and of
// the data a RelMap UPDATE carries.
const RelMapFileSize = 512

// RelMapUpdate is RelMap UPDATE (xl_relmap_update): Data is the complete new
// pg_filenode.map of database DbID (0 = the shared map in global/) in
// tablespace TsID. Data aliases Decode's input. PostgreSQL's redo refuses
// any size but RelMapFileSize; the decoder leaves that check to the consumer.
type RelMapUpdate struct {
	DbID pgtypes.Oid
	TsID pgtypes.Oid
	Data []byte
}

func (*RelMapUpdate) isBody() {}

// Rmgr implements Body.
func (*RelMapUpdate) Rmgr() ID { return RelMap }

// RecordName implements Body.
func (*RelMapUpdate) RecordName() string { return "UPDATE" }

// String implements Body.
func (b *RelMapUpdate) String() string {
	return fmt.Sprintf("database %d tablespace %d size %d", b.DbID, b.TsID, len(b.Data))
}

func decodeRelMap(info uint8, data []byte) (Body, error) {
	if info&RmgrInfoMask != InfoRelMapUpdate {
		return nil, nil
	}
	c := newCursor(RelMap, info, data)
	r := &RelMapUpdate{}
	r.DbID = c.oid("dbid")
	r.TsID = c.oid("tsid")
	n := c.count("data", 1)
	r.Data = c.bytes(n, "data")
	if c.err != nil {
		return nil, c.err
	}
	return r, nil
}

// StandbyLock is one AccessExclusiveLock held by a running transaction.
type StandbyLock struct {
	Xid    uint32
	DbOid  pgtypes.Oid
	RelOid pgtypes.Oid
}

// StandbyLocks is Standby LOCK (xl_standby_locks).
type StandbyLocks struct{ Locks []StandbyLock }

func (*StandbyLocks) isBody() {}

// Rmgr implements Body.
func (*StandbyLocks) Rmgr() ID { return Standby }

// RecordName implements Body.
func (*StandbyLocks) RecordName() string { return "LOCK" }

// String implements Body.
func (b *StandbyLocks) String() string {
	var s strings.Builder
	for _, l := range b.Locks {
		fmt.Fprintf(&s, "xid %d db %d rel %d ", l.Xid, l.DbOid, l.RelOid)
	}
	return s.String()
}

// RunningXacts is Standby RUNNING_XACTS (xl_running_xacts): a snapshot of the
// transactions running on the primary.
type RunningXacts struct {
	SubxidOverflow     bool
	NextXid            uint32
	OldestRunningXid   uint32
	LatestCompletedXid uint32
	Xids               []uint32 // top-level xids (xcnt of them)
	Subxids            []uint32 // subxids (subxcnt)
}

func (*RunningXacts) isBody() {}

// Rmgr implements Body.
func (*RunningXacts) Rmgr() ID { return Standby }

// RecordName implements Body.
func (*RunningXacts) RecordName() string { return "RUNNING_XACTS" }

// String implements Body (standby_desc_running_xacts).
func (b *RunningXacts) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "nextXid %d latestCompletedXid %d oldestRunningXid %d",
		b.NextXid, b.LatestCompletedXid, b.OldestRunningXid)
	if len(b.Xids) > 0 {
		fmt.Fprintf(&s, "; %d xacts:", len(b.Xids))
		for _, x := range b.Xids {
			fmt.Fprintf(&s, " %d", x)
		}
	}
	if b.SubxidOverflow {
		s.WriteString("; subxid overflowed")
	}
	if len(b.Subxids) > 0 {
		fmt.Fprintf(&s, "; %d subxacts:", len(b.Subxids))
		for _, x := range b.Subxids {
			fmt.Fprintf(&s, " %d", x)
		}
	}
	return s.String()
}

// StandbyInvalidations is Standby INVALIDATIONS (xl_invalidations).
type StandbyInvalidations struct {
	DbID                  pgtypes.Oid
	TsID                  pgtypes.Oid
	RelcacheInitFileInval bool
	InvalMsgs             []byte // 16 bytes each; aliases Decode's input
}

func (*StandbyInvalidations) isBody() {}

// Rmgr implements Body.
func (*StandbyInvalidations) Rmgr() ID { return Standby }

// RecordName implements Body.
func (*StandbyInvalidations) RecordName() string { return "INVALIDATIONS" }

// String implements Body.
func (b *StandbyInvalidations) String() string {
	var s strings.Builder
	descInvals(&s, b.InvalMsgs, b.DbID, b.TsID, b.RelcacheInitFileInval)
	// pg_waldump prints the separator even at the start.
	return s.String()
}

func decodeStandby(info uint8, data []byte) (Body, error) {
	c := newCursor(Standby, info, data)
	var b Body
	switch info & RmgrInfoMask {
	case InfoStandbyLock:
		l := &StandbyLocks{}
		n := c.count("locks", 12)
		if n > 0 && c.need(12*n, "locks") {
			l.Locks = make([]StandbyLock, n)
			for i := range l.Locks {
				l.Locks[i] = StandbyLock{Xid: c.u32("xid"), DbOid: c.oid("dbOid"), RelOid: c.oid("relOid")}
			}
		}
		b = l
	case InfoStandbyRunningXacts:
		r := &RunningXacts{}
		xcnt := c.i32("xcnt")
		subxcnt := c.i32("subxcnt")
		r.SubxidOverflow = c.boolean("subxid_overflow")
		c.skip(3, "pad")
		r.NextXid = c.u32("nextXid")
		r.OldestRunningXid = c.u32("oldestRunningXid")
		r.LatestCompletedXid = c.u32("latestCompletedXid")
		n := c.checkCount("xids", int64(xcnt), 4)
		r.Xids = c.u32s(n, "xids")
		n = c.checkCount("subxids", int64(subxcnt), 4)
		r.Subxids = c.u32s(n, "subxids")
		b = r
	case InfoStandbyInvalidations:
		v := &StandbyInvalidations{}
		v.DbID = c.oid("dbId")
		v.TsID = c.oid("tsId")
		v.RelcacheInitFileInval = c.boolean("relcacheInitFileInval")
		c.skip(3, "pad")
		n := c.count("invals", SharedInvalMsgSize)
		v.InvalMsgs = c.bytes(n*SharedInvalMsgSize, "invals")
		b = v
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}

// LogicalMsg is LogicalMessage MESSAGE (xl_logical_message), written by
// pg_logical_emit_message. Neon's compute uses the prefix "neon-file:<path>"
// to WAL-log auxiliary files. Message aliases Decode's input.
type LogicalMsg struct {
	DbID          pgtypes.Oid
	Transactional bool
	Prefix        string // without its terminating NUL
	Message       []byte
}

func (*LogicalMsg) isBody() {}

// Rmgr implements Body.
func (*LogicalMsg) Rmgr() ID { return LogicalMessage }

// RecordName implements Body.
func (*LogicalMsg) RecordName() string { return "MESSAGE" }

// String implements Body (logicalmsg_desc: the payload as hex bytes).
func (b *LogicalMsg) String() string {
	var s strings.Builder
	kind := "non-transactional"
	if b.Transactional {
		kind = "transactional"
	}
	fmt.Fprintf(&s, "%s, prefix \"%s\"; payload (%d bytes): ", kind, b.Prefix, len(b.Message))
	for i, ch := range b.Message {
		if i > 0 {
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02X", ch)
	}
	return s.String()
}

func decodeLogicalMessage(info uint8, data []byte) (Body, error) {
	if info&RmgrInfoMask != InfoLogicalMessage {
		return nil, nil
	}
	c := newCursor(LogicalMessage, info, data)
	m := &LogicalMsg{}
	m.DbID = c.oid("dbId")
	m.Transactional = c.boolean("transactional")
	c.skip(3, "pad")
	prefixSize := c.u64("prefix_size")
	messageSize := c.u64("message_size")
	if c.err == nil && prefixSize == 0 {
		c.fail(ErrCorrupt, "prefix_size is 0 (it counts the prefix's NUL)")
	}
	// Checked as counts of 1-byte elements so a huge declared size cannot
	// overflow an int.
	np := c.checkCount("prefix", int64(min(prefixSize, 1<<62)), 1)
	prefix := c.bytes(np, "prefix")
	if c.err == nil && prefix[np-1] != 0 {
		c.fail(ErrCorrupt, "prefix of %d bytes is not NUL-terminated", np)
	}
	nm := c.checkCount("message", int64(min(messageSize, 1<<62)), 1)
	m.Message = c.bytes(nm, "message")
	if c.err != nil {
		return nil, c.err
	}
	m.Prefix = string(prefix[:np-1])
	return m, nil
}
