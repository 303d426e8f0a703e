package walingest

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/value"
)

func u32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

type synth struct {
	t   *testing.T
	in  *Ingester
	at  lsn.LSN
	mem *MemStore
}

func newSynth(t *testing.T) *synth {
	store := NewMemStore()
	in, err := New(context.Background(), store, store, nil)
	require.NoError(t, err)
	return &synth{t: t, in: in, at: 0x1000000, mem: store}
}

func (s *synth) ingest(id rmgr.ID, info uint8, xid uint32, main []byte) {
	s.t.Helper()
	s.at += 0x100
	rec := &pgwal.DecodedRecord{LSN: s.at, EndLSN: s.at + 0x50, RmID: id, Info: info, Xid: xid, MainData: main}
	require.NoError(s.t, s.in.Ingest(context.Background(), rec))
}

func (s *synth) slruSegs(kind keyspace.SlruKind) map[uint32]struct{} {
	b, err := s.mem.Latest(context.Background(), keyspace.SlruDir(kind))
	require.NoError(s.t, err)
	segs, err := DecodeSlruDir(b)
	require.NoError(s.t, err)
	return segs
}

func TestSlruZeroAndTruncate(t *testing.T) {
	s := newSynth(t)
	for _, page := range []uint32{0, 31, 32, 64, 65} {
		s.ingest(rmgr.CLOG, rmgr.InfoClogZeroPage, 0, u32s(page))
	}
	require.Equal(t, map[uint32]struct{}{0: {}, 1: {}, 2: {}}, s.slruSegs(keyspace.SlruClog))
	n, err := s.in.slruSegSize(context.Background(), slruSeg{keyspace.SlruClog, 2})
	require.NoError(t, err)
	require.Equal(t, uint32(2), n)
	// Truncate at page 70 (segment 2): segments 0 and 1 go.
	s.ingest(rmgr.CLOG, rmgr.InfoClogTruncate, 0, u32s(70, 70*32768, 5))
	require.Equal(t, map[uint32]struct{}{2: {}}, s.slruSegs(keyspace.SlruClog))
	require.Equal(t, uint32(70*32768), s.in.CheckPoint().OldestXid)

	// A commit on page 64 materializes on the zero page.
	xid := uint32(64*32768 + 3)
	commit := append(binary.LittleEndian.AppendUint64(nil, 42), nil...)
	s.ingest(rmgr.Transaction, rmgr.InfoXactCommit, xid, commit)
	page, err := s.mem.Materialize(keyspace.SlruBlock(keyspace.SlruClog, 2, 0), s.at+0x50)
	require.NoError(t, err)
	require.Equal(t, byte(0x40), page[0])
	require.GreaterOrEqual(t, uint32(s.in.CheckPoint().NextXid), xid+1)

	// MultiXact: offsets pages 0..1, members pages 0..40 (segments 0, 1).
	s.ingest(rmgr.MultiXact, rmgr.InfoMultiXactZeroOffPage, 0, u32s(0))
	for p := uint32(0); p <= 40; p++ {
		s.ingest(rmgr.MultiXact, rmgr.InfoMultiXactZeroMemPage, 0, u32s(p))
	}
	// Multi 2047 is the last of offsets page 0: the next multi's offset
	// lands on page 1, which the WAL never zeroed (older minor versions),
	// so it is created. Its 3 members span members pages 0 and 1.
	create := u32s(2047, 1634, 3, 100, 0, 101, 1, 102, 5)
	s.ingest(rmgr.MultiXact, rmgr.InfoMultiXactCreateID, 0, create)
	end := s.at + 0x50
	off0, err := s.mem.Materialize(keyspace.SlruBlock(keyspace.SlruMultiXactOffsets, 0, 0), end)
	require.NoError(t, err)
	require.Equal(t, uint32(1634), binary.LittleEndian.Uint32(off0[2047*4:]))
	off1, err := s.mem.Materialize(keyspace.SlruBlock(keyspace.SlruMultiXactOffsets, 0, 1), end)
	require.NoError(t, err)
	require.Equal(t, uint32(1637), binary.LittleEndian.Uint32(off1[0:]))
	mem1, err := s.mem.Materialize(keyspace.SlruBlock(keyspace.SlruMultiXactMembers, 0, 1), end)
	require.NoError(t, err)
	require.Equal(t, byte(5), mem1[0])
	require.Equal(t, uint32(102), binary.LittleEndian.Uint32(mem1[4:]))
	cp := s.in.CheckPoint()
	require.Equal(t, uint32(2048), cp.NextMulti)
	require.Equal(t, uint32(1637), cp.NextMultiOffset)

	// Truncate members [0, 1636*32+1) → segment 0 goes; offsets before
	// multi 2047's segment: none (both in segment 0).
	s.ingest(rmgr.MultiXact, rmgr.InfoMultiXactTruncateID, 0, u32s(5, 1, 2048, 1, 1636*32+1))
	require.Equal(t, map[uint32]struct{}{1: {}}, s.slruSegs(keyspace.SlruMultiXactMembers))
	require.Equal(t, map[uint32]struct{}{0: {}}, s.slruSegs(keyspace.SlruMultiXactOffsets))
	require.Equal(t, uint32(2048), s.in.CheckPoint().OldestMulti)
}

