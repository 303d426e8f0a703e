package rmgr

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
)

// XLOG record types (info & 0xF0; src/include/catalog/pg_control.h).
const (
	InfoCheckpointShutdown  uint8 = 0x00
	InfoCheckpointOnline    uint8 = 0x10
	InfoNoop                uint8 = 0x20
	InfoNextOID             uint8 = 0x30
	InfoSwitch              uint8 = 0x40
	InfoBackupEnd           uint8 = 0x50
	InfoParameterChange     uint8 = 0x60
	InfoRestorePoint        uint8 = 0x70
	InfoFPWChange           uint8 = 0x80
	InfoEndOfRecovery       uint8 = 0x90
	InfoFPIForHint          uint8 = 0xA0
	InfoFPI                 uint8 = 0xB0
	InfoOverwriteContrecord uint8 = 0xD0
)

// TimestampTz is PostgreSQL's TimestampTz: microseconds since
// 2000-01-01 00:00:00 UTC.
type TimestampTz int64

// postgresEpochUnix is 2000-01-01 00:00:00 UTC in Unix seconds.
const postgresEpochUnix = 946684800

// Time converts the timestamp to a time.Time in UTC.
func (ts TimestampTz) Time() time.Time {
	secs, usecs := int64(ts)/1_000_000, int64(ts)%1_000_000
	return time.Unix(postgresEpochUnix+secs, usecs*1000).UTC()
}

// String formats the timestamp as pg_waldump's timestamptz_to_str does when
// run with TZ=UTC: "2006-01-02 15:04:05.000000 UTC".
func (ts TimestampTz) String() string {
	secs := int64(ts)/1_000_000 + postgresEpochUnix
	return fmt.Sprintf("%s.%06d UTC", time.Unix(secs, 0).UTC().Format("2006-01-02 15:04:05"), int64(ts)%1_000_000)
}

// CheckPointSize is sizeof(CheckPoint), the main data of a checkpoint record
// and bytes 40..127 of pg_control.
const CheckPointSize = 88

// CheckPoint is PostgreSQL 15's CheckPoint struct (pg15-formats.md §5.2).
type CheckPoint struct {
	Redo              lsn.LSN
	ThisTimeLineID    uint32
	PrevTimeLineID    uint32
	FullPageWrites    bool
	NextXid           uint64 // FullTransactionId: epoch<<32 | xid
	NextOid           pgtypes.Oid
	NextMulti         uint32
	NextMultiOffset   uint32
	OldestXid         uint32
	OldestXidDB       pgtypes.Oid
	OldestMulti       uint32
	OldestMultiDB     pgtypes.Oid
	Time              int64 // pg_time_t: Unix seconds
	OldestCommitTsXid uint32
	NewestCommitTsXid uint32
	OldestActiveXid   uint32
}

// DecodeCheckPoint decodes an 88-byte CheckPoint (from a checkpoint record or
// from pg_control at offset 40). Padding bytes are ignored.
func DecodeCheckPoint(b []byte) (CheckPoint, error) {
	c := newCursor(XLOG, InfoCheckpointOnline, b)
	cp := readCheckPoint(c)
	return cp, c.err
}

func readCheckPoint(c *cursor) CheckPoint {
	if !c.need(CheckPointSize, "CheckPoint") {
		return CheckPoint{}
	}
	var cp CheckPoint
	cp.Redo = lsn.LSN(c.u64("redo"))
	cp.ThisTimeLineID = c.u32("ThisTimeLineID")
	cp.PrevTimeLineID = c.u32("PrevTimeLineID")
	cp.FullPageWrites = c.boolean("fullPageWrites")
	c.skip(7, "pad")
	cp.NextXid = c.u64("nextXid")
	cp.NextOid = c.oid("nextOid")
	cp.NextMulti = c.u32("nextMulti")
	cp.NextMultiOffset = c.u32("nextMultiOffset")
	cp.OldestXid = c.u32("oldestXid")
	cp.OldestXidDB = c.oid("oldestXidDB")
	cp.OldestMulti = c.u32("oldestMulti")
	cp.OldestMultiDB = c.oid("oldestMultiDB")
	c.skip(4, "pad")
	cp.Time = c.i64("time")
	cp.OldestCommitTsXid = c.u32("oldestCommitTsXid")
	cp.NewestCommitTsXid = c.u32("newestCommitTsXid")
	cp.OldestActiveXid = c.u32("oldestActiveXid")
	c.skip(4, "pad")
	return cp
}

