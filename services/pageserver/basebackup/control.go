package basebackup

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

// ControlFileData layout, PG_CONTROL_VERSION 1300 (pg15-formats.md §5.1).
const (
	// ControlFileSize is the size of global/pg_control on disk (PG_CONTROL_FILE_SIZE).
	ControlFileSize = 8192
	// ControlVersion is PG_CONTROL_VERSION of PostgreSQL 15.
	ControlVersion = 1300

	ctlSystemID          = 0
	ctlVersion           = 8
	ctlCatalogVersion    = 12
	ctlState             = 16
	ctlTime              = 24
	ctlCheckPoint        = 32
	ctlCheckPointCopy    = 40
	ctlMinRecoveryPoint  = 136
	ctlMinRecoveryTLI    = 144
	ctlBackupStartPoint  = 152
	ctlBackupEndPoint    = 160
	ctlBackupEndRequired = 168
	ctlMaxPreparedXacts  = 192
	ctlMaxAlign          = 204
	ctlFloatFormat       = 208
	ctlBlcksz            = 216
	ctlRelsegSize        = 220
	ctlXLogBlcksz        = 224
	ctlXLogSegSize       = 228
	ctlNameDataLen       = 232
	ctlIndexMaxKeys      = 236
	ctlToastMaxChunk     = 240
	ctlLoblksize         = 244
	ctlFloat8ByVal       = 248
	ctlChecksumVersion   = 252
	ctlCRC               = 288
	ctlStructSize        = 296

	// dbShutdowned is DBState DB_SHUTDOWNED.
	dbShutdowned = 1
	// firstNormalXid is FirstNormalTransactionId.
	firstNormalXid = 3
)

// castagnoli is the CRC-32C table PostgreSQL's pg_crc32c uses. It is
// read-only after initialization.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ControlInfo is what the backup needs from a stored control file besides
// the checkpoint: the identity of the cluster and its WAL geometry.
type ControlInfo struct {
	SystemID            uint64
	WALSegmentSize      uint64
	DataChecksumVersion uint32
	MaxPreparedXacts    int32
}

// ParseControlFile validates a stored pg_control image (at least the 296
// bytes of ControlFileData; normally the whole 8192-byte file) and returns
// the fields the backup needs. It rejects a bad CRC, a version other than
// PostgreSQL 15's, and every compile-time constant PostgreSQL itself checks
// at startup, so that a backup never carries a control file the server
// would refuse.
func ParseControlFile(b []byte) (ControlInfo, error) {
	if len(b) < ctlStructSize {
		return ControlInfo{}, fmt.Errorf("%w: pg_control is %d bytes, want at least %d", ErrCorrupt, len(b), ctlStructSize)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[ctlVersion:]); v != ControlVersion {
		return ControlInfo{}, fmt.Errorf("%w: pg_control version %d, want %d (PostgreSQL 15)", ErrUnsupported, v, ControlVersion)
	}
	if got, want := le.Uint32(b[ctlCRC:]), crc32.Checksum(b[:ctlCRC], castagnoli); got != want {
		return ControlInfo{}, fmt.Errorf("%w: pg_control CRC %08x, computed %08x", ErrCorrupt, got, want)
	}
	checks := []struct {
		name      string
		off       int
		got, want uint32
	}{
		{"catalog_version_no", ctlCatalogVersion, 0, pgtypes.CatalogVersion},
		{"maxAlign", ctlMaxAlign, 0, 8},
		{"blcksz", ctlBlcksz, 0, pgtypes.BLCKSZ},
		{"relseg_size", ctlRelsegSize, 0, pgtypes.RelSegSize},
		{"xlog_blcksz", ctlXLogBlcksz, 0, lsn.WALPageSize},
		{"nameDataLen", ctlNameDataLen, 0, 64},
		{"indexMaxKeys", ctlIndexMaxKeys, 0, 32},
		{"toast_max_chunk_size", ctlToastMaxChunk, 0, 1996},
		{"loblksize", ctlLoblksize, 0, 2048},
	}
	for _, c := range checks {
		if got := le.Uint32(b[c.off:]); got != c.want {
			return ControlInfo{}, fmt.Errorf("%w: pg_control %s = %d, want %d", ErrCorrupt, c.name, got, c.want)
		}
	}
	if f := math.Float64frombits(le.Uint64(b[ctlFloatFormat:])); f != 1234567.0 {
		return ControlInfo{}, fmt.Errorf("%w: pg_control floatFormat = %v, want 1234567.0", ErrCorrupt, f)
	}
	if b[ctlFloat8ByVal] != 1 {
		return ControlInfo{}, fmt.Errorf("%w: pg_control float8ByVal = %d, want 1", ErrCorrupt, b[ctlFloat8ByVal])
	}
	seg := uint64(le.Uint32(b[ctlXLogSegSize:]))
	if seg < 1<<20 || seg > 1<<30 || seg&(seg-1) != 0 {
		return ControlInfo{}, fmt.Errorf("%w: pg_control xlog_seg_size = %d, want a power of two in [1 MiB, 1 GiB]", ErrCorrupt, seg)
	}
	return ControlInfo{
		SystemID:            le.Uint64(b[ctlSystemID:]),
		WALSegmentSize:      seg,
		DataChecksumVersion: le.Uint32(b[ctlChecksumVersion:]),
		MaxPreparedXacts:    int32(le.Uint32(b[ctlMaxPreparedXacts:])),
	}, nil
}

