package lsn

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    LSN
		wantErr bool
	}{
		{in: "0/0", want: 0},
		{in: "0/16B3748", want: 0x16B3748},
		{in: "0/16b3748", want: 0x16B3748},
		{in: "1/0", want: 1 << 32},
		{in: "16/B374D848", want: 0x16_B374D848},
		{in: "FFFFFFFF/FFFFFFFF", want: Max},
		{in: "00000001/00000002", want: 1<<32 | 2},
		// Plain hexadecimal, as Neon accepts.
		{in: "16B3748", want: 0x16B3748},
		{in: "0", want: 0},
		{in: "FFFFFFFFFFFFFFFF", want: Max},
		{in: "100000000", want: 1 << 32},
		// Bad input.
		{in: "", wantErr: true},
		{in: "/", wantErr: true},
		{in: "0/", wantErr: true},
		{in: "/0", wantErr: true},
		{in: "0/0/0", wantErr: true},
		{in: "G/0", wantErr: true},
		{in: "0/XYZ", wantErr: true},
		{in: " 0/1", wantErr: true},
		{in: "0/1 ", wantErr: true},
		{in: "-1/0", wantErr: true},
		{in: "+1/0", wantErr: true},
		{in: "0x10", wantErr: true},
		{in: "0x1/0", wantErr: true},
		{in: "1_0", wantErr: true},
		// Overflow.
		{in: "100000000/0", wantErr: true},
		{in: "0/100000000", wantErr: true},
		{in: "10000000000000000", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrSyntax)
				require.Contains(t, err.Error(), fmt.Sprintf("%q", tt.in))
				require.Equal(t, Invalid, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestMustParse(t *testing.T) {
	require.Equal(t, LSN(0x1_00000010), MustParse("1/10"))
	require.Panics(t, func() { MustParse("nope") })
}

func TestString(t *testing.T) {
	tests := []struct {
		in   LSN
		want string
	}{
		{0, "0/0"},
		{0x16B3748, "0/16B3748"},
		{1 << 32, "1/0"},
		{0xAB_CDEF0123, "AB/CDEF0123"},
		{Max, "FFFFFFFF/FFFFFFFF"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, tt.in.String())
			require.Equal(t, tt.want, fmt.Sprint(tt.in))
			back, err := Parse(tt.want)
			require.NoError(t, err)
			require.Equal(t, tt.in, back)
		})
	}
}

func TestText(t *testing.T) {
	type doc struct {
		At LSN `json:"at"`
	}
	b, err := json.Marshal(doc{At: 0x1_00000AB0})
	require.NoError(t, err)
	require.JSONEq(t, `{"at":"1/AB0"}`, string(b))

	var d doc
	require.NoError(t, json.Unmarshal([]byte(`{"at":"2/10"}`), &d))
	require.Equal(t, LSN(0x2_00000010), d.At)

	d.At = 7
	err = json.Unmarshal([]byte(`{"at":"2/zz"}`), &d)
	require.ErrorIs(t, err, ErrSyntax)
	require.Equal(t, LSN(7), d.At, "a failed unmarshal leaves the value alone")
}

func TestIsValid(t *testing.T) {
	require.False(t, Invalid.IsValid())
	require.True(t, LSN(1).IsValid())
	require.True(t, Max.IsValid())
}