// Encode returns the 88-byte on-disk form, padding zeroed. It is the inverse
// of DecodeCheckPoint, for writing pg_control and synthesized checkpoints.
func (cp CheckPoint) Encode() []byte {
	b := make([]byte, CheckPointSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(cp.Redo))
	le.PutUint32(b[8:], cp.ThisTimeLineID)
	le.PutUint32(b[12:], cp.PrevTimeLineID)
	if cp.FullPageWrites {
		b[16] = 1
	}
	le.PutUint64(b[24:], cp.NextXid)
	le.PutUint32(b[32:], uint32(cp.NextOid))
	le.PutUint32(b[36:], cp.NextMulti)
	le.PutUint32(b[40:], cp.NextMultiOffset)
	le.PutUint32(b[44:], cp.OldestXid)
	le.PutUint32(b[48:], uint32(cp.OldestXidDB))
	le.PutUint32(b[52:], cp.OldestMulti)
	le.PutUint32(b[56:], uint32(cp.OldestMultiDB))
	le.PutUint64(b[64:], uint64(cp.Time))
	le.PutUint32(b[72:], cp.OldestCommitTsXid)
	le.PutUint32(b[76:], cp.NewestCommitTsXid)
	le.PutUint32(b[80:], cp.OldestActiveXid)
	return b
}

// NextXidEpoch returns the epoch half of NextXid.
func (cp CheckPoint) NextXidEpoch() uint32 { return uint32(cp.NextXid >> 32) }

// NextXidXid returns the 32-bit xid half of NextXid.
func (cp CheckPoint) NextXidXid() uint32 { return uint32(cp.NextXid) }

// Checkpoint is XLOG CHECKPOINT_SHUTDOWN (Shutdown) or CHECKPOINT_ONLINE.
type Checkpoint struct {
	Shutdown bool
	CheckPoint
}

func (*Checkpoint) isBody() {}

// Rmgr implements Body.
func (*Checkpoint) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (b *Checkpoint) RecordName() string {
	if b.Shutdown {
		return "CHECKPOINT_SHUTDOWN"
	}
	return "CHECKPOINT_ONLINE"
}

// String implements Body.
func (b *Checkpoint) String() string {
	kind := "online"
	if b.Shutdown {
		kind = "shutdown"
	}
	cp := &b.CheckPoint
	return fmt.Sprintf("redo %s; tli %d; prev tli %d; fpw %t; xid %d:%d; oid %d; multi %d; offset %d; "+
		"oldest xid %d in DB %d; oldest multi %d in DB %d; oldest/newest commit timestamp xid: %d/%d; "+
		"oldest running xid %d; %s",
		cp.Redo, cp.ThisTimeLineID, cp.PrevTimeLineID, cp.FullPageWrites, cp.NextXidEpoch(), cp.NextXidXid(),
		cp.NextOid, cp.NextMulti, cp.NextMultiOffset, cp.OldestXid, cp.OldestXidDB, cp.OldestMulti,
		cp.OldestMultiDB, cp.OldestCommitTsXid, cp.NewestCommitTsXid, cp.OldestActiveXid, kind)
}

// NextOID is XLOG NEXTOID: the new upper bound of the OID counter.
type NextOID struct{ NextOid pgtypes.Oid }

func (*NextOID) isBody() {}

// Rmgr implements Body.
func (*NextOID) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*NextOID) RecordName() string { return "NEXTOID" }

// String implements Body.
func (b *NextOID) String() string { return strconv.FormatUint(uint64(b.NextOid), 10) }

