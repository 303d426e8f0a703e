package pgwal

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/stratadb/strata/internal/lsn"
)

// walBuilder lays records out in WAL pages exactly as PostgreSQL's insertion
// code does, for tests: 8-byte aligned records, long headers at segment
// starts, XLP_FIRST_IS_CONTRECORD and xlp_rem_len on continuation pages,
// XLOG_SWITCH skipping the rest of the segment.
type walBuilder struct {
	segSize uint64
	base    lsn.LSN // LSN of out[0]; a segment start
	out     []byte
	pos     lsn.LSN
	prev    lsn.LSN
	sysID   uint64
	tli     uint32
	starts  []lsn.LSN
	ends    []lsn.LSN
	raws    [][]byte
}

const testSegSize = 1 << 20

func newWALBuilder(base lsn.LSN) *walBuilder {
	return &walBuilder{segSize: testSegSize, base: base, pos: base, sysID: 7350000000000000001, tli: 1}
}

func (w *walBuilder) grow(to lsn.LSN) {
	if n := int(to - w.base); n > len(w.out) {
		w.out = append(w.out, make([]byte, n-len(w.out))...)
	}
}

func (w *walBuilder) pageHeader(p lsn.LSN, remLen uint32) {
	long := p.SegmentOffset(w.segSize) == 0
	size := lsn.LSN(lsn.ShortPageHeaderSize)
	info := uint16(0x0004)
	if long {
		size, info = lsn.LongPageHeaderSize, info|xlpLongHeader
	}
	if remLen > 0 {
		info |= xlpFirstIsContRecord
	}
	w.grow(p + size)
	h := w.out[p-w.base:]
	le := binary.LittleEndian
	le.PutUint16(h[0:], PageMagic)
	le.PutUint16(h[2:], info)
	le.PutUint32(h[4:], w.tli)
	le.PutUint64(h[8:], uint64(p))
	le.PutUint32(h[16:], remLen)
	if long {
		le.PutUint64(h[24:], w.sysID)
		le.PutUint32(h[32:], uint32(w.segSize))
		le.PutUint32(h[36:], PageSize)
	}
}

func (w *walBuilder) headerSize(p lsn.LSN) lsn.LSN {
	if p.SegmentOffset(w.segSize) == 0 {
		return lsn.LongPageHeaderSize
	}
	return lsn.ShortPageHeaderSize
}

// makeRecord builds a record with main data and a valid CRC.
func makeRecord(rmid, info uint8, xid uint32, prev lsn.LSN, payload []byte) []byte {
	var body []byte
	switch {
	case len(payload) == 0:
	case len(payload) <= 255:
		body = append([]byte{blockIDDataShort, byte(len(payload))}, payload...)
	default:
		body = binary.LittleEndian.AppendUint32([]byte{blockIDDataLong}, uint32(len(payload)))
		body = append(body, payload...)
	}
	return finishRecord(rmid, info, xid, prev, body)
}

// finishRecord prepends the XLogRecord header to body and sets the CRC.
func finishRecord(rmid, info uint8, xid uint32, prev lsn.LSN, body []byte) []byte {
	rec := make([]byte, RecordHeaderSize, RecordHeaderSize+len(body))
	le := binary.LittleEndian
	le.PutUint32(rec[0:], uint32(RecordHeaderSize+len(body)))
	le.PutUint32(rec[4:], xid)
	le.PutUint64(rec[8:], uint64(prev))
	rec[16], rec[17] = info, rmid
	rec = append(rec, body...)
	c := crc32.Update(0, castagnoli, rec[RecordHeaderSize:])
	c = crc32.Update(c, castagnoli, rec[:20])
	le.PutUint32(rec[20:], c)
	return rec
}

// add appends a record whose xl_prev is the previous record, and returns
// its start.
func (w *walBuilder) add(rmid, info uint8, payload []byte) lsn.LSN {
	return w.addRaw(func(prev lsn.LSN) []byte { return makeRecord(rmid, info, 700, prev, payload) })
}

func (w *walBuilder) addRaw(build func(prev lsn.LSN) []byte) lsn.LSN {
	if w.pos.IsPageBoundary() {
		w.pageHeader(w.pos, 0)
		w.pos += w.headerSize(w.pos)
	}
	start := w.pos
	rec := build(w.prev)
	w.raws = append(w.raws, rec)
	for left := rec; len(left) > 0; {
		if w.pos.IsPageBoundary() {
			w.pageHeader(w.pos, uint32(len(left)))
			w.pos += w.headerSize(w.pos)
		}
		n := min(len(left), int(PageSize-w.pos.PageOffset()))
		w.grow(w.pos + lsn.LSN(n))
		copy(w.out[w.pos-w.base:], left[:n])
		w.pos += lsn.LSN(n)
		left = left[n:]
	}
	w.pos = w.pos.Align()
	if rec[17] == 0 && rec[16]&0xF0 == xlogSwitchInfo {
		w.pos = (w.pos + lsn.LSN(w.segSize) - 1).SegmentStart(w.segSize)
	}
	w.grow(w.pos)
	w.prev = start
	w.starts = append(w.starts, start)
	w.ends = append(w.ends, w.pos)
	return start
}

// bytes returns the WAL written so far, padded with zeros to a page boundary.
func (w *walBuilder) bytes() []byte {
	end := w.pos
	if !end.IsPageBoundary() {
		end = end.PageStart() + PageSize
	}
	w.grow(end)
	return w.out[:end-w.base]
}
