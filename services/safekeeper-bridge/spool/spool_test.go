package spool

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
)

const testStart = lsn.LSN(0x1_0000_0000)

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// appendAll appends data in random chunk sizes from start, syncing now and then.
func appendAll(t *testing.T, s *Spool, r *rand.Rand, start lsn.LSN, data []byte) {
	t.Helper()
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1+r.IntN(3000))
		require.NoError(t, s.Append(start+lsn.LSN(off), data[off:off+n]))
		off += n
		if r.IntN(4) == 0 {
			_, err := s.Sync()
			require.NoError(t, err)
		}
	}
	_, err := s.Sync()
	require.NoError(t, err)
}

// readAll reads [from, to) from s.
func readAll(t *testing.T, s *Spool, from, to lsn.LSN) []byte {
	t.Helper()
	rd, err := s.NewReader(from)
	require.NoError(t, err)
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []byte
	for rd.Pos() < to {
		c, err := rd.Next(ctx)
		require.NoError(t, err)
		require.Equal(t, from+lsn.LSN(len(out)), c.LSN, "chunks must be contiguous")
		out = append(out, c.Data...)
	}
	return out
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+fileSuffix))
	require.NoError(t, err)
	sort.Strings(m)
	return m
}

func TestAppendReadReopen(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 8 << 10})
	require.NoError(t, err)
	require.False(t, s.FlushLSN().IsValid())
	data := randomBytes(r, 100_000)
	appendAll(t, s, r, testStart, data)
	end := testStart + lsn.LSN(len(data))
	require.Equal(t, end, s.FlushLSN())
	require.Greater(t, len(segmentFiles(t, dir)), 5)
	for _, from := range []lsn.LSN{testStart, testStart + 1, testStart + 8191, testStart + 50_000, end - 1} {
		require.Equal(t, data[from-testStart:], readAll(t, s, from, end), "from %s", from)
	}
	require.NoError(t, s.Close())

	s, err = Open(dir, Options{SegmentBytes: 8 << 10})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, end, s.FlushLSN())
	require.Equal(t, testStart, s.StartLSN())
	require.Equal(t, data, readAll(t, s, testStart, end))
	more := randomBytes(r, 20_000)
	appendAll(t, s, r, end, more)
	require.Equal(t, append(data, more...), readAll(t, s, testStart, end+lsn.LSN(len(more))))
}

func TestContiguity(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Append(testStart, []byte("abcd")))
	tests := []struct {
		name string
		at   lsn.LSN
	}{
		{"gap", testStart + 10},
		{"overlap", testStart + 2},
		{"before", testStart - 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Append(tc.at, []byte("x"))
			require.ErrorIs(t, err, ErrNotContiguous)
			require.Contains(t, err.Error(), tc.at.String())
			require.Contains(t, err.Error(), (testStart + 4).String())
		})
	}
	require.ErrorIs(t, s.Append(0, []byte("x")), ErrNotContiguous)
	require.NoError(t, s.Append(testStart+4, []byte("e")))
}

// TestCrashPoints simulates a crash at random moments by truncating the
// newest segment at a random length (what an fsync-less tail can look like)
// and checks that reopening keeps exactly a frame-aligned prefix.
func TestCrashPoints(t *testing.T) {
	for seed := range uint64(40) {
		t.Run("", func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			dir := t.TempDir()
			s, err := Open(dir, Options{SegmentBytes: 16 << 10})
			require.NoError(t, err)
			data := randomBytes(r, 10_000+r.IntN(60_000))
			appendAll(t, s, r, testStart, data)
			require.NoError(t, s.Close())

			files := segmentFiles(t, dir)
			last := files[len(files)-1]
			st, err := os.Stat(last)
			require.NoError(t, err)
			cut := int64(headerSize) + r.Int64N(st.Size()-headerSize+1)
			switch seed % 3 {
			case 0:
				require.NoError(t, os.Truncate(last, cut))
			case 1: // garbage after a cut: a torn write
				require.NoError(t, os.Truncate(last, cut))
				f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
				require.NoError(t, err)
				_, err = f.Write(randomBytes(r, 1+r.IntN(500)))
				require.NoError(t, err)
				require.NoError(t, f.Close())
			case 2: // zeros after a cut: a file extended but never written
				require.NoError(t, os.Truncate(last, cut))
				require.NoError(t, os.Truncate(last, cut+int64(r.IntN(9000))))
			}

			s, err = Open(dir, Options{SegmentBytes: 16 << 10})
			require.NoError(t, err)
			defer s.Close()
			end := s.FlushLSN()
			require.GreaterOrEqual(t, end, testStart)
			require.LessOrEqual(t, end, testStart+lsn.LSN(len(data)))
			got := readAll(t, s, testStart, end)
			require.Equal(t, data[:len(got)], got)
			// The spool continues from its durable end.
			rest := data[end-testStart:]
			appendAll(t, s, r, end, rest)
			require.Equal(t, data, readAll(t, s, testStart, testStart+lsn.LSN(len(data))))
		})
	}
}

func TestCorruptClosedSegment(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 8 << 10})
	require.NoError(t, err)
	appendAll(t, s, r, testStart, randomBytes(r, 50_000))
	require.NoError(t, s.Close())
	files := segmentFiles(t, dir)
	require.NoError(t, os.Truncate(files[1], headerSize+100))
	_, err = Open(dir, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), files[1])
}