func TestSegmentAndPageArithmetic(t *testing.T) {
	const seg = DefaultSegmentSize
	tests := []struct {
		name         string
		in           LSN
		segNo        uint64
		segOff       uint64
		pageOff      uint64
		pageStart    LSN
		segStart     LSN
		pageBoundary bool
	}{
		{name: "zero", in: 0, segNo: 0, segOff: 0, pageOff: 0, pageStart: 0, segStart: 0, pageBoundary: true},
		{name: "inside first page", in: 0x28, segNo: 0, segOff: 0x28, pageOff: 0x28, pageStart: 0, segStart: 0},
		{name: "second page", in: 0x2000, segNo: 0, segOff: 0x2000, pageOff: 0, pageStart: 0x2000, segStart: 0, pageBoundary: true},
		{name: "last byte of segment", in: seg - 1, segNo: 0, segOff: seg - 1, pageOff: WALPageSize - 1, pageStart: seg - WALPageSize, segStart: 0},
		{name: "second segment", in: seg, segNo: 1, segOff: 0, pageOff: 0, pageStart: seg, segStart: seg, pageBoundary: true},
		{name: "typical", in: MustParse("0/16B3748"), segNo: 1, segOff: 0x6B3748, pageOff: 0x1748, pageStart: 0x16B2000, segStart: 0x1000000},
		{name: "high", in: MustParse("1/2000010"), segNo: 0x102, segOff: 0x10, pageOff: 0x10, pageStart: MustParse("1/2000000"), segStart: MustParse("1/2000000")},
		{name: "max", in: Max, segNo: uint64(Max) / seg, segOff: seg - 1, pageOff: WALPageSize - 1, pageStart: Max - WALPageSize + 1, segStart: Max - seg + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.segNo, tt.in.SegmentNumber(seg), "SegmentNumber")
			require.Equal(t, tt.segOff, tt.in.SegmentOffset(seg), "SegmentOffset")
			require.Equal(t, tt.pageOff, tt.in.PageOffset(), "PageOffset")
			require.Equal(t, tt.pageStart, tt.in.PageStart(), "PageStart")
			require.Equal(t, tt.segStart, tt.in.SegmentStart(seg), "SegmentStart")
			require.Equal(t, tt.pageBoundary, tt.in.IsPageBoundary(), "IsPageBoundary")
		})
	}
}

func TestOtherSegmentSizes(t *testing.T) {
	const oneMiB = 1 << 20
	l := MustParse("0/345678")
	require.Equal(t, uint64(3), l.SegmentNumber(oneMiB))
	require.Equal(t, uint64(0x45678), l.SegmentOffset(oneMiB))
	require.Equal(t, LSN(0x300000), l.SegmentStart(oneMiB))
	require.Equal(t, uint64(4096), SegmentsPerXLogID(oneMiB))
	require.Equal(t, uint64(256), SegmentsPerXLogID(DefaultSegmentSize))
	require.Equal(t, uint64(4), SegmentsPerXLogID(1<<30))
}

func TestAlign(t *testing.T) {
	tests := []struct{ in, want LSN }{
		{0, 0}, {1, 8}, {7, 8}, {8, 8}, {9, 16}, {0x16B3741, 0x16B3748}, {Max - 7, Max - 7},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			require.Equal(t, tt.want, tt.in.Align())
		})
	}
}

func TestSkipPageHeader(t *testing.T) {
	const seg = DefaultSegmentSize
	tests := []struct {
		name string
		in   LSN
		want LSN
	}{
		{name: "segment start gets the long header", in: seg, want: seg + LongPageHeaderSize},
		{name: "first segment", in: 0, want: LongPageHeaderSize},
		{name: "page boundary gets the short header", in: seg + WALPageSize, want: seg + WALPageSize + ShortPageHeaderSize},
		{name: "mid page unchanged", in: seg + 0x30, want: seg + 0x30},
		{name: "just after a header unchanged", in: seg + WALPageSize + ShortPageHeaderSize, want: seg + WALPageSize + ShortPageHeaderSize},
		{name: "last page of segment", in: 2*seg - WALPageSize, want: 2*seg - WALPageSize + ShortPageHeaderSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.in.SkipPageHeader(seg))
		})
	}
}

func TestAddSub(t *testing.T) {
	require.Equal(t, LSN(0x1_00000010), MustParse("1/0").Add(0x10))
	require.Equal(t, uint64(0x10), MustParse("1/10").Sub(MustParse("1/0")))
	require.Equal(t, uint64(0), MustParse("1/0").Sub(MustParse("1/10")), "Sub saturates at 0")
	require.Equal(t, uint64(0), LSN(5).Sub(5))
	require.Equal(t, uint64(Max), Max.Sub(0))
}

