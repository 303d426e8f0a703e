package rmgr

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
)

// buf builds little-endian main data for hand-made test records.
type buf []byte

func (b buf) u8(v uint8) buf   { return append(b, v) }
func (b buf) u16(v uint16) buf { return binary.LittleEndian.AppendUint16(b, v) }
func (b buf) u32(v uint32) buf { return binary.LittleEndian.AppendUint32(b, v) }
func (b buf) i32(v int32) buf  { return b.u32(uint32(v)) }
func (b buf) u64(v uint64) buf { return binary.LittleEndian.AppendUint64(b, v) }
func (b buf) str(s string) buf { return append(append(b, s...), 0) }
func (b buf) zeros(n int) buf  { return append(b, make([]byte, n)...) }
func (b buf) rel(spc, db, rel uint32) buf {
	return b.u32(spc).u32(db).u32(rel)
}

// invalMsg builds one 16-byte SharedInvalidationMessage.
func invalMsg(id int8, w1, w2 uint32) []byte {
	return buf{}.u8(uint8(id)).zeros(3).u32(w1).u32(w2).zeros(4)
}

// ts is 2024-01-02 03:04:05.000006 UTC as a TimestampTz.
const ts = TimestampTz((1704164645-postgresEpochUnix)*1_000_000 + 6)

