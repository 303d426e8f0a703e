package basebackup

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

const testSystemID = 7712168714569648973

// testCheckPoint is a plausible online checkpoint of a running primary.
func testCheckPoint() rmgr.CheckPoint {
	return rmgr.CheckPoint{
		Redo: lsn.MustParse("0/1A2B3C0"), ThisTimeLineID: 1, PrevTimeLineID: 1, FullPageWrites: true,
		NextXid: 40550, NextOid: 24576, NextMulti: 3416, NextMultiOffset: 6831,
		OldestXid: 716, OldestXidDB: 1, OldestMulti: 1, OldestMultiDB: 1,
		Time: 1700000000, OldestActiveXid: 40549,
	}
}

// testControlFile builds a PostgreSQL 15 pg_control as a running primary
// would have it (state IN_PRODUCTION, an online checkpoint, a backup start
// point), with the values pg15-formats.md §5.1 observed.
func testControlFile() []byte {
	b := make([]byte, ControlFileSize)
	le := binary.LittleEndian
	le.PutUint64(b[ctlSystemID:], testSystemID)
	le.PutUint32(b[ctlVersion:], ControlVersion)
	le.PutUint32(b[ctlCatalogVersion:], 202209061)
	le.PutUint32(b[ctlState:], 6)
	le.PutUint64(b[ctlTime:], 1700000001)
	le.PutUint64(b[ctlCheckPoint:], uint64(lsn.MustParse("0/1A2B3F8")))
	copy(b[ctlCheckPointCopy:], testCheckPoint().Encode())
	le.PutUint64(b[128:], 1000) // unloggedLSN
	le.PutUint64(b[ctlMinRecoveryPoint:], 0x1A00000)
	le.PutUint32(b[ctlMinRecoveryTLI:], 1)
	le.PutUint64(b[ctlBackupStartPoint:], 0x1000028)
	le.PutUint64(b[ctlBackupEndPoint:], 0x1000100)
	b[ctlBackupEndRequired] = 1
	le.PutUint32(b[172:], 1) // wal_level replica
	le.PutUint32(b[180:], 100)
	le.PutUint32(b[184:], 8)
	le.PutUint32(b[188:], 10)
	le.PutUint32(b[ctlMaxPreparedXacts:], 5)
	le.PutUint32(b[196:], 64)
	le.PutUint32(b[ctlMaxAlign:], 8)
	le.PutUint64(b[ctlFloatFormat:], math.Float64bits(1234567.0))
	le.PutUint32(b[ctlBlcksz:], 8192)
	le.PutUint32(b[ctlRelsegSize:], 131072)
	le.PutUint32(b[ctlXLogBlcksz:], 8192)
	le.PutUint32(b[ctlXLogSegSize:], 16<<20)
	le.PutUint32(b[ctlNameDataLen:], 64)
	le.PutUint32(b[ctlIndexMaxKeys:], 32)
	le.PutUint32(b[ctlToastMaxChunk:], 1996)
	le.PutUint32(b[ctlLoblksize:], 2048)
	b[ctlFloat8ByVal] = 1
	le.PutUint32(b[ctlChecksumVersion:], 1)
	for i := range 32 {
		b[256+i] = byte(i + 1) // mock_authentication_nonce
	}
	fixCRC(b)
	return b
}

func fixCRC(b []byte) {
	binary.LittleEndian.PutUint32(b[ctlCRC:], crc32.Checksum(b[:ctlCRC], castagnoli))
}

func TestParseControlFile(t *testing.T) {
	patch := func(off int, v uint32, recrc bool) []byte {
		b := testControlFile()
		binary.LittleEndian.PutUint32(b[off:], v)
		if recrc {
			fixCRC(b)
		}
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"valid 8192 bytes", testControlFile(), nil},
		{"valid struct only", testControlFile()[:ctlStructSize], nil},
		{"short", testControlFile()[:ctlStructSize-1], ErrCorrupt},
		{"empty", nil, ErrCorrupt},
		{"PG 14 version", patch(ctlVersion, 1300-100, true), ErrUnsupported},
		{"bad CRC", patch(ctlState, 1, false), ErrCorrupt},
		{"catalog version", patch(ctlCatalogVersion, 202107181, true), ErrCorrupt},
		{"blcksz", patch(ctlBlcksz, 16384, true), ErrCorrupt},
		{"segment size not power of two", patch(ctlXLogSegSize, 3<<20, true), ErrCorrupt},
		{"segment size too small", patch(ctlXLogSegSize, 1<<19, true), ErrCorrupt},
		{"float format", patch(ctlFloatFormat+4, 0, true), ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseControlFile(tc.in)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, ControlInfo{SystemID: testSystemID, WALSegmentSize: 16 << 20, DataChecksumVersion: 1, MaxPreparedXacts: 5}, info)
		})
	}
	t.Run("64 MiB segments", func(t *testing.T) {
		info, err := ParseControlFile(patch(ctlXLogSegSize, 64<<20, true))
		require.NoError(t, err)
		require.Equal(t, uint64(64<<20), info.WALSegmentSize)
	})
}