// FPI is XLOG FPI or FPI_FOR_HINT (ForHint). It has no main data: the images
// are in the record's block references.
type FPI struct{ ForHint bool }

func (*FPI) isBody() {}

// Rmgr implements Body.
func (*FPI) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (b *FPI) RecordName() string {
	if b.ForHint {
		return "FPI_FOR_HINT"
	}
	return "FPI"
}

// String implements Body.
func (*FPI) String() string { return "" }

// Switch is XLOG SWITCH: the rest of the segment is unused.
type Switch struct{}

func (*Switch) isBody() {}

// Rmgr implements Body.
func (*Switch) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*Switch) RecordName() string { return "SWITCH" }

// String implements Body.
func (*Switch) String() string { return "" }

// WAL levels as ParameterChange.WalLevel carries them.
const (
	WalLevelMinimal int32 = 0
	WalLevelReplica int32 = 1
	WalLevelLogical int32 = 2
)

// ParameterChange is XLOG PARAMETER_CHANGE (xl_parameter_change).
type ParameterChange struct {
	MaxConnections       int32
	MaxWorkerProcesses   int32
	MaxWalSenders        int32
	MaxPreparedXacts     int32
	MaxLocksPerXact      int32
	WalLevel             int32
	WalLogHints          bool
	TrackCommitTimestamp bool
}

func (*ParameterChange) isBody() {}

// Rmgr implements Body.
func (*ParameterChange) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*ParameterChange) RecordName() string { return "PARAMETER_CHANGE" }

// WalLevelName returns the wal_level setting's name ("?" if unknown).
func (b *ParameterChange) WalLevelName() string {
	switch b.WalLevel {
	case WalLevelMinimal:
		return "minimal"
	case WalLevelReplica:
		return "replica"
	case WalLevelLogical:
		return "logical"
	}
	return "?"
}

// String implements Body.
func (b *ParameterChange) String() string {
	return fmt.Sprintf("max_connections=%d max_worker_processes=%d max_wal_senders=%d max_prepared_xacts=%d "+
		"max_locks_per_xact=%d wal_level=%s wal_log_hints=%s track_commit_timestamp=%s",
		b.MaxConnections, b.MaxWorkerProcesses, b.MaxWalSenders, b.MaxPreparedXacts, b.MaxLocksPerXact,
		b.WalLevelName(), onOff(b.WalLogHints), onOff(b.TrackCommitTimestamp))
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}

// EndOfRecovery is XLOG END_OF_RECOVERY (xl_end_of_recovery).
type EndOfRecovery struct {
	EndTime        TimestampTz
	ThisTimeLineID uint32
	PrevTimeLineID uint32
}

func (*EndOfRecovery) isBody() {}

// Rmgr implements Body.
func (*EndOfRecovery) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*EndOfRecovery) RecordName() string { return "END_OF_RECOVERY" }

// String implements Body.
func (b *EndOfRecovery) String() string {
	return fmt.Sprintf("tli %d; prev tli %d; time %s", b.ThisTimeLineID, b.PrevTimeLineID, b.EndTime)
}

// Noop is XLOG NOOP; its main data is arbitrary and aliases Decode's input.
type Noop struct{ Data []byte }

func (*Noop) isBody() {}

// Rmgr implements Body.
func (*Noop) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*Noop) RecordName() string { return "NOOP" }

// String implements Body.
func (*Noop) String() string { return "" }

// BackupEnd is XLOG BACKUP_END: the start point of the finished base backup.
type BackupEnd struct{ StartPoint lsn.LSN }

func (*BackupEnd) isBody() {}

// Rmgr implements Body.
func (*BackupEnd) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*BackupEnd) RecordName() string { return "BACKUP_END" }

// String implements Body.
func (b *BackupEnd) String() string { return b.StartPoint.String() }

// restorePointNameSize is MAXFNAMELEN, the size of xl_restore_point.rp_name.
const restorePointNameSize = 64