func TestDecodeHandMade(t *testing.T) {
	invals := append(append(append(append(append(append(invalMsg(7, 5, 0),
		invalMsg(-1, 5, 1259)...), invalMsg(-2, 5, 16384)...), invalMsg(-3, 0, 0)...),
		invalMsg(-4, 5, 0)...), invalMsg(-5, 5, 2608)...), invalMsg(-9, 0, 0)...)
	fullCommit := buf{}.u64(uint64(ts)).u32(XactXinfoHasDBInfo|XactXinfoHasSubxacts|XactXinfoHasRelFileNodes|
		XactXinfoHasDroppedStats|XactXinfoHasInvals|XactXinfoHasTwophase|XactXinfoHasGID|XactXinfoHasOrigin|
		XactCompletionApplyFeedback|XactCompletionForceSyncCommit|XactCompletionUpdateRelcacheFile).
		u32(5).u32(1663).                // dbinfo
		i32(2).u32(801).u32(802).        // subxacts
		i32(1).rel(1663, 5, 16400).      // rels
		i32(1).i32(2).u32(5).u32(16400). // dropped stats
		i32(7)
	fullCommit = append(fullCommit, invals...)
	fullCommit = fullCommit.u32(800).str("g1").u64(0x1_0000_0010).u64(uint64(ts))

	prepare := buf{}.u32(TwoPhaseMagic).u32(0).u32(900).u32(5).u64(uint64(ts)).u32(10).
		i32(1).i32(1).i32(1).i32(1).i32(0).i32(1).u8(1).u8(0xAB).u16(3).u64(0).u64(0).
		str("gx").zeros(5). // gid, padded to 8
		u32(901).zeros(4).  // subxacts
		rel(1663, 5, 1).zeros(4).
		rel(1663, 5, 2).zeros(4).
		i32(2).u32(5).u32(1).zeros(4)
	prepare = append(prepare, invalMsg(-2, 5, 42)...)
	prepare = prepare.u32(0).u8(0).u8(0).u16(0) // END 2PC record
	binary.LittleEndian.PutUint32(prepare[4:], uint32(len(prepare)+4))

	cp := CheckPoint{Redo: 0x1_0000_0028, ThisTimeLineID: 2, PrevTimeLineID: 1, FullPageWrites: true,
		NextXid: 1<<32 | 740, NextOid: 16384, NextMulti: 3, NextMultiOffset: 5, OldestXid: 716, OldestXidDB: 1,
		OldestMulti: 1, OldestMultiDB: 1, Time: 1700000000, OldestCommitTsXid: 10, NewestCommitTsXid: 20, OldestActiveXid: 741}

	tests := []struct {
		name string
		id   ID
		info uint8
		data []byte
		want Body
		desc string
	}{
		{"checkpoint online", XLOG, InfoCheckpointOnline, cp.Encode(), &Checkpoint{CheckPoint: cp},
			"CHECKPOINT_ONLINE redo 1/28; tli 2; prev tli 1; fpw true; xid 1:740; oid 16384; multi 3; offset 5; " +
				"oldest xid 716 in DB 1; oldest multi 1 in DB 1; oldest/newest commit timestamp xid: 10/20; oldest running xid 741; online"},
		{"noop", XLOG, InfoNoop, []byte{1, 2}, &Noop{Data: []byte{1, 2}}, "NOOP"},
		{"backup end", XLOG, InfoBackupEnd, buf{}.u64(0x2_0000_0100), &BackupEnd{StartPoint: 0x2_0000_0100}, "BACKUP_END 2/100"},
		{"restore point", XLOG, InfoRestorePoint, buf{}.u64(uint64(ts)).str("before upgrade").zeros(64 - 15),
			&RestorePoint{Time: ts, Name: "before upgrade"}, "RESTORE_POINT before upgrade"},
		{"fpw change", XLOG, InfoFPWChange, []byte{0}, &FPWChange{}, "FPW_CHANGE false"},
		{"end of recovery", XLOG, InfoEndOfRecovery, buf{}.u64(uint64(ts)).u32(2).u32(1),
			&EndOfRecovery{EndTime: ts, ThisTimeLineID: 2, PrevTimeLineID: 1},
			"END_OF_RECOVERY tli 2; prev tli 1; time 2024-01-02 03:04:05.000006 UTC"},
		{"overwrite contrecord", XLOG, InfoOverwriteContrecord, buf{}.u64(0x3000000).u64(uint64(ts)),
			&OverwriteContrecord{OverwrittenLSN: 0x3000000, OverwriteTime: ts},
			"OVERWRITE_CONTRECORD lsn 0/3000000; time 2024-01-02 03:04:05.000006 UTC"},
		{"parameter change logical", XLOG, InfoParameterChange, buf{}.i32(100).i32(8).i32(10).i32(0).i32(64).i32(2).u8(1).u8(0).zeros(2),
			&ParameterChange{MaxConnections: 100, MaxWorkerProcesses: 8, MaxWalSenders: 10, MaxLocksPerXact: 64, WalLevel: 2, WalLogHints: true},
			"PARAMETER_CHANGE max_connections=100 max_worker_processes=8 max_wal_senders=10 max_prepared_xacts=0 max_locks_per_xact=64 wal_level=logical wal_log_hints=on track_commit_timestamp=off"},
		{"smgr create vm", Storage, InfoSmgrCreate | 0x01, buf{}.rel(1663, 5, 16384).i32(2),
			&SmgrCreate{Rel: pgtypes.RelFileNode{SpcNode: 1663, DbNode: 5, RelNode: 16384}, Fork: pgtypes.VisibilityMapForkNum},
			"CREATE base/5/16384_vm"},
		{"db drop two tablespaces", Database, InfoDBDrop, buf{}.u32(16400).i32(2).u32(1663).u32(16500),
			&DBDrop{DbID: 16400, TablespaceIDs: []pgtypes.Oid{1663, 16500}}, "DROP dir 1663/16400 16500/16400"},
		{"commit with every part", Transaction, InfoXactCommitPrepared | XactHasInfo, fullCommit,
			&XactCommit{Prepared: true, XactCompletion: XactCompletion{
				XactTime: ts, XInfo: binary.LittleEndian.Uint32(fullCommit[8:]), DbID: 5, TsID: 1663,
				Subxacts: []uint32{801, 802}, Rels: []pgtypes.RelFileNode{{SpcNode: 1663, DbNode: 5, RelNode: 16400}},
				DroppedStats: []DroppedStat{{Kind: 2, DbOid: 5, ObjOid: 16400}}, InvalMsgs: invals,
				TwophaseXid: 800, TwophaseGID: "g1", OriginLSN: 0x1_0000_0010, OriginTimestamp: ts}},
			"COMMIT_PREPARED 800: 2024-01-02 03:04:05.000006 UTC; rels: base/5/16400; subxacts: 801 802; dropped stats: 2/5/16400; " +
				"relcache init file inval dbid 5 tsid 1663; inval msgs: catcache 7 catalog 1259 relcache 16384 smgr relmap db 5 snapshot 2608 unrecognized id -9; " +
				"apply_feedback; sync; origin: lsn 1/10, at 2024-01-02 03:04:05.000006 UTC"},
		{"abort skips invals", Transaction, InfoXactAbort | XactHasInfo,
			buf{}.u64(uint64(ts)).u32(XactXinfoHasInvals | XactXinfoHasSubxacts | XactXinfoHasOrigin).i32(1).u32(7).u64(0x10).u64(uint64(ts)),
			&XactAbort{XactCompletion: XactCompletion{XactTime: ts, XInfo: XactXinfoHasInvals | XactXinfoHasSubxacts | XactXinfoHasOrigin,
				Subxacts: []uint32{7}, OriginLSN: 0x10, OriginTimestamp: ts}},
			"ABORT 2024-01-02 03:04:05.000006 UTC; subxacts: 7; origin: lsn 0/10, at 2024-01-02 03:04:05.000006 UTC"},
		{"commit without xinfo", Transaction, InfoXactCommit, buf{}.u64(uint64(ts)),
			&XactCommit{XactCompletion: XactCompletion{XactTime: ts}}, "COMMIT 2024-01-02 03:04:05.000006 UTC"},
		{"prepare", Transaction, InfoXactPrepare, prepare,
			&XactPrepare{TotalLen: uint32(len(prepare) + 4), Xid: 900, Database: 5, PreparedAt: ts, Owner: 10, InitFileInval: true,
				GID: "gx", Subxacts: []uint32{901},
				CommitRels:  []pgtypes.RelFileNode{{SpcNode: 1663, DbNode: 5, RelNode: 1}},
				AbortRels:   []pgtypes.RelFileNode{{SpcNode: 1663, DbNode: 5, RelNode: 2}},
				CommitStats: []DroppedStat{{Kind: 2, DbOid: 5, ObjOid: 1}},
				InvalMsgs:   invalMsg(-2, 5, 42), Raw: prepare},
			"PREPARE gid gx: 2024-01-02 03:04:05.000006 UTC; rels(commit): base/5/1; rels(abort): base/5/2; commit dropped stats: 2/5/1; " +
				"subxacts: 901; relcache init file inval dbid 5 tsid 0; inval msgs: relcache 42"},
		{"clog truncate", CLOG, InfoClogTruncate, buf{}.i32(3).u32(100000).u32(5),
			&ClogTruncate{PageNo: 3, OldestXact: 100000, OldestXactDb: 5}, "TRUNCATE page 3; oldestXact 100000"},
		{"committs zeropage", CommitTs, InfoCommitTsZeroPage, buf{}.i32(4), &CommitTsZeroPage{PageNo: 4}, "ZEROPAGE 4"},
		{"committs truncate", CommitTs, InfoCommitTsTruncate, buf{}.i32(4).u32(77), &CommitTsTruncate{PageNo: 4, OldestXid: 77},
			"TRUNCATE pageno 4, oldestXid 77"},
		{"multixact zero off page", MultiXact, InfoMultiXactZeroOffPage, buf{}.i32(0), &MultiXactZeroOffPage{}, "ZERO_OFF_PAGE 0"},
		{"multixact create all statuses", MultiXact, InfoMultiXactCreateID,
			buf{}.u32(9).u32(20).i32(7).u32(1).i32(0).u32(2).i32(1).u32(3).i32(2).u32(4).i32(3).u32(5).i32(4).u32(6).i32(5).u32(7).i32(9),
			&MultiXactCreate{Mid: 9, Moff: 20, Members: []MultiXactMember{{1, 0}, {2, 1}, {3, 2}, {4, 3}, {5, 4}, {6, 5}, {7, 9}}},
			"CREATE_ID 9 offset 20 nmembers 7: 1 (keysh) 2 (sh) 3 (fornokeyupd) 4 (forupd) 5 (nokeyupd) 6 (upd) 7 (unk)"},
		{"multixact truncate", MultiXact, InfoMultiXactTruncateID, buf{}.u32(1).u32(1).u32(100).u32(0).u32(300),
			&MultiXactTruncate{OldestMultiDB: 1, StartTruncOff: 1, EndTruncOff: 100, EndTruncMemb: 300},
			"TRUNCATE_ID offsets [1, 100), members [0, 300)"},
		{"standby lock", Standby, InfoStandbyLock, buf{}.i32(2).u32(700).u32(5).u32(16384).u32(700).u32(5).u32(16385),
			&StandbyLocks{Locks: []StandbyLock{{700, 5, 16384}, {700, 5, 16385}}},
			"LOCK xid 700 db 5 rel 16384 xid 700 db 5 rel 16385"},
		{"running xacts overflowed", Standby, InfoStandbyRunningXacts,
			buf{}.i32(2).i32(1).u8(1).zeros(3).u32(800).u32(790).u32(799).u32(790).u32(795).u32(796),
			&RunningXacts{SubxidOverflow: true, NextXid: 800, OldestRunningXid: 790, LatestCompletedXid: 799,
				Xids: []uint32{790, 795}, Subxids: []uint32{796}},
			"RUNNING_XACTS nextXid 800 latestCompletedXid 799 oldestRunningXid 790; 2 xacts: 790 795; subxid overflowed; 1 subxacts: 796"},
		{"heap insert from pg15-formats 2.6", Heap, InfoHeapInsert, []byte{0x5b, 0x00, 0x01},
			&HeapInsert{OffNum: 91, Flags: XLHInsertAllVisibleCleared}, "INSERT off 91 flags 0x01"},
		{"heap2 lock updated", Heap2, InfoHeap2LockUpdated, buf{}.u32(900).u16(4).u8(XLHLXmaxLockOnly).u8(XLHLockAllFrozenCleared),
			&HeapLockUpdated{Xmax: 900, OffNum: 4, InfobitsSet: XLHLXmaxLockOnly, Flags: 1},
			"LOCK_UPDATED off 4: xmax 900: flags 0x01 LOCK_ONLY"},
		{"heap2 multi insert with offsets", Heap2, InfoHeap2MultiInsert, buf{}.u8(1).u8(0).u16(2).u16(5).u16(6),
			&HeapMultiInsert{Flags: 1, NTuples: 2, Offsets: []uint16{5, 6}}, "MULTI_INSERT 2 tuples flags 0x01"},
		{"btree is generic", Btree, 0x00, []byte{1, 0}, &GenericBody{ID: Btree, Info: 0, Data: []byte{1, 0}}, "INSERT_LEAF 2 bytes of main data"},
		{"unknown xlog info is generic", XLOG, 0xC0, nil, &GenericBody{ID: XLOG, Info: 0xC0}, "UNKNOWN (c0) 0 bytes of main data"},
		{"custom rmgr is generic", ID(130), 0x10, []byte{9}, &GenericBody{ID: 130, Info: 0x10, Data: []byte{9}}, "UNKNOWN (10) 1 bytes of main data"},
		{"generic rmgr", Generic, 0x00, nil, &GenericBody{ID: Generic}, "Generic 0 bytes of main data"},
		{"heap truncate is generic", Heap, InfoHeapTruncate, []byte{1}, &GenericBody{ID: Heap, Info: InfoHeapTruncate, Data: []byte{1}}, "TRUNCATE 1 bytes of main data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.id, tc.info, tc.data)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.desc, Describe(got))
			require.Equal(t, tc.id, got.Rmgr())
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		id       ID
		info     uint8
		data     []byte
		sentinel error
		msg      string
	}{
		{"subxacts count past the end", Transaction, InfoXactCommit | XactHasInfo,
			buf{}.u64(0).u32(XactXinfoHasSubxacts).i32(40), ErrTruncated,
			"rmgr: Transaction COMMIT: main data has 16 bytes, subxacts count 40 needs 160 at offset 16"},
		{"negative subxacts count", Transaction, InfoXactAbort | XactHasInfo,
			buf{}.u64(0).u32(XactXinfoHasSubxacts).i32(-1), ErrCorrupt,
			"rmgr: Transaction ABORT: subxacts count -1 is negative"},
		{"huge rel count cannot overflow", Transaction, InfoXactCommit | XactHasInfo,
			buf{}.u64(0).u32(XactXinfoHasRelFileNodes).i32(0x7fffffff), ErrTruncated,
			"rmgr: Transaction COMMIT: main data has 16 bytes, relfilenodes count 2147483647 needs 25769803764 at offset 16"},
		{"short checkpoint", XLOG, InfoCheckpointShutdown, make([]byte, 87), ErrTruncated,
			"rmgr: XLOG CHECKPOINT_SHUTDOWN: main data has 87 bytes, CheckPoint needs 88 at offset 0"},
		{"empty nextoid", XLOG, InfoNextOID, nil, ErrTruncated,
			"rmgr: XLOG NEXTOID: main data has 0 bytes, nextOid needs 4 at offset 0"},
		{"bad fork", Storage, InfoSmgrCreate, buf{}.rel(1, 2, 3).i32(4), ErrCorrupt,
			"rmgr: Storage CREATE: forkNum 4 out of range"},
		{"bad prepare magic", Transaction, InfoXactPrepare, make([]byte, 72), ErrCorrupt,
			"rmgr: Transaction PREPARE: magic 0x0, want 0x57f94534"},
		{"prepare gid past the end", Transaction, InfoXactPrepare,
			buf{}.u32(TwoPhaseMagic).zeros(50).u16(200).zeros(16), ErrTruncated,
			"rmgr: Transaction PREPARE: main data has 72 bytes, gid needs 200 at offset 72"},
		{"gid without NUL", Transaction, InfoXactCommitPrepared | XactHasInfo,
			append(buf{}.u64(0).u32(XactXinfoHasTwophase|XactXinfoHasGID).u32(5), 'a', 'b'), ErrTruncated,
			"rmgr: Transaction COMMIT_PREPARED: main data has 18 bytes, gid at offset 16 has no terminating NUL"},
		{"multixact members past the end", MultiXact, InfoMultiXactCreateID, buf{}.u32(1).u32(1).i32(3).u32(1).i32(0), ErrTruncated,
			"rmgr: MultiXact CREATE_ID: main data has 20 bytes, members count 3 needs 24 at offset 12"},
		{"relmap data past the end", RelMap, InfoRelMapUpdate, buf{}.u32(0).u32(1664).i32(512).zeros(10), ErrTruncated,
			"rmgr: RelMap UPDATE: main data has 22 bytes, data count 512 needs 512 at offset 12"},
		{"running xacts subxids past the end", Standby, InfoStandbyRunningXacts, buf{}.i32(0).i32(5).zeros(16), ErrTruncated,
			"rmgr: Standby RUNNING_XACTS: main data has 24 bytes, subxids count 5 needs 20 at offset 24"},
		{"message with empty prefix", LogicalMessage, InfoLogicalMessage, buf{}.u32(5).u8(1).zeros(3).u64(0).u64(0), ErrCorrupt,
			"rmgr: LogicalMessage MESSAGE: prefix_size is 0 (it counts the prefix's NUL)"},
		{"message prefix without NUL", LogicalMessage, InfoLogicalMessage, append(buf{}.u32(5).u8(1).zeros(3).u64(2).u64(0), 'a', 'b'), ErrCorrupt,
			"rmgr: LogicalMessage MESSAGE: prefix of 2 bytes is not NUL-terminated"},
		{"message size beyond any buffer", LogicalMessage, InfoLogicalMessage, buf{}.u32(5).u8(1).zeros(3).u64(1).u64(1 << 63).u8(0), ErrTruncated,
			"rmgr: LogicalMessage MESSAGE: main data has 25 bytes, message count 4611686018427387904 needs 4611686018427387904 at offset 25"},
		{"multi insert offsets past the end", Heap2, InfoHeap2MultiInsert, buf{}.u8(0).u8(0).u16(3).u16(1), ErrTruncated,
			"rmgr: Heap2 MULTI_INSERT: main data has 6 bytes, offsets count 3 needs 6 at offset 4"},
		{"short heap update", Heap, InfoHeapHotUpdate, make([]byte, 13), ErrTruncated,
			"rmgr: Heap HOT_UPDATE: main data has 13 bytes, new_offnum needs 2 at offset 12"},
		{"db drop count past the end", Database, InfoDBDrop, buf{}.u32(1).i32(2).u32(1663), ErrTruncated,
			"rmgr: Database DROP: main data has 12 bytes, tablespace_ids count 2 needs 8 at offset 8"},
		{"standby locks past the end", Standby, InfoStandbyLock, buf{}.i32(1).u32(1), ErrTruncated,
			"rmgr: Standby LOCK: main data has 8 bytes, locks count 1 needs 12 at offset 4"},
		{"standby invalidations past the end", Standby, InfoStandbyInvalidations, buf{}.u32(1).u32(2).u8(0).zeros(3).i32(1), ErrTruncated,
			"rmgr: Standby INVALIDATIONS: main data has 16 bytes, invals count 1 needs 16 at offset 16"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Decode(tc.id, tc.info, tc.data)
			require.Nil(t, b)
			require.ErrorIs(t, err, tc.sentinel)
			require.EqualError(t, err, tc.msg)
			var de *DecodeError
			require.True(t, errors.As(err, &de))
			require.Equal(t, tc.id, de.Rmgr)
		})
	}
}