// ShutdownCheckpoint returns the checkpoint a clean shutdown at
// checkpointLSN would have written, given the state cp that WAL up to the
// backup LSN established: redo equals the record's own LSN (PostgreSQL
// PANICs on anything else for a shutdown checkpoint), PrevTimeLineID equals
// ThisTimeLineID, oldestActiveXid is zero as in every shutdown checkpoint,
// and time is now. The xid, oid and multixact counters are kept.
func ShutdownCheckpoint(cp rmgr.CheckPoint, checkpointLSN lsn.LSN, now time.Time) (rmgr.CheckPoint, error) {
	if cp.ThisTimeLineID == 0 {
		return rmgr.CheckPoint{}, fmt.Errorf("%w: timeline 0", ErrInvalidCheckpoint)
	}
	if cp.NextXidXid() < firstNormalXid {
		return rmgr.CheckPoint{}, fmt.Errorf("%w: nextXid %d:%d is not a normal xid", ErrInvalidCheckpoint, cp.NextXidEpoch(), cp.NextXidXid())
	}
	if cp.NextMulti == 0 {
		return rmgr.CheckPoint{}, fmt.Errorf("%w: nextMulti 0", ErrInvalidCheckpoint)
	}
	cp.Redo = checkpointLSN
	cp.PrevTimeLineID = cp.ThisTimeLineID
	cp.OldestActiveXid = 0
	cp.Time = now.Unix()
	return cp, nil
}

// GenerateControlFile patches the stored control file base into the
// control file of a cluster shut down cleanly at checkpointLSN, as
// pg_resetwal does (pg15-formats.md §5.3): state DB_SHUTDOWNED, checkPoint =
// checkpointLSN, checkPointCopy = shutdown (whose Redo must equal
// checkpointLSN), time = shutdown.Time, minRecoveryPoint and the backup
// fields cleared, CRC recomputed. Unlike pg_resetwal it keeps wal_level and
// the max_* settings: they are the primary's true values, and a server
// configured differently only writes a PARAMETER_CHANGE record at startup.
// The result is always ControlFileSize bytes, zero-padded.
func GenerateControlFile(base []byte, shutdown rmgr.CheckPoint, checkpointLSN lsn.LSN) ([]byte, error) {
	if _, err := ParseControlFile(base); err != nil {
		return nil, err
	}
	if shutdown.Redo != checkpointLSN {
		return nil, fmt.Errorf("%w: shutdown checkpoint redo %s differs from its location %s", ErrInvalidCheckpoint, shutdown.Redo, checkpointLSN)
	}
	out := make([]byte, ControlFileSize)
	copy(out, base[:ctlCRC])
	le := binary.LittleEndian
	le.PutUint32(out[ctlState:], dbShutdowned)
	le.PutUint64(out[ctlTime:], uint64(shutdown.Time))
	le.PutUint64(out[ctlCheckPoint:], uint64(checkpointLSN))
	copy(out[ctlCheckPointCopy:], shutdown.Encode())
	le.PutUint64(out[ctlMinRecoveryPoint:], 0)
	le.PutUint32(out[ctlMinRecoveryTLI:], 0)
	le.PutUint64(out[ctlBackupStartPoint:], 0)
	le.PutUint64(out[ctlBackupEndPoint:], 0)
	out[ctlBackupEndRequired] = 0
	le.PutUint32(out[ctlCRC:], crc32.Checksum(out[:ctlCRC], castagnoli))
	return out, nil
}
