package walingest

import (
	"context"
	"encoding/binary"
	"hash/crc32"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

const (
	firstNormalXid = 3 // FirstNormalTransactionId
	firstMultiXact = 1 // FirstMultiXactId

	// xidCheckpointInterval: nextXid is advanced in steps of this many xids
	// (as Neon's XID_CHECKPOINT_INTERVAL) so that the checkpoint value is
	// rewritten once per 1024 xids, not on every record. A nextXid ahead of
	// the truth only skips xids; 1024 divides a CLOG page (32768 xids), so
	// the page holding nextXid is always one that the WAL zeroed.
	xidCheckpointInterval = 1024

	slruPagesPerSegment = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// xidPrecedes is TransactionIdPrecedes: modulo-2^32 order for normal xids.
func xidPrecedes(a, b uint32) bool {
	if a < firstNormalXid || b < firstNormalXid {
		return a < b
	}
	return int32(a-b) < 0
}

// multiPrecedes is MultiXactIdPrecedes, and also MultiXactOffsetPrecedes.
func multiPrecedes(a, b uint32) bool { return int32(a-b) < 0 }

// observeXid advances nextXid past xid (with epoch), as PostgreSQL's redo
// does with AdvanceNextFullTransactionIdPastXid, rounded up to
// xidCheckpointInterval.
func (in *Ingester) observeXid(xid uint32) {
	if xid < firstNormalXid {
		return
	}
	next := xid + 1
	next = (next + xidCheckpointInterval - 1) &^ (xidCheckpointInterval - 1)
	if next < firstNormalXid {
		next = firstNormalXid // wrapped into the special xids
	}
	old := uint32(in.cp.NextXid)
	if int32(next-old) <= 0 {
		return
	}
	epoch := in.cp.NextXid >> 32
	if next < old {
		epoch++
	}
	in.cp.NextXid = epoch<<32 | uint64(next)
	in.cpDirty = true
	in.metaDirty = true
}

// mergeCheckpoint folds a checkpoint record into the stored checkpoint the
// way PostgreSQL's xlog_redo folds it into shared memory: a shutdown
// checkpoint is authoritative for the counters; an online one only advances
// them (and its nextOid is ignored, NEXTOID records track that). Redo
// follows Neon's convention (neon-anchor §6.3): the record's end LSN for a
// shutdown checkpoint, 0 for an online one.
func (in *Ingester) mergeCheckpoint(ctx context.Context, rec rmgr.CheckPoint, shutdown bool, end lsn.LSN) error {
	c := &in.cp
	if shutdown {
		c.NextXid = rec.NextXid
		c.NextOid = rec.NextOid
		c.NextMulti, c.NextMultiOffset = rec.NextMulti, rec.NextMultiOffset
		c.OldestXid, c.OldestXidDB = rec.OldestXid, rec.OldestXidDB
		c.OldestMulti, c.OldestMultiDB = rec.OldestMulti, rec.OldestMultiDB
		c.Redo = end
	} else {
		if rec.NextXid > c.NextXid {
			c.NextXid = rec.NextXid
		}
		if c.NextOid == 0 {
			c.NextOid = rec.NextOid // no base checkpoint: better than nothing
		}
		if multiPrecedes(c.NextMulti, rec.NextMulti) || c.NextMulti == 0 {
			c.NextMulti = rec.NextMulti
		}
		if multiPrecedes(c.NextMultiOffset, rec.NextMultiOffset) || c.NextMultiOffset == 0 {
			c.NextMultiOffset = rec.NextMultiOffset
		}
		if xidPrecedes(c.OldestXid, rec.OldestXid) {
			c.OldestXid, c.OldestXidDB = rec.OldestXid, rec.OldestXidDB
		}
		if multiPrecedes(c.OldestMulti, rec.OldestMulti) || c.OldestMulti == 0 {
			c.OldestMulti, c.OldestMultiDB = rec.OldestMulti, rec.OldestMultiDB
		}
		c.Redo = 0
	}
	c.ThisTimeLineID, c.PrevTimeLineID = rec.ThisTimeLineID, rec.PrevTimeLineID
	c.FullPageWrites = rec.FullPageWrites
	c.Time = rec.Time
	c.OldestCommitTsXid, c.NewestCommitTsXid = rec.OldestCommitTsXid, rec.NewestCommitTsXid
	c.OldestActiveXid = rec.OldestActiveXid
	if shutdown && c.OldestActiveXid == 0 {
		// As Neon: give a hot standby started from this checkpoint a valid
		// oldestActiveXid: the oldest prepared xact, else nextXid.
		c.OldestActiveXid = uint32(c.NextXid)
		prepared, err := in.loadTwoPhase(ctx)
		if err != nil {
			return err
		}
		for xid := range prepared {
			if xidPrecedes(xid, c.OldestActiveXid) {
				c.OldestActiveXid = xid
			}
		}
	}
	// Every checkpoint record is stored, changed or not, so that the stored
	// value shows the latest one.
	in.cpDirty = true
	in.metaDirty = true
	return nil
}

// Offsets in pg_control (pg15-formats §5.1) that PARAMETER_CHANGE updates.
const (
	controlWalLevel         = 172
	controlWalLogHints      = 176
	controlMaxConnections   = 180
	controlMaxWorkers       = 184
	controlMaxWalSenders    = 188
	controlMaxPreparedXacts = 192
	controlMaxLocks         = 196
	controlTrackCommitTs    = 200
	controlCRC              = 288
)

// parameterChange copies the settings into the stored control file, as
// xlog_redo does for XLOG_PARAMETER_CHANGE (its CRC recomputed). Without a
// stored control file there is nothing to update.
func (in *Ingester) parameterChange(ctx context.Context, p *rmgr.ParameterChange, at lsn.LSN) error {
	old, found, err := in.latest(ctx, keyspace.ControlFile())
	if err != nil || !found || len(old) < controlCRC+4 {
		return err
	}
	b := append([]byte(nil), old...)
	le := binary.LittleEndian
	le.PutUint32(b[controlWalLevel:], uint32(p.WalLevel))
	b[controlWalLogHints] = boolByte(p.WalLogHints)
	le.PutUint32(b[controlMaxConnections:], uint32(p.MaxConnections))
	le.PutUint32(b[controlMaxWorkers:], uint32(p.MaxWorkerProcesses))
	le.PutUint32(b[controlMaxWalSenders:], uint32(p.MaxWalSenders))
	le.PutUint32(b[controlMaxPreparedXacts:], uint32(p.MaxPreparedXacts))
	le.PutUint32(b[controlMaxLocks:], uint32(p.MaxLocksPerXact))
	b[controlTrackCommitTs] = boolByte(p.TrackCommitTimestamp)
	le.PutUint32(b[controlCRC:], crc32.Checksum(b[:controlCRC], castagnoli))
	return in.putMeta(ctx, keyspace.ControlFile(), at, b)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