func TestHelpers(t *testing.T) {
	t.Run("timestamp", func(t *testing.T) {
		require.Equal(t, time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), ts.Time())
		require.Equal(t, "2000-01-01 00:00:00.000000 UTC", TimestampTz(0).String())
	})
	t.Run("describe nil", func(t *testing.T) { require.Empty(t, Describe(nil)) })
	t.Run("record names", func(t *testing.T) {
		require.Equal(t, "COMMIT", RecordName(Transaction, 0x81))
		require.Equal(t, "INSERT+INIT", RecordName(Heap, 0x80))
		require.Equal(t, "UNKNOWN (90)", RecordName(Heap2, 0x90))
		require.Equal(t, "UNKNOWN (0)", RecordName(ID(50), 0))
	})
	t.Run("checkpoint", func(t *testing.T) {
		cp := CheckPoint{Redo: lsn.LSN(1), NextXid: 5<<32 | 7}
		require.Equal(t, uint32(5), cp.NextXidEpoch())
		require.Equal(t, uint32(7), cp.NextXidXid())
		got, err := DecodeCheckPoint(cp.Encode())
		require.NoError(t, err)
		require.Equal(t, cp, got)
		_, err = DecodeCheckPoint(nil)
		require.ErrorIs(t, err, ErrTruncated)
		require.Equal(t, "CHECKPOINT_SHUTDOWN", (&Checkpoint{Shutdown: true}).RecordName())
	})
	t.Run("wal level names", func(t *testing.T) {
		for level, want := range map[int32]string{0: "minimal", 1: "replica", 2: "logical", 7: "?"} {
			require.Equal(t, want, (&ParameterChange{WalLevel: level}).WalLevelName())
		}
	})
	t.Run("smgr truncate flags", func(t *testing.T) {
		tr := &SmgrTruncate{Flags: SmgrTruncateHeap | SmgrTruncateFSM}
		require.True(t, tr.TruncatesHeap())
		require.False(t, tr.TruncatesVM())
		require.True(t, tr.TruncatesFSM())
	})
	t.Run("vm clears", func(t *testing.T) {
		cases := []struct {
			b           VMClearer
			block0, old uint8
		}{
			{&HeapInsert{Flags: XLHInsertAllVisibleCleared}, VMValidBits, 0},
			{&HeapInsert{}, 0, 0},
			{&HeapDelete{Flags: XLHDeleteAllVisibleCleared}, VMValidBits, 0},
			{&HeapDelete{}, 0, 0},
			{&HeapUpdate{Flags: XLHUpdateOldAllVisibleCleared}, 0, VMValidBits},
			{&HeapUpdate{Flags: XLHUpdateNewAllVisibleCleared | XLHUpdateOldAllVisibleCleared}, VMValidBits, VMValidBits},
			{&HeapLock{Flags: XLHLockAllFrozenCleared}, VMAllFrozen, 0},
			{&HeapLock{}, 0, 0},
			{&HeapLockUpdated{Flags: XLHLockAllFrozenCleared}, VMAllFrozen, 0},
			{&HeapLockUpdated{}, 0, 0},
			{&HeapMultiInsert{Flags: XLHInsertAllVisibleCleared}, VMValidBits, 0},
			{&HeapMultiInsert{}, 0, 0},
		}
		for _, c := range cases {
			b0, old := c.b.VMClear()
			require.Equal(t, c.block0, b0, "%T %+v", c.b, c.b)
			require.Equal(t, c.old, old, "%T %+v", c.b, c.b)
		}
		require.Equal(t, VMAllVisible|VMAllFrozen, (&HeapMultiInsert{Flags: XLHInsertAllFrozenSet}).VMSet())
	})
	t.Run("completion xids", func(t *testing.T) {
		c := &XactCompletion{Subxacts: []uint32{11, 12}}
		require.Equal(t, []uint32{10, 11, 12}, c.Xids(10))
		c.TwophaseXid = 9
		require.Equal(t, []uint32{9, 11, 12}, c.Xids(0))
		c.InvalMsgs = make([]byte, 32)
		require.Equal(t, 2, c.NumInvalMsgs())
	})
	t.Run("smgr create tag", func(t *testing.T) {
		c := &SmgrCreate{Rel: pgtypes.RelFileNode{SpcNode: 1664, RelNode: 1262}, Fork: pgtypes.FSMForkNum}
		require.Equal(t, "global/1262_fsm", c.Tag().Path())
	})
}
