package pgwal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

const testBase = lsn.LSN(3 * testSegSize) // a segment start

// buildSample writes records of many sizes: small ones, ones whose header is
// split across pages, ones spanning many pages and a segment boundary, and an
// XLOG_SWITCH.
func buildSample(t testing.TB) *walBuilder {
	t.Helper()
	w := newWALBuilder(testBase)
	rng := rand.New(rand.NewPCG(1, 2))
	payload := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	for i := range 400 {
		n := rng.IntN(300)
		if i%37 == 0 {
			n = 20000 + rng.IntN(20000) // spans pages
		}
		w.add(10, 0, payload(n))
	}
	// Put a record header across a page boundary: fill until 8 bytes remain.
	for PageSize-w.pos.PageOffset() != 8 {
		left := PageSize - w.pos.PageOffset()
		switch {
		case left > 64:
			w.add(10, 0, payload(int(min(left-40, 200))))
		default:
			w.add(10, 0, nil) // 24 bytes
		}
		if w.pos.PageOffset() == 0 {
			w.add(10, 0, payload(5))
		}
	}
	w.add(21, 0, payload(3000))
	// Cross the segment boundary mid-record.
	for (w.pos + 30000).SegmentNumber(testSegSize) == w.pos.SegmentNumber(testSegSize) {
		w.add(10, 0, payload(8000))
	}
	w.add(10, 0, payload(60000))
	w.add(0, xlogSwitchInfo, nil)
	w.add(1, 0, payload(10))
	w.add(1, 0, payload(10))
	return w
}

func collect(t *testing.T, d *StreamDecoder, data []byte, chunk func() int) ([]Record, error) {
	t.Helper()
	var recs []Record
	pos := 0
	for {
		rec, err := d.Next()
		if errors.Is(err, ErrNeedMore) {
			if pos == len(data) {
				return recs, err
			}
			n := min(chunk(), len(data)-pos)
			d.Feed(data[pos : pos+n])
			pos += n
			continue
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec.Clone())
	}
}

func TestStreamDecoderSample(t *testing.T) {
	w := buildSample(t)
	data := w.bytes()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		name  string
		chunk func() int
	}{
		{"whole", func() int { return len(data) }},
		{"bytes", func() int { return 1 }},
		{"random", func() int { return 1 + rng.IntN(20000) }},
		{"pages", func() int { return PageSize }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewStreamDecoder(testBase, WithSegmentSize(testSegSize))
			require.NoError(t, err)
			recs, err := collect(t, d, data, tc.chunk)
			var end *EndOfWALError
			require.ErrorAs(t, err, &end)
			require.Equal(t, EndZeroed, end.Reason)
			require.Equal(t, w.pos, end.LSN)
			require.Len(t, recs, len(w.starts))
			for i, rec := range recs {
				require.Equal(t, w.starts[i], rec.LSN, "record %d", i)
				require.Equal(t, w.ends[i], rec.EndLSN, "record %d", i)
				require.Equal(t, w.raws[i], rec.Raw, "record %d", i)
			}
		})
	}
}

func TestStreamDecoderStarts(t *testing.T) {
	w := buildSample(t)
	data := w.bytes()
	for _, i := range []int{1, 5, 37, 38, 200, len(w.starts) - 3, len(w.starts) - 2} {
		start := w.starts[i]
		d, err := NewStreamDecoder(start, WithSegmentSize(testSegSize), StartsAtRecord(w.starts[i-1]))
		require.NoError(t, err)
		recs, err := collect(t, d, data[start-testBase:], func() int { return 4096 })
		require.ErrorIs(t, err, ErrEndOfWAL)
		require.Len(t, recs, len(w.starts)-i, "from record %d", i)
		require.Equal(t, w.starts[i:], lsns(recs))

		// A wrong prev is caught on the first record.
		d, err = NewStreamDecoder(start, WithSegmentSize(testSegSize), StartsAtRecord(w.starts[i-1]+8))
		require.NoError(t, err)
		_, err = collect(t, d, data[start-testBase:], func() int { return 4096 })
		var end *EndOfWALError
		require.ErrorAs(t, err, &end)
		require.Equal(t, EndBadPrevLink, end.Reason)
	}
	// Unknown start in the middle of a multi-page record: the first record
	// returned is the first that starts after the continuation.
	long := 37
	require.Greater(t, w.ends[long]-w.starts[long], lsn.LSN(3*PageSize))
	start := w.starts[long] + PageSize + 100
	d, err := NewStreamDecoder(start, WithSegmentSize(testSegSize))
	require.NoError(t, err)
	recs, err := collect(t, d, data[start-testBase:], func() int { return 777 })
	require.ErrorIs(t, err, ErrEndOfWAL)
	require.Equal(t, w.starts[long+1:], lsns(recs))
}

func lsns(recs []Record) []lsn.LSN {
	out := make([]lsn.LSN, len(recs))
	for i, r := range recs {
		out[i] = r.LSN
	}
	return out
}