func TestWALFileName(t *testing.T) {
	const seg = DefaultSegmentSize
	tests := []struct {
		tli   uint32
		segno uint64
		want  string
	}{
		{1, 0, "000000010000000000000000"},
		{1, 1, "000000010000000000000001"},
		{1, 0xFF, "0000000100000000000000FF"},
		{1, 0x100, "000000010000000100000000"},
		{2, 0x1A3, "0000000200000001000000A3"},
		{0xFFFFFFFF, 0xFFFFFFFF*256 + 0xFF, "FFFFFFFFFFFFFFFF000000FF"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, WALFileName(tt.tli, tt.segno, seg))
			tli, segno, err := ParseWALFileName(tt.want, seg)
			require.NoError(t, err)
			require.Equal(t, tt.tli, tli)
			require.Equal(t, tt.segno, segno)

			tli, segno, err = ParseWALFileName(tt.want+".partial", seg)
			require.NoError(t, err)
			require.Equal(t, tt.tli, tli)
			require.Equal(t, tt.segno, segno)
		})
	}
	// The segment holding an LSN, as pg_walfile_name computes it.
	l := MustParse("0/16B3748")
	require.Equal(t, "000000010000000000000001", WALFileName(1, l.SegmentNumber(seg), seg))
	l = MustParse("5/A0000028")
	require.Equal(t, "0000000100000005000000A0", WALFileName(1, l.SegmentNumber(seg), seg))
	// 1 MiB segments: 4096 per xlogid.
	require.Equal(t, "000000010000000100000001", WALFileName(1, 4097, 1<<20))
}

func TestParseWALFileNameErrors(t *testing.T) {
	const seg = DefaultSegmentSize
	for _, name := range []string{
		"",
		"00000001000000000000000",   // 23 digits
		"0000000100000000000000000", // 25 digits
		"00000001000000000000000G",
		"0000000100000000000000001.partial", // 25 digits before the suffix
		"000000010000000000000100",          // low part >= segments per xlogid
		"00000001.history",
		"000000010000000000000001.backup",
		"+00000010000000000000001",
		"00000001 000000000000001",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ParseWALFileName(name, seg)
			require.ErrorIs(t, err, ErrWALFileName)
		})
	}
}

func TestAtomicLSN(t *testing.T) {
	var zero AtomicLSN
	require.Equal(t, Invalid, zero.Load())

	a := NewAtomic(10)
	require.Equal(t, LSN(10), a.Load())
	a.Store(5)
	require.Equal(t, LSN(5), a.Load())
	require.False(t, a.CompareAndSwap(4, 6))
	require.Equal(t, LSN(5), a.Load())
	require.True(t, a.CompareAndSwap(5, 6))
	require.Equal(t, LSN(6), a.Load())

	require.Equal(t, LSN(6), a.FetchMax(3), "smaller: returns current")
	require.Equal(t, LSN(6), a.Load(), "never moves backwards")
	require.Equal(t, LSN(6), a.FetchMax(6))
	require.Equal(t, LSN(6), a.FetchMax(20))
	require.Equal(t, LSN(20), a.Load())
}

func TestAtomicLSNFetchMaxConcurrent(t *testing.T) {
	const (
		goroutines = 8
		perG       = 5000
	)
	a := NewAtomic(0)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			last := LSN(0)
			for i := range perG {
				v := LSN(i*goroutines + g)
				prev := a.FetchMax(v)
				// The value seen is never below what this goroutine
				// already raised it to.
				if prev < last {
					t.Errorf("FetchMax returned %s after %s was stored", prev, last)
					return
				}
				last = max(last, v)
			}
		})
	}
	wg.Wait()
	require.Equal(t, LSN((perG-1)*goroutines+goroutines-1), a.Load())
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0/0", "0/16B3748", "16B3748", "FFFFFFFF/FFFFFFFF", "1/", "/1", "100000000/0", "0x10", "ffffffffffffffff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			require.ErrorIs(t, err, ErrSyntax)
			return
		}
		text := l.String()
		back, err := Parse(text)
		require.NoError(t, err)
		require.Equal(t, l, back)
		require.Equal(t, text, back.String())
	})
}

func FuzzParseWALFileName(f *testing.F) {
	for _, s := range []string{"000000010000000000000001", "0000000100000001000000FF.partial", "00000001000000000000010", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tli, segno, err := ParseWALFileName(s, DefaultSegmentSize)
		if err != nil {
			require.ErrorIs(t, err, ErrWALFileName)
			return
		}
		name := WALFileName(tli, segno, DefaultSegmentSize)
		tli2, segno2, err := ParseWALFileName(name, DefaultSegmentSize)
		require.NoError(t, err)
		require.Equal(t, tli, tli2)
		require.Equal(t, segno, segno2)
	})
}
