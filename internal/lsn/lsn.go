package lsn

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
)

// LSN is a PostgreSQL WAL position (XLogRecPtr).
type LSN uint64

const (
	// Invalid is InvalidXLogRecPtr.
	Invalid LSN = 0
	// Max is the largest LSN. Neon's pagestream uses it to mean "latest".
	Max LSN = math.MaxUint64

	// WALPageSize is XLOG_BLCKSZ.
	WALPageSize = 8192
	// DefaultSegmentSize is the default (and Strata's only supported) WAL segment size, 16 MiB.
	DefaultSegmentSize = 16 << 20
	// ShortPageHeaderSize is SizeOfXLogShortPHD.
	ShortPageHeaderSize = 24
	// LongPageHeaderSize is SizeOfXLogLongPHD, used on the first page of every segment.
	LongPageHeaderSize = 40
	// MaxAlign is MAXIMUM_ALIGNOF on the platforms PostgreSQL 15 supports here.
	MaxAlign = 8
)

// Parse parses the "%X/%X" text form. As in Neon, a plain hexadecimal number
// without a slash is accepted too.
func Parse(s string) (LSN, error) {
	hi, lo, found := strings.Cut(s, "/")
	if !found {
		v, err := strconv.ParseUint(s, 16, 64)
		if err != nil || s == "" {
			return Invalid, fmt.Errorf("%w: %q (want X/X hexadecimal, e.g. 0/16B3748)", ErrSyntax, s)
		}
		return LSN(v), nil
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil || hi == "" || lo == "" {
		return Invalid, fmt.Errorf("%w: %q (want X/X hexadecimal, e.g. 0/16B3748)", ErrSyntax, s)
	}
	return LSN(h<<32 | l), nil
}

// MustParse is Parse for constants in tests; it panics on bad input.
func MustParse(s string) LSN {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String formats the LSN as PostgreSQL does: "%X/%X".
func (l LSN) String() string {
	var buf [17]byte
	b := strconv.AppendUint(buf[:0], uint64(l)>>32, 16)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(l)&0xFFFFFFFF, 16)
	return strings.ToUpper(string(b))
}

// MarshalText implements encoding.TextMarshaler (the "%X/%X" form).
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// IsValid reports whether l is not Invalid.
func (l LSN) IsValid() bool { return l != Invalid }

// SegmentNumber is XLByteToSeg: the number of the segment holding l.
func (l LSN) SegmentNumber(segSize uint64) uint64 { return uint64(l) / segSize }

// SegmentOffset is XLogSegmentOffset: the byte offset of l within its segment.
func (l LSN) SegmentOffset(segSize uint64) uint64 { return uint64(l) % segSize }

// PageOffset is the byte offset of l within its WAL page.
func (l LSN) PageOffset() uint64 { return uint64(l) % WALPageSize }

// PageStart is the LSN of the first byte of the WAL page holding l.
func (l LSN) PageStart() LSN { return l - LSN(l.PageOffset()) }

// SegmentStart is the LSN of the first byte of the segment holding l.
func (l LSN) SegmentStart(segSize uint64) LSN { return l - LSN(l.SegmentOffset(segSize)) }

// IsPageBoundary reports whether l is the first byte of a WAL page.
func (l LSN) IsPageBoundary() bool { return l.PageOffset() == 0 }

// Align rounds l up to MAXALIGN (8 bytes), where every WAL record starts.
func (l LSN) Align() LSN { return (l + MaxAlign - 1) &^ (MaxAlign - 1) }

// SkipPageHeader returns the position of the first record byte at or after l:
// if l sits on a page boundary it moves past the page header (long at a
// segment start, short otherwise); otherwise l is returned unchanged. This is
// Neon's normalize_lsn applied to an already aligned LSN.
func (l LSN) SkipPageHeader(segSize uint64) LSN {
	switch {
	case l.SegmentOffset(segSize) == 0:
		return l + LongPageHeaderSize
	case l.IsPageBoundary():
		return l + ShortPageHeaderSize
	default:
		return l
	}
}

// Add returns l+n.
func (l LSN) Add(n uint64) LSN { return l + LSN(n) }

// Sub returns l-o as a byte distance; it is 0 when o > l.
func (l LSN) Sub(o LSN) uint64 {
	if o > l {
		return 0
	}
	return uint64(l - o)
}

// SegmentsPerXLogID is the number of segments per 4 GiB "xlogid" for segSize.
func SegmentsPerXLogID(segSize uint64) uint64 { return 0x100000000 / segSize }

// WALFileName is XLogFileName: "%08X%08X%08X" of the timeline, the high and
// the low part of the segment number.
func WALFileName(tli uint32, segno uint64, segSize uint64) string {
	per := SegmentsPerXLogID(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, segno/per, segno%per)
}

// ParseWALFileName is XLogFromFileName: it returns the timeline and segment
// number named by a 24-hex-digit WAL file name (a ".partial" suffix is allowed).
func ParseWALFileName(name string, segSize uint64) (tli uint32, segno uint64, err error) {
	base := strings.TrimSuffix(name, ".partial")
	if len(base) != 24 {
		return 0, 0, fmt.Errorf("%w: %q (want 24 hexadecimal digits)", ErrWALFileName, name)
	}
	t, err1 := strconv.ParseUint(base[0:8], 16, 32)
	hi, err2 := strconv.ParseUint(base[8:16], 16, 32)
	lo, err3 := strconv.ParseUint(base[16:24], 16, 32)
	per := SegmentsPerXLogID(segSize)
	if err1 != nil || err2 != nil || err3 != nil || lo >= per {
		return 0, 0, fmt.Errorf("%w: %q", ErrWALFileName, name)
	}
	return uint32(t), hi*per + lo, nil
}

// AtomicLSN is an LSN that can be read and written concurrently.
// The zero value is Invalid and ready to use.
type AtomicLSN struct {
	v atomic.Uint64
}

// NewAtomic returns an AtomicLSN holding l.
func NewAtomic(l LSN) *AtomicLSN {
	a := &AtomicLSN{}
	a.v.Store(uint64(l))
	return a
}

// Load returns the current value.
func (a *AtomicLSN) Load() LSN { return LSN(a.v.Load()) }

// Store sets the value unconditionally.
func (a *AtomicLSN) Store(l LSN) { a.v.Store(uint64(l)) }

// CompareAndSwap sets the value to new if it equals old.
func (a *AtomicLSN) CompareAndSwap(old, new LSN) bool {
	return a.v.CompareAndSwap(uint64(old), uint64(new))
}

// FetchMax raises the value to l if l is greater, and returns the value
// before the call. It never moves the value backwards.
func (a *AtomicLSN) FetchMax(l LSN) LSN {
	for {
		cur := a.v.Load()
		if uint64(l) <= cur {
			return LSN(cur)
		}
		if a.v.CompareAndSwap(cur, uint64(l)) {
			return LSN(cur)
		}
	}
}