func TestControlAndCheckpointRecords(t *testing.T) {
	s := newSynth(t)
	control := make([]byte, 8192)
	require.NoError(t, s.mem.Put(context.Background(), keyspace.ControlFile(), 1, value.AppendImage(nil, control)))
	// PARAMETER_CHANGE: 28 bytes.
	pc := append(u32s(100, 8, 10, 5, 64, 2), 1, 0, 0, 0)
	s.ingest(rmgr.XLOG, rmgr.InfoParameterChange, 0, pc)
	b, err := s.mem.Latest(context.Background(), keyspace.ControlFile())
	require.NoError(t, err)
	require.Equal(t, uint32(2), binary.LittleEndian.Uint32(b[172:]))
	require.Equal(t, uint32(5), binary.LittleEndian.Uint32(b[192:]))
	require.Equal(t, crc32.Checksum(b[:288], castagnoli), binary.LittleEndian.Uint32(b[288:]))

	s.ingest(rmgr.XLOG, rmgr.InfoNextOID, 0, u32s(24576))
	require.Equal(t, uint32(24576), uint32(s.in.CheckPoint().NextOid))

	// An online checkpoint only advances; a shutdown one is authoritative.
	online := rmgr.CheckPoint{Redo: 5, ThisTimeLineID: 1, PrevTimeLineID: 1, NextXid: 900, NextOid: 20000, NextMulti: 1, NextMultiOffset: 0, OldestXid: 700, OldestMulti: 1, OldestActiveXid: 899}
	s.ingest(rmgr.XLOG, rmgr.InfoCheckpointOnline, 0, online.Encode())
	cp := s.in.CheckPoint()
	require.Equal(t, uint64(900), cp.NextXid)
	require.Equal(t, uint32(24576), uint32(cp.NextOid), "online checkpoint's nextOid is ignored")
	require.Equal(t, lsn.LSN(0), cp.Redo)
	require.Equal(t, uint32(899), cp.OldestActiveXid)
	shutdown := online
	shutdown.NextOid, shutdown.OldestActiveXid = 20000, 0
	s.ingest(rmgr.XLOG, rmgr.InfoCheckpointShutdown, 0, shutdown.Encode())
	cp = s.in.CheckPoint()
	require.Equal(t, uint32(20000), uint32(cp.NextOid))
	require.Equal(t, s.at+0x50, cp.Redo)
	require.Equal(t, uint32(900), cp.OldestActiveXid, "no prepared xacts: nextXid")
	b, err = s.mem.Latest(context.Background(), keyspace.Checkpoint())
	require.NoError(t, err)
	require.Equal(t, cp.Encode(), b)
}

func TestPoisonedAfterError(t *testing.T) {
	s := newSynth(t)
	// A truncated CLOG ZEROPAGE body fails, and so does everything after.
	rec := &pgwal.DecodedRecord{LSN: 10, EndLSN: 20, RmID: rmgr.CLOG, Info: rmgr.InfoClogZeroPage, MainData: []byte{1}}
	err := s.in.Ingest(context.Background(), rec)
	require.ErrorIs(t, err, ErrCorrupt)
	rec = &pgwal.DecodedRecord{LSN: 30, EndLSN: 40, RmID: rmgr.CLOG, Info: rmgr.InfoClogZeroPage, MainData: u32s(0)}
	require.ErrorIs(t, s.in.Ingest(context.Background(), rec), ErrCorrupt)

	// FILE_COPY without a page reader or a source database.
	store := NewMemStore()
	in, err := New(context.Background(), store, nil, nil)
	require.NoError(t, err)
	rec = &pgwal.DecodedRecord{LSN: 30, EndLSN: 40, RmID: rmgr.Database, Info: rmgr.InfoDBCreateFileCopy, MainData: u32s(5, 1663, 1, 1663)}
	require.ErrorIs(t, in.Ingest(context.Background(), rec), ErrMissingBase)
}