// RestorePoint is XLOG RESTORE_POINT (pg_create_restore_point).
type RestorePoint struct {
	Time TimestampTz
	Name string
}

func (*RestorePoint) isBody() {}

// Rmgr implements Body.
func (*RestorePoint) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*RestorePoint) RecordName() string { return "RESTORE_POINT" }

// String implements Body.
func (b *RestorePoint) String() string { return b.Name }

// FPWChange is XLOG FPW_CHANGE: full_page_writes was switched.
type FPWChange struct{ FullPageWrites bool }

func (*FPWChange) isBody() {}

// Rmgr implements Body.
func (*FPWChange) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*FPWChange) RecordName() string { return "FPW_CHANGE" }

// String implements Body.
func (b *FPWChange) String() string { return strconv.FormatBool(b.FullPageWrites) }

// OverwriteContrecord is XLOG OVERWRITE_CONTRECORD: a record that was cut off
// at OverwrittenLSN by a crash is abandoned.
type OverwriteContrecord struct {
	OverwrittenLSN lsn.LSN
	OverwriteTime  TimestampTz
}

func (*OverwriteContrecord) isBody() {}

// Rmgr implements Body.
func (*OverwriteContrecord) Rmgr() ID { return XLOG }

// RecordName implements Body.
func (*OverwriteContrecord) RecordName() string { return "OVERWRITE_CONTRECORD" }

// String implements Body.
func (b *OverwriteContrecord) String() string {
	return fmt.Sprintf("lsn %s; time %s", b.OverwrittenLSN, b.OverwriteTime)
}

func decodeXLOG(info uint8, data []byte) (Body, error) {
	op := info & RmgrInfoMask
	c := newCursor(XLOG, info, data)
	var b Body
	switch op {
	case InfoCheckpointShutdown, InfoCheckpointOnline:
		b = &Checkpoint{Shutdown: op == InfoCheckpointShutdown, CheckPoint: readCheckPoint(c)}
	case InfoNoop:
		b = &Noop{Data: data}
	case InfoNextOID:
		b = &NextOID{NextOid: c.oid("nextOid")}
	case InfoSwitch:
		b = &Switch{}
	case InfoBackupEnd:
		b = &BackupEnd{StartPoint: lsn.LSN(c.u64("startpoint"))}
	case InfoParameterChange:
		p := &ParameterChange{}
		p.MaxConnections = c.i32("MaxConnections")
		p.MaxWorkerProcesses = c.i32("max_worker_processes")
		p.MaxWalSenders = c.i32("max_wal_senders")
		p.MaxPreparedXacts = c.i32("max_prepared_xacts")
		p.MaxLocksPerXact = c.i32("max_locks_per_xact")
		p.WalLevel = c.i32("wal_level")
		p.WalLogHints = c.boolean("wal_log_hints")
		p.TrackCommitTimestamp = c.boolean("track_commit_timestamp")
		b = p
	case InfoRestorePoint:
		t := TimestampTz(c.i64("rp_time"))
		name := c.bytes(restorePointNameSize, "rp_name")
		for i, ch := range name {
			if ch == 0 {
				name = name[:i]
				break
			}
		}
		b = &RestorePoint{Time: t, Name: string(name)}
	case InfoFPWChange:
		b = &FPWChange{FullPageWrites: c.boolean("full_page_writes")}
	case InfoEndOfRecovery:
		e := &EndOfRecovery{}
		e.EndTime = TimestampTz(c.i64("end_time"))
		e.ThisTimeLineID = c.u32("ThisTimeLineID")
		e.PrevTimeLineID = c.u32("PrevTimeLineID")
		b = e
	case InfoFPIForHint, InfoFPI:
		b = &FPI{ForHint: op == InfoFPIForHint}
	case InfoOverwriteContrecord:
		o := &OverwriteContrecord{}
		o.OverwrittenLSN = lsn.LSN(c.u64("overwritten_lsn"))
		o.OverwriteTime = TimestampTz(c.i64("overwrite_time"))
		b = o
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}