func TestReaderDetectsBitFlip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 8 << 10})
	require.NoError(t, err)
	data := randomBytes(r, 30_000)
	appendAll(t, s, r, testStart, data)
	require.NoError(t, s.Close())
	files := segmentFiles(t, dir)
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0xff}, headerSize+frameHeaderSize+1)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	s, err = Open(dir, Options{SegmentBytes: 8 << 10})
	require.NoError(t, err) // closed segments are checked by readers
	defer s.Close()
	rd, err := s.NewReader(testStart)
	require.NoError(t, err)
	defer rd.Close()
	_, err = rd.Next(context.Background())
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestTrimBelow(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 8 << 10})
	require.NoError(t, err)
	defer s.Close()
	data := randomBytes(r, 60_000)
	appendAll(t, s, r, testStart, data)
	end := s.FlushLSN()
	starts := []lsn.LSN{}
	for _, seg := range s.segments {
		starts = append(starts, seg.start)
	}
	require.Greater(t, len(starts), 3)

	// Below the end of the first segment: nothing goes.
	n, err := s.TrimBelow(starts[1] - 1)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, testStart, s.StartLSN())

	n, err = s.TrimBelow(starts[2] + 5)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, starts[2], s.StartLSN())
	require.Len(t, segmentFiles(t, dir), len(starts)-2)
	_, err = s.NewReader(starts[2] - 1)
	require.ErrorIs(t, err, ErrTrimmed)
	require.Contains(t, err.Error(), starts[2].String())
	require.Equal(t, data[starts[2]+5-testStart:], readAll(t, s, starts[2]+5, end))

	// Trimming everything keeps the newest segment.
	_, err = s.TrimBelow(end + 1000)
	require.NoError(t, err)
	require.Len(t, segmentFiles(t, dir), 1)
	require.Equal(t, end, s.FlushLSN())
	require.NoError(t, s.Append(end, []byte("more")))
	_, err = s.Sync()
	require.NoError(t, err)

	// Reopen after trimming.
	require.NoError(t, s.Close())
	s2, err := Open(dir, Options{SegmentBytes: 8 << 10})
	require.NoError(t, err)
	defer s2.Close()
	require.Equal(t, end+4, s2.FlushLSN())
}

func TestReaderFollowsWriter(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	s, err := Open(t.TempDir(), Options{SegmentBytes: 4 << 10})
	require.NoError(t, err)
	defer s.Close()
	data := randomBytes(r, 40_000)
	got := make(chan []byte, 1)
	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		rd, err := s.NewReader(testStart)
		if err != nil {
			errc <- err
			return
		}
		defer rd.Close()
		var out []byte
		for len(out) < len(data) {
			c, err := rd.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			out = append(out, c.Data...)
		}
		got <- out
	}()
	// Nothing durable yet: the reader waits.
	appendAll(t, s, r, testStart, data)
	select {
	case out := <-got:
		require.True(t, bytes.Equal(data, out))
	case err := <-errc:
		t.Fatal(err)
	}

	// Wait respects cancellation.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	_, err = s.Wait(cctx, s.FlushLSN())
	require.ErrorIs(t, err, context.Canceled)
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	require.NoError(t, s.SetIdentity(42, 1))
	require.NoError(t, s.Append(testStart, []byte("abc")))
	_, err = s.Sync()
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	sys, tli := s.Identity()
	require.Equal(t, uint64(42), sys)
	require.Equal(t, uint32(1), tli)
	require.ErrorIs(t, s.SetIdentity(43, 1), ErrIdentity)
	require.ErrorIs(t, s.SetIdentity(42, 0), ErrIdentity)
	require.NoError(t, s.SetIdentity(42, 2)) // promotion: new segment
	require.Len(t, segmentFiles(t, dir), 2)
}

// TestReaderPastTrimmedSegment: a reader that returned the last frame of the
// then-newest segment moves on to the next one even after that segment was
// trimmed from the list under it (the pageserver's disk_consistent_lsn
// reached its end before the reader's next call). It used to take the
// missing next segment for the end of the spool and read past the end of
// the trimmed file: "corrupt segment ... EOF".
func TestReaderPastTrimmedSegment(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	s, err := Open(t.TempDir(), Options{SegmentBytes: 8 << 10})
	require.NoError(t, err)
	defer s.Close()
	first := randomBytes(r, 9000) // fills the first segment past SegmentBytes
	require.NoError(t, s.Append(testStart, first))
	_, err = s.Sync()
	require.NoError(t, err)
	require.Len(t, s.segments, 1)

	rd, err := s.NewReader(testStart)
	require.NoError(t, err)
	defer rd.Close()
	ctx := context.Background()
	var got []byte
	for len(got) < len(first) {
		c, err := rd.Next(ctx)
		require.NoError(t, err)
		got = append(got, c.Data...)
	}
	require.Equal(t, first, got)

	// The writer rolls to a second segment; the first is trimmed while the
	// reader still has it open.
	second := randomBytes(r, 100)
	end := testStart + lsn.LSN(len(first))
	require.NoError(t, s.Append(end, second))
	_, err = s.Sync()
	require.NoError(t, err)
	require.Len(t, s.segments, 2)
	n, err := s.TrimBelow(end)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	c, err := rd.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, end, c.LSN)
	require.Equal(t, second, c.Data)
}