func TestShutdownCheckpoint(t *testing.T) {
	now := time.Unix(1800000000, 0)
	at := lsn.MustParse("0/3000028")
	got, err := ShutdownCheckpoint(testCheckPoint(), at, now)
	require.NoError(t, err)
	want := testCheckPoint()
	want.Redo, want.Time, want.OldestActiveXid = at, 1800000000, 0
	require.Equal(t, want, got)

	tests := []struct {
		name   string
		mutate func(*rmgr.CheckPoint)
	}{
		{"timeline 0", func(cp *rmgr.CheckPoint) { cp.ThisTimeLineID = 0 }},
		{"bootstrap xid", func(cp *rmgr.CheckPoint) { cp.NextXid = 1<<32 | 2 }},
		{"nextMulti 0", func(cp *rmgr.CheckPoint) { cp.NextMulti = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp := testCheckPoint()
			tc.mutate(&cp)
			_, err := ShutdownCheckpoint(cp, at, now)
			require.ErrorIs(t, err, ErrInvalidCheckpoint)
		})
	}
}

func TestGenerateControlFile(t *testing.T) {
	base := testControlFile()
	at := lsn.MustParse("0/5000028")
	shutdown, err := ShutdownCheckpoint(testCheckPoint(), at, time.Unix(1800000000, 0))
	require.NoError(t, err)
	out, err := GenerateControlFile(base, shutdown, at)
	require.NoError(t, err)
	require.Len(t, out, ControlFileSize)

	_, err = ParseControlFile(out)
	require.NoError(t, err, "the generated file must pass the checks PostgreSQL makes")
	le := binary.LittleEndian
	require.Equal(t, uint32(dbShutdowned), le.Uint32(out[ctlState:]))
	require.Equal(t, uint64(1800000000), le.Uint64(out[ctlTime:]))
	require.Equal(t, uint64(at), le.Uint64(out[ctlCheckPoint:]))
	copyCP, err := rmgr.DecodeCheckPoint(out[ctlCheckPointCopy : ctlCheckPointCopy+rmgr.CheckPointSize])
	require.NoError(t, err)
	require.Equal(t, shutdown, copyCP)
	for _, off := range []int{ctlMinRecoveryPoint, ctlBackupStartPoint, ctlBackupEndPoint} {
		require.Zero(t, le.Uint64(out[off:]), "offset %d", off)
	}
	require.Zero(t, le.Uint32(out[ctlMinRecoveryTLI:]))
	require.Zero(t, out[ctlBackupEndRequired])
	// Everything else is the stored file's: identity, settings, nonce.
	require.Equal(t, base[:ctlState], out[:ctlState])
	require.Equal(t, base[128:136], out[128:136])
	require.Equal(t, base[172:ctlCRC], out[172:ctlCRC])
	require.Equal(t, make([]byte, ControlFileSize-ctlCRC-4), out[ctlCRC+4:])

	t.Run("redo differs from location", func(t *testing.T) {
		_, err := GenerateControlFile(base, shutdown, at+8)
		require.ErrorIs(t, err, ErrInvalidCheckpoint)
	})
	t.Run("corrupt base", func(t *testing.T) {
		bad := testControlFile()
		bad[0] ^= 1
		_, err := GenerateControlFile(bad, shutdown, at)
		require.ErrorIs(t, err, ErrCorrupt)
	})
}

func FuzzGenerateControlFile(f *testing.F) {
	f.Add(testControlFile(), uint64(0x5000028), false)
	f.Add(testControlFile()[:ctlStructSize], uint64(0), true)
	f.Add([]byte{1, 2, 3}, uint64(40), true)
	f.Fuzz(func(t *testing.T, base []byte, at uint64, recrc bool) {
		if recrc && len(base) >= ctlStructSize {
			// Let the fuzzer reach the field checks past the CRC.
			base = append([]byte(nil), base...)
			fixCRC(base)
		}
		if _, err := ParseControlFile(base); err != nil {
			return
		}
		shutdown, err := ShutdownCheckpoint(testCheckPoint(), lsn.LSN(at), time.Unix(0, 0))
		require.NoError(t, err)
		out, err := GenerateControlFile(base, shutdown, lsn.LSN(at))
		require.NoError(t, err)
		_, err = ParseControlFile(out)
		require.NoError(t, err)
		require.Equal(t, uint32(dbShutdowned), binary.LittleEndian.Uint32(out[ctlState:]))
	})
}