func TestStreamDecoderEnds(t *testing.T) {
	w := buildSample(t)
	clean := w.bytes()
	long := 37 // spans pages
	contPage := w.starts[long].PageStart() + PageSize
	for _, tc := range []struct {
		name   string
		mutate func(b []byte)
		reason EndReason
		at     lsn.LSN
		nrecs  int
	}{
		{"crc", func(b []byte) { b[w.starts[10]-testBase+30] ^= 1 }, EndBadCRC, w.starts[10], 10},
		{"prev", func(b []byte) { binary.LittleEndian.PutUint64(b[w.starts[10]-testBase+8:], uint64(w.starts[8])) }, EndBadPrevLink, w.starts[10], 10},
		{"short-len", func(b []byte) { binary.LittleEndian.PutUint32(b[w.starts[10]-testBase:], 10) }, EndBadRecordHeader, w.starts[10], 10},
		{"rmid", func(b []byte) { b[w.starts[10]-testBase+17] = 77 }, EndBadRecordHeader, w.starts[10], 10},
		{"no-contrecord", func(b []byte) { b[contPage-testBase+2] &^= xlpFirstIsContRecord }, EndBadContinuation, contPage, long},
		{"rem-len", func(b []byte) { b[contPage-testBase+16]++ }, EndBadContinuation, contPage, long},
		{"pageaddr", func(b []byte) { b[contPage-testBase+9]++ }, EndBadPageAddr, contPage, long},
		{"magic", func(b []byte) { b[contPage-testBase]++ }, EndBadPageHeader, contPage, long},
		{"zeroed-page", func(b []byte) { clear(b[contPage-testBase : contPage-testBase+PageSize]) }, EndZeroed, contPage, long},
		{"flags", func(b []byte) { b[contPage-testBase+3] = 0x80 }, EndBadPageHeader, contPage, long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(clean)
			tc.mutate(b)
			d, err := NewStreamDecoder(testBase, WithSegmentSize(testSegSize))
			require.NoError(t, err)
			recs, err := collect(t, d, b, func() int { return 5000 })
			var end *EndOfWALError
			require.ErrorAs(t, err, &end)
			require.Equal(t, tc.reason, end.Reason, "%v", err)
			require.Equal(t, tc.at, end.LSN)
			require.Len(t, recs, tc.nrecs)
			if tc.nrecs > 0 {
				require.Equal(t, w.starts[tc.nrecs-1], end.LastRecord)
			}
			_, again := d.Next()
			require.Equal(t, err, again, "end is sticky")
		})
	}
	t.Run("wrong-system", func(t *testing.T) {
		d, err := NewStreamDecoder(testBase, WithSegmentSize(testSegSize), WithSystemID(42))
		require.NoError(t, err)
		_, err = collect(t, d, clean, func() int { return 5000 })
		require.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("wrong-segment-size", func(t *testing.T) {
		d, err := NewStreamDecoder(testBase, WithSegmentSize(2*testSegSize))
		require.NoError(t, err)
		_, err = collect(t, d, clean, func() int { return 5000 })
		require.ErrorIs(t, err, ErrCorrupt)
	})
}

func TestFeedAt(t *testing.T) {
	d, err := NewStreamDecoder(testBase)
	require.NoError(t, err)
	require.NoError(t, d.FeedAt(testBase, make([]byte, 10)))
	require.ErrorIs(t, d.FeedAt(testBase+11, make([]byte, 10)), ErrNotContiguous)
	require.Equal(t, testBase+10, d.FedEnd())
	_, err = NewStreamDecoder(testBase, WithSegmentSize(3<<20))
	require.ErrorIs(t, err, ErrBadOption)
}

func TestReaderFiles(t *testing.T) {
	w := buildSample(t)
	data := w.bytes()
	dir := t.TempDir()
	for off := 0; off < len(data); off += testSegSize {
		seg := data[off:min(off+testSegSize, len(data))]
		full := make([]byte, testSegSize)
		copy(full, seg)
		segno := (testBase + lsn.LSN(off)).SegmentNumber(testSegSize)
		require.NoError(t, os.WriteFile(filepath.Join(dir, lsn.WALFileName(1, segno, testSegSize)), full, 0o600))
	}
	t.Run("all", func(t *testing.T) {
		r, err := NewReader(dir, 1, testBase, lsn.Invalid, WithSegmentSize(testSegSize))
		require.NoError(t, err)
		defer func() { require.NoError(t, r.Close()) }()
		var got []lsn.LSN
		for {
			rec, err := r.Next()
			if err != nil {
				require.ErrorIs(t, err, ErrEndOfWAL)
				break
			}
			got = append(got, rec.LSN)
		}
		require.Equal(t, w.starts, got)
	})
	t.Run("mid-start-and-end", func(t *testing.T) {
		start, end := w.starts[50]+1, w.ends[300]
		r, err := NewReader(dir, 1, start, end, WithSegmentSize(testSegSize))
		require.NoError(t, err)
		defer func() { require.NoError(t, r.Close()) }()
		var got []lsn.LSN
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			got = append(got, rec.LSN)
		}
		require.Equal(t, w.starts[51:301], got)
	})
	t.Run("missing-segment", func(t *testing.T) {
		r, err := NewReader(dir, 2, testBase, lsn.Invalid, WithSegmentSize(testSegSize))
		require.NoError(t, err)
		_, err = r.Next()
		var end *EndOfWALError
		require.ErrorAs(t, err, &end)
		require.Equal(t, EndMissingSegment, end.Reason)
	})
}
