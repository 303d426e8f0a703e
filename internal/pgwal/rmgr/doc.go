// Package rmgr owns PostgreSQL 15's resource managers as Strata sees them:
// their ids and the names pg_waldump prints, the info-bit constants of each
// record type, and the typed bodies of the records the pageserver's ingest
// needs (see ../shared/reference/neon-anchor.md §6 and pg15-formats.md §3).
//
// It does not read WAL pages or split records into block references; that is
// internal/pgwal, which must not be imported from here (pgwal imports rmgr).
// A body is decoded from a record's rmid, xl_info and main data:
//
//	body, err := rmgr.Decode(rec.Rmid, rec.Info, rec.MainData)
//	switch b := body.(type) {
//	case *rmgr.XactCommit: // b.Xids(rec.Xid), b.XactTime, b.Rels ...
//	case rmgr.VMClearer:   // heap records that clear visibility-map bits
//	}
//
// Typed bodies: XLOG (Checkpoint, NextOID, FPI, Switch, ParameterChange,
// EndOfRecovery, Noop, BackupEnd, RestorePoint, FPWChange,
// OverwriteContrecord), Storage (SmgrCreate, SmgrTruncate), Database
// (DBCreateFileCopy, DBCreateWalLog, DBDrop), Transaction (XactCommit,
// XactAbort — with their *_PREPARED forms —, XactPrepare, XactAssignment,
// XactInvalidations), CLOG, CommitTs, MultiXact, RelMap, Standby
// (StandbyLocks, RunningXacts, StandbyInvalidations), LogicalMessage
// (LogicalMsg), Heap/Heap2 (HeapInsert, HeapDelete, HeapUpdate, HeapLock,
// HeapMultiInsert, HeapLockUpdated, HeapVisible). Unknown resource managers
// and record types are not errors: they decode as *GenericBody carrying the
// raw bytes. Each body's String (and Describe) reproduces pg_waldump's desc
// text; TestRealWAL checks that on every record of WAL written by a real
// PostgreSQL 15.
//
// Decoding never panics and never trusts a length: every count and size is
// checked against the bytes that remain before anything is sliced or
// allocated, and failures are *DecodeError values wrapping ErrTruncated or
// ErrCorrupt. Layouts follow PostgreSQL 15's C structs by explicit offset
// (padding bytes are ignored, since PostgreSQL does not zero them).
//
// Byte-slice fields of bodies alias the main data given to Decode; all other
// values are copies. Bodies are plain data, safe to share between goroutines
// once built, as long as the caller does not modify the main data buffer.
// There is no on-disk format of its own.
package rmgr
