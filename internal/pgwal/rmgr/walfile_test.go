package rmgr

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/stratadb/strata/internal/lsn"
)

// This file is a deliberately tiny, test-only WAL extractor: it turns the
// segment files of a pg_wal directory into (LSN, rmid, info, xid, main data)
// tuples so the decoder can be checked against real PostgreSQL 15 WAL without
// importing internal/pgwal (which imports this package). It trusts the input
// it is given (a cleanly written pg_wal) and stops at the first record whose
// CRC does not match.

type walRecord struct {
	LSN      lsn.LSN
	Rmid     ID
	Info     uint8
	Xid      uint32
	MainData []byte
}

var segmentName = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$`)

const walSegSize = 16 << 20

// readWALDir returns every record of the contiguous run of timeline-1
// segments that starts with the lowest-numbered segment in dir.
func readWALDir(dir string) ([]walRecord, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, e := range entries {
		m := segmentName.FindStringSubmatch(e.Name())
		if m == nil || m[1] != "00000001" {
			continue
		}
		hi, _ := strconv.ParseUint(m[2], 16, 32)
		lo, _ := strconv.ParseUint(m[3], 16, 32)
		segs = append(segs, hi*0x100+lo)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	if len(segs) == 0 {
		return nil, fmt.Errorf("no WAL segments in %s", dir)
	}
	// Strip page headers: records are contiguous in the remaining bytes, and
	// since both header sizes are multiples of 8 MAXALIGN is preserved.
	var payload []byte
	var pageLSN []lsn.LSN // LSN of the first payload byte of each page
	var pageOff []int     // offset in payload of the first payload byte of each page
	first := segs[0]
	skip := 0 // bytes of a record continued from before the first segment
	for i, s := range segs {
		if s != first+uint64(i) {
			break
		}
		name := fmt.Sprintf("00000001%08X%08X", s/0x100, s%0x100)
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if len(b) != walSegSize {
			break
		}
		if i == 0 && binary.LittleEndian.Uint16(b[2:])&0x0001 != 0 { // XLP_FIRST_IS_CONTRECORD
			skip = int(binary.LittleEndian.Uint32(b[16:])+7) &^ 7
		}
		for p := 0; p < walSegSize; p += 8192 {
			hdr := 24
			if p == 0 {
				hdr = 40
			}
			pageLSN = append(pageLSN, lsn.LSN(s*walSegSize+uint64(p+hdr)))
			pageOff = append(pageOff, len(payload))
			payload = append(payload, b[p+hdr:p+8192]...)
		}
	}
	pageOf := func(off int) int { return sort.SearchInts(pageOff, off+1) - 1 }
	payloadLSN := func(off int) lsn.LSN {
		page := pageOf(off)
		return pageLSN[page] + lsn.LSN(off-pageOff[page])
	}
	const pagesPerSeg = walSegSize / 8192
	tab := crc32.MakeTable(crc32.Castagnoli)
	var out []walRecord
	off := skip
	for off+24 <= len(payload) {
		totLen := int(binary.LittleEndian.Uint32(payload[off:]))
		if totLen < 24 || off+totLen > len(payload) {
			break
		}
		rec := payload[off : off+totLen]
		crc := crc32.Checksum(rec[24:], tab)
		crc = crc32.Update(crc, tab, rec[:20])
		if crc != binary.LittleEndian.Uint32(rec[20:]) {
			break
		}
		r := walRecord{LSN: payloadLSN(off), Xid: binary.LittleEndian.Uint32(rec[4:]), Info: rec[16], Rmid: ID(rec[17])}
		main, err := mainDataOf(rec)
		if err != nil {
			return nil, fmt.Errorf("record at %s: %w (% x)", r.LSN, err, rec[:min(len(rec), 96)])
		}
		r.MainData = main
		out = append(out, r)
		off += (totLen + 7) &^ 7
		if r.Rmid == XLOG && r.Info&RmgrInfoMask == InfoSwitch {
			// The rest of the segment is unused.
			next := (pageOf(off-1)/pagesPerSeg + 1) * pagesPerSeg
			if next >= len(pageOff) {
				break
			}
			off = pageOff[next]
		}
	}
	return out, nil
}

// mainDataOf walks a record's block headers to find the main data length;
// the main data is the record's last bytes.
func mainDataOf(rec []byte) ([]byte, error) {
	p := 24
	mainLen := 0
	payload := 0 // image and block data bytes declared so far
	for p < len(rec) && len(rec)-p != payload {
		id := rec[p]
		switch {
		case id == 255:
			if p+2 > len(rec) {
				return nil, fmt.Errorf("short main data header")
			}
			mainLen = int(rec[p+1])
			p = len(rec)
		case id == 254:
			if p+5 > len(rec) {
				return nil, fmt.Errorf("short long main data header")
			}
			mainLen = int(binary.LittleEndian.Uint32(rec[p+1:]))
			p = len(rec)
		case id == 253:
			p += 3
		case id == 252:
			p += 5
		case id <= 32:
			if p+4 > len(rec) {
				return nil, fmt.Errorf("short block header")
			}
			flags := rec[p+1]
			payload += int(binary.LittleEndian.Uint16(rec[p+2:]))
			p += 4
			if flags&0x10 != 0 { // HAS_IMAGE
				if p+5 > len(rec) {
					return nil, fmt.Errorf("short image header")
				}
				bimgInfo := rec[p+4]
				payload += int(binary.LittleEndian.Uint16(rec[p:]))
				p += 5
				if bimgInfo&0x01 != 0 && bimgInfo&(0x04|0x08|0x10) != 0 {
					p += 2
				}
			}
			if flags&0x80 == 0 { // !SAME_REL
				p += 12
			}
			p += 4
		default:
			return nil, fmt.Errorf("bad block id %d", id)
		}
	}
	if mainLen > len(rec)-24 {
		return nil, fmt.Errorf("main data length %d exceeds record", mainLen)
	}
	return rec[len(rec)-mainLen:], nil
}
