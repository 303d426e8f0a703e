package pgwal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
)

// Sizes and flags of PostgreSQL 15's WAL (access/xlog_internal.h,
// access/xlogrecord.h).
const (
	// PageMagic is XLOG_PAGE_MAGIC for PostgreSQL 15.
	PageMagic = 0xD110
	// PageSize is XLOG_BLCKSZ.
	PageSize = lsn.WALPageSize
	// RecordHeaderSize is SizeOfXLogRecord.
	RecordHeaderSize = 24
	// MaxRecordSize is the largest xl_tot_len the reader accepts: PostgreSQL
	// 15's xlogreader rejects records that palloc could not hold
	// (MaxAllocSize, 1 GiB - 1).
	MaxRecordSize = 0x3fffffff

	xlpFirstIsContRecord          = 0x0001
	xlpLongHeader                 = 0x0002
	xlpFirstIsOverwriteContRecord = 0x0008
	xlpAllFlags                   = 0x000F

	xlogSwitchInfo = 0x40
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one WAL record as the reader found it.
type Record struct {
	// LSN is where the record starts (PostgreSQL's ReadRecPtr).
	LSN lsn.LSN
	// EndLSN is PostgreSQL's EndRecPtr: the position right after the
	// record's last byte, MAXALIGNed, counting the page headers it crossed;
	// for XLOG_SWITCH, the start of the next segment.
	EndLSN lsn.LSN
	// Raw is exactly xl_tot_len bytes: the record with page headers removed.
	// It aliases the decoder's memory and is valid until the next call to
	// Next or Feed on the decoder that returned it; use Clone to keep it.
	Raw []byte
}

// Clone returns a copy of r whose Raw no longer aliases decoder memory.
func (r Record) Clone() Record {
	r.Raw = append([]byte(nil), r.Raw...)
	return r
}

// TotalLen returns xl_tot_len.
func (r Record) TotalLen() uint32 { return uint32(len(r.Raw)) }

// Prev returns xl_prev.
func (r Record) Prev() lsn.LSN { return lsn.LSN(binary.LittleEndian.Uint64(r.Raw[8:])) }

// RmID returns xl_rmid.
func (r Record) RmID() rmgr.ID { return rmgr.ID(r.Raw[17]) }

// Info returns xl_info.
func (r Record) Info() uint8 { return r.Raw[16] }

// Xid returns xl_xid.
func (r Record) Xid() uint32 { return binary.LittleEndian.Uint32(r.Raw[4:]) }

// Option configures a StreamDecoder or a Reader.
type Option func(*options)

type options struct {
	segSize     uint64
	systemID    uint64
	atRecord    bool
	prev        lsn.LSN
	prevIsKnown bool
}

// WithSegmentSize sets the WAL segment size (default 16 MiB). It must be a
// power of two between 1 MiB and 1 GiB, as PostgreSQL requires.
func WithSegmentSize(bytes uint64) Option { return func(o *options) { o.segSize = bytes } }

// WithSystemID makes the decoder check xlp_sysid of every long page header
// against id. Without it, the first long header seen sets the identifier that
// later ones must match.
func WithSystemID(id uint64) Option { return func(o *options) { o.systemID = id } }

// StartsAtRecord declares that the start LSN is the start of a record (or the
// EndLSN of the previous one), such as a timeline's last_record_lsn; decoding
// then begins right there, even in the middle of a page whose header was never
// fed. If prev is valid it is checked against the first record's xl_prev.
// Without this option the decoder searches for the first record start as
// PostgreSQL's XLogFindNextRecord does.
func StartsAtRecord(prev lsn.LSN) Option {
	return func(o *options) { o.atRecord, o.prev, o.prevIsKnown = true, prev, prev.IsValid() }
}

func buildOptions(opts []Option) (options, error) {
	o := options{segSize: lsn.DefaultSegmentSize}
	for _, f := range opts {
		f(&o)
	}
	if o.segSize < 1<<20 || o.segSize > 1<<30 || o.segSize&(o.segSize-1) != 0 {
		return o, fmt.Errorf("%w: segment size %d is not a power of two between 1 MiB and 1 GiB", ErrBadOption, o.segSize)
	}
	return o, nil
}

type decoderMode uint8

const (
	modeSeek   decoderMode = iota // looking for the first record start from seekPos
	modeRecord                    // the next record starts at recPtr
)

// pageInfo is the part of a validated page header the reader uses.
type pageInfo struct {
	info    uint16
	hdrSize uint32
	remLen  uint32
}

// StreamDecoder turns a WAL byte stream, fed in arbitrary chunks, into
// records. The zero value is not usable; call NewStreamDecoder.
type StreamDecoder struct {
	opts options

	// buf[off:] holds the fed bytes not yet consumed; buf[off] is at base.
	// When base > fedEnd nothing is buffered and the next base-fedEnd fed
	// bytes are dropped on arrival (the reader skipped ahead).
	buf    []byte
	off    int
	base   lsn.LSN
	fedEnd lsn.LSN

	mode    decoderMode
	seekPos lsn.LSN
	recPtr  lsn.LSN

	// prev-link checking: PostgreSQL checks xl_prev < RecPtr after a
	// random-access start and xl_prev == previous record afterwards.
	prevRecord lsn.LSN
	prevKnown  bool

	lastPageTLI   uint32
	systemID      uint64
	validPage     lsn.LSN // page start of the last validated page header
	validPageOK   bool
	validPageInfo pageInfo
	trustedPage   lsn.LSN // StartsAtRecord mid-page: that page's header is never seen
	trustedOK     bool

	// a record spanning pages being assembled
	pend      pending
	assembled []byte

	err error // sticky end-of-WAL or corruption error
}

type pending struct {
	active    bool
	recPtr    lsn.LSN
	totLen    uint32
	gotHeader bool
	cursor    lsn.LSN // next page to read a continuation from
	lastPage  lsn.LSN
	lastInfo  pageInfo
}

// NewStreamDecoder returns a decoder whose first fed byte is at start. Unless
// StartsAtRecord is given, start may be anywhere: mid-page (then the bytes up
// to the next page boundary are skipped, since the page header that says where
// records start was not fed) or mid-record; the first record returned is the
// first one that begins on or after the first page header seen.
func NewStreamDecoder(start lsn.LSN, opts ...Option) (*StreamDecoder, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	d := &StreamDecoder{opts: o, base: start, fedEnd: start, systemID: o.systemID}
	if o.atRecord {
		d.mode = modeRecord
		d.recPtr = start
		d.prevRecord, d.prevKnown = o.prev, o.prevIsKnown
		if !start.IsPageBoundary() {
			d.trustedPage, d.trustedOK = start.PageStart(), true
		}
	} else {
		d.mode = modeSeek
		d.seekPos = start
	}
	return d, nil
}

// Feed appends the next chunk of the stream. The decoder copies what it
// needs; chunk may be reused after Feed returns. Feed invalidates Raw of
// records returned earlier. Bytes the decoder already decided to skip (the
// rest of a segment after XLOG_SWITCH, the part of a page before the first
// header) are dropped on arrival. Memory grows with bytes fed and not yet
// consumed by Next, so callers should call Next until ErrNeedMore between
// Feeds.
func (d *StreamDecoder) Feed(chunk []byte) {
	n := uint64(len(chunk))
	if d.base > d.fedEnd {
		drop := min(uint64(d.base-d.fedEnd), n)
		chunk = chunk[drop:]
	}
	d.fedEnd += lsn.LSN(n)
	if len(chunk) == 0 {
		return
	}
	if d.off == len(d.buf) {
		d.buf, d.off = d.buf[:0], 0
	} else if d.off > 0 && (d.off >= len(d.buf)/2 || len(d.buf)+len(chunk) > cap(d.buf)) {
		k := copy(d.buf, d.buf[d.off:])
		d.buf, d.off = d.buf[:k], 0
	}
	d.buf = append(d.buf, chunk...)
}

// FeedAt is Feed for a chunk that claims to start at start; it fails with
// ErrNotContiguous unless start is where the previous chunk ended.
func (d *StreamDecoder) FeedAt(start lsn.LSN, chunk []byte) error {
	if start != d.fedEnd {
		return fmt.Errorf("%w: chunk starts at %s, stream is at %s", ErrNotContiguous, start, d.fedEnd)
	}
	d.Feed(chunk)
	return nil
}

// FedEnd returns the LSN right after the last byte fed.
func (d *StreamDecoder) FedEnd() lsn.LSN { return d.fedEnd }

// NextRecordLSN returns where the decoder expects the next record to start
// (before skipping a page header), or Invalid while it is still looking for
// the first record.
func (d *StreamDecoder) NextRecordLSN() lsn.LSN {
	if d.mode != modeRecord {
		return lsn.Invalid
	}
	return d.recPtr
}

// Buffered returns the number of fed bytes held and not yet consumed.
func (d *StreamDecoder) Buffered() int { return len(d.buf) - d.off }

// bytesAt returns the n buffered bytes starting at p, or false if they have
// not all arrived yet. p must not be before base.
func (d *StreamDecoder) bytesAt(p lsn.LSN, n uint32) ([]byte, bool) {
	if p < d.base {
		return nil, false
	}
	i := uint64(p - d.base)
	avail := uint64(len(d.buf) - d.off)
	if i+uint64(n) > avail {
		return nil, false
	}
	s := d.off + int(i)
	return d.buf[s : s+int(n) : s+int(n)], true
}

// consumeTo releases every byte before p; bytes not yet fed are dropped on
// arrival.
func (d *StreamDecoder) consumeTo(p lsn.LSN) {
	if p <= d.base {
		return
	}
	avail := uint64(len(d.buf) - d.off)
	adv := uint64(p - d.base)
	if adv >= avail {
		d.off = len(d.buf)
	} else {
		d.off += int(adv)
	}
	d.base = p
}

func (d *StreamDecoder) end(at lsn.LSN, reason EndReason, format string, args ...any) error {
	last := lsn.Invalid
	if d.prevKnown && d.mode == modeRecord {
		last = d.prevRecord
	}
	return &EndOfWALError{LSN: at, LastRecord: last, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

func (d *StreamDecoder) segFileDesc(p lsn.LSN) string {
	return fmt.Sprintf("LSN %s, offset %d", p, p.SegmentOffset(d.opts.segSize))
}

// pageHeader returns the validated header of the page starting at p.
// ok is false when the header's bytes have not arrived.
func (d *StreamDecoder) pageHeader(p lsn.LSN) (pi pageInfo, ok bool, err error) {
	if d.validPageOK && d.validPage == p {
		return d.validPageInfo, true, nil
	}
	b, ok := d.bytesAt(p, lsn.ShortPageHeaderSize)
	if !ok {
		return pi, false, nil
	}
	le := binary.LittleEndian
	magic := le.Uint16(b[0:])
	pi.info = le.Uint16(b[2:])
	tli := le.Uint32(b[4:])
	pageAddr := lsn.LSN(le.Uint64(b[8:]))
	pi.remLen = le.Uint32(b[16:])
	pi.hdrSize = lsn.ShortPageHeaderSize
	segOff := p.SegmentOffset(d.opts.segSize)
	switch {
	case magic != PageMagic:
		if magic == 0 && pi.info == 0 && pageAddr == 0 {
			return pi, false, d.end(p, EndZeroed, "invalid magic number 0000 in WAL segment, %s (zeroed page)", d.segFileDesc(p))
		}
		return pi, false, d.end(p, EndBadPageHeader, "invalid magic number %04X in WAL segment, %s", magic, d.segFileDesc(p))
	case pi.info&^xlpAllFlags != 0:
		return pi, false, d.end(p, EndBadPageHeader, "invalid info bits %04X in WAL segment, %s", pi.info, d.segFileDesc(p))
	}
	if pi.info&xlpLongHeader != 0 {
		lb, ok := d.bytesAt(p, lsn.LongPageHeaderSize)
		if !ok {
			return pi, false, nil
		}
		pi.hdrSize = lsn.LongPageHeaderSize
		sysID := le.Uint64(lb[24:])
		segSize := le.Uint32(lb[32:])
		blcksz := le.Uint32(lb[36:])
		switch {
		case d.systemID != 0 && sysID != d.systemID:
			return pi, false, fmt.Errorf("%w: WAL file is from different database system: WAL file database system identifier is %d, expected %d (%s)", ErrCorrupt, sysID, d.systemID, d.segFileDesc(p))
		case uint64(segSize) != d.opts.segSize:
			return pi, false, fmt.Errorf("%w: WAL file is from different database system: incorrect segment size %d in page header, want %d (%s)", ErrCorrupt, segSize, d.opts.segSize, d.segFileDesc(p))
		case blcksz != PageSize:
			return pi, false, fmt.Errorf("%w: WAL file is from different database system: incorrect XLOG_BLCKSZ %d in page header (%s)", ErrCorrupt, blcksz, d.segFileDesc(p))
		}
		if d.systemID == 0 {
			d.systemID = sysID
		}
	} else if segOff == 0 {
		return pi, false, d.end(p, EndBadPageHeader, "invalid info bits %04X in WAL segment, %s (no long header at segment start)", pi.info, d.segFileDesc(p))
	}
	if pageAddr != p {
		return pi, false, d.end(p, EndBadPageAddr, "unexpected pageaddr %s in WAL segment, %s", pageAddr, d.segFileDesc(p))
	}
	if tli < d.lastPageTLI {
		return pi, false, d.end(p, EndBadPageHeader, "out-of-sequence timeline ID %d (after %d) in WAL segment, %s", tli, d.lastPageTLI, d.segFileDesc(p))
	}
	d.lastPageTLI = tli
	d.validPage, d.validPageOK, d.validPageInfo = p, true, pi
	return pi, true, nil
}

// Next returns the next record. It returns ErrNeedMore when the fed bytes do
// not yet hold it, an *EndOfWALError at the end of valid WAL, or an error
// wrapping ErrCorrupt. End and corruption errors are sticky.
func (d *StreamDecoder) Next() (Record, error) {
	if d.err != nil {
		return Record{}, d.err
	}
	for {
		var (
			rec      Record
			ok, done bool
			err      error
		)
		switch d.mode {
		case modeSeek:
			ok, err = d.seek()
		case modeRecord:
			rec, ok, done, err = d.readRecord()
		}
		if err != nil {
			d.err = err
			return Record{}, err
		}
		if !ok {
			return Record{}, ErrNeedMore
		}
		if done {
			return rec, nil
		}
	}
}

// seek implements XLogFindNextRecord's first half: from the page at or after
// seekPos, skip the continuation of a record begun earlier.
func (d *StreamDecoder) seek() (bool, error) {
	p := d.seekPos
	if !p.IsPageBoundary() {
		p = p.PageStart() + PageSize
	}
	d.consumeTo(p)
	pi, ok, err := d.pageHeader(p)
	if err != nil || !ok {
		return false, err
	}
	if pi.info&xlpFirstIsContRecord != 0 {
		if alignUp(uint64(pi.remLen)) >= uint64(PageSize-pi.hdrSize) {
			d.seekPos = p + PageSize
			return true, nil
		}
		d.recPtr = p + lsn.LSN(pi.hdrSize) + lsn.LSN(alignUp(uint64(pi.remLen)))
	} else {
		d.recPtr = p + lsn.LSN(pi.hdrSize)
	}
	d.mode = modeRecord
	d.prevKnown = false
	return true, nil
}

func alignUp(n uint64) uint64 { return (n + lsn.MaxAlign - 1) &^ (lsn.MaxAlign - 1) }

// checkHeader is ValidXLogRecordHeader.
func (d *StreamDecoder) checkHeader(recPtr lsn.LSN, h []byte) error {
	le := binary.LittleEndian
	totLen := le.Uint32(h[0:])
	prev := lsn.LSN(le.Uint64(h[8:]))
	rmid := rmgr.ID(h[17])
	switch {
	case totLen < RecordHeaderSize:
		reason := EndBadRecordHeader
		if totLen == 0 {
			reason = EndZeroed
		}
		return d.end(recPtr, reason, "invalid record length at %s: wanted %d, got %d", recPtr, RecordHeaderSize, totLen)
	case totLen > MaxRecordSize:
		return d.end(recPtr, EndBadRecordHeader, "record length %d at %s too long", totLen, recPtr)
	case !(rmid <= rmgr.MaxBuiltin || rmid >= rmgr.MinCustom):
		return d.end(recPtr, EndBadRecordHeader, "invalid resource manager ID %d at %s", rmid, recPtr)
	}
	if d.prevKnown {
		if prev != d.prevRecord {
			return d.end(recPtr, EndBadPrevLink, "record with incorrect prev-link %s at %s", prev, recPtr)
		}
	} else if prev >= recPtr {
		return d.end(recPtr, EndBadPrevLink, "record with incorrect prev-link %s at %s", prev, recPtr)
	}
	return nil
}

// readRecord reads the record at recPtr (XLogDecodeNextRecord). ok=false
// means more bytes are needed; done=false with ok=true means the state
// changed (a restart) and the caller should loop.
func (d *StreamDecoder) readRecord() (rec Record, ok, done bool, err error) {
	if !d.pend.active {
		rp := d.recPtr
		page := rp.PageStart()
		off := uint32(rp.PageOffset())
		var pi pageInfo
		if d.trustedOK && d.trustedPage == page {
			pi = pageInfo{hdrSize: 0}
		} else {
			d.trustedOK = false
			pi, ok, err = d.pageHeader(page)
			if err != nil || !ok {
				return rec, false, false, err
			}
			if off == 0 {
				off = pi.hdrSize
				rp += lsn.LSN(off)
				d.recPtr = rp
			} else if off < pi.hdrSize {
				return rec, false, false, d.end(rp, EndBadRecordHeader, "invalid record offset at %s: expected at least %d, got %d", rp, pi.hdrSize, off)
			}
			if pi.info&xlpFirstIsContRecord != 0 && off == pi.hdrSize {
				return rec, false, false, d.end(rp, EndBadRecordHeader, "contrecord is requested by %s", rp)
			}
		}
		d.consumeTo(rp)
		onPage := PageSize - off
		gotHeader := false
		var totLen uint32
		if onPage >= RecordHeaderSize {
			h, ok := d.bytesAt(rp, RecordHeaderSize)
			if !ok {
				return rec, false, false, nil
			}
			if err := d.checkHeader(rp, h); err != nil {
				return rec, false, false, err
			}
			totLen = binary.LittleEndian.Uint32(h)
			gotHeader = true
		} else {
			h, ok := d.bytesAt(rp, 4)
			if !ok {
				return rec, false, false, nil
			}
			totLen = binary.LittleEndian.Uint32(h)
			if totLen < RecordHeaderSize {
				reason := EndBadRecordHeader
				if totLen == 0 {
					reason = EndZeroed
				}
				return rec, false, false, d.end(rp, reason, "invalid record length at %s: wanted %d, got %d", rp, RecordHeaderSize, totLen)
			}
			if totLen > MaxRecordSize {
				return rec, false, false, d.end(rp, EndBadRecordHeader, "record length %d at %s too long", totLen, rp)
			}
		}
		if totLen <= onPage {
			raw, ok := d.bytesAt(rp, totLen)
			if !ok {
				return rec, false, false, nil
			}
			end := rp + lsn.LSN(alignUp(uint64(totLen)))
			return d.finish(rp, end, raw)
		}
		// The record spans pages: collect its first part now.
		first, ok := d.bytesAt(rp, onPage)
		if !ok {
			return rec, false, false, nil
		}
		d.assembled = append(d.assembled[:0], first...)
		d.pend = pending{active: true, recPtr: rp, totLen: totLen, gotHeader: gotHeader, cursor: page + PageSize}
		d.consumeTo(page + PageSize)
	}
	p := &d.pend
	for uint32(len(d.assembled)) < p.totLen {
		pg := p.cursor
		pi, ok, err := d.pageHeader(pg)
		if err != nil || !ok {
			return rec, false, false, err
		}
		if pi.info&xlpFirstIsOverwriteContRecord != 0 {
			// The record we were reading was abandoned by a crash and this
			// page restarts WAL with an OVERWRITE_CONTRECORD record: read
			// from here, as PostgreSQL does.
			d.pend = pending{}
			d.recPtr = pg
			return rec, true, false, nil
		}
		got := uint32(len(d.assembled))
		if pi.info&xlpFirstIsContRecord == 0 {
			return rec, false, false, d.end(pg, EndBadContinuation, "there is no contrecord flag at %s", pg)
		}
		if pi.remLen == 0 || p.totLen != pi.remLen+got {
			return rec, false, false, d.end(pg, EndBadContinuation, "invalid contrecord length %d (expected %d) at %s", pi.remLen, int64(p.totLen)-int64(got), pg)
		}
		n := min(PageSize-pi.hdrSize, pi.remLen)
		part, ok := d.bytesAt(pg+lsn.LSN(pi.hdrSize), n)
		if !ok {
			return rec, false, false, nil
		}
		d.assembled = append(d.assembled, part...)
		p.lastPage, p.lastInfo = pg, pi
		p.cursor = pg + PageSize
		if !p.gotHeader && len(d.assembled) >= RecordHeaderSize {
			if err := d.checkHeader(p.recPtr, d.assembled[:RecordHeaderSize]); err != nil {
				return rec, false, false, err
			}
			p.gotHeader = true
		}
		d.consumeTo(pg + lsn.LSN(pi.hdrSize+n))
	}
	end := p.lastPage + lsn.LSN(p.lastInfo.hdrSize) + lsn.LSN(alignUp(uint64(p.lastInfo.remLen)))
	rp := p.recPtr
	d.pend = pending{}
	return d.finish(rp, end, d.assembled)
}

// finish checks the CRC of a whole record and advances past it.
func (d *StreamDecoder) finish(rp, end lsn.LSN, raw []byte) (Record, bool, bool, error) {
	want := binary.LittleEndian.Uint32(raw[20:])
	c := crc32.Update(0, castagnoli, raw[RecordHeaderSize:])
	c = crc32.Update(c, castagnoli, raw[:20])
	if c != want {
		return Record{}, false, false, d.end(rp, EndBadCRC, "incorrect resource manager data checksum in record at %s", rp)
	}
	if raw[17] == byte(rmgr.XLOG) && raw[16]&0xF0 == xlogSwitchInfo {
		// The rest of the segment is unused; PostgreSQL zeroes even its page
		// headers.
		end = (end + lsn.LSN(d.opts.segSize) - 1).SegmentStart(d.opts.segSize)
	}
	d.prevRecord, d.prevKnown = rp, true
	d.recPtr = end
	// Raw may alias buf; consumeTo only moves offsets, it never moves bytes.
	d.consumeTo(end)
	return Record{LSN: rp, EndLSN: end, Raw: raw}, true, true, nil
}
