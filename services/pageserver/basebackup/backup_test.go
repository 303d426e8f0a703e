package basebackup

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memSource is an in-memory Source. Page content is a function of the
// relation and block, so no page is stored.
type memSource struct {
	dbs      []Database
	rels     map[pgtypes.RelTag]uint32
	relmaps  map[[2]pgtypes.Oid][]byte
	slrus    map[keyspace.SlruKind]map[uint32][]byte
	twophase map[uint64][]byte
	control  []byte
	cp       rmgr.CheckPoint

	failPage  uint32 // Page of this block fails, when failAfter is set
	failAfter bool
	onPage    func(n int) // called before each Page
	pages     int
}

var errInjected = errors.New("injected failure")

func fillPage(dst []byte, rel pgtypes.RelTag, blk uint32) {
	for i := 0; i < len(dst); i += 8 {
		binary.LittleEndian.PutUint32(dst[i:], uint32(rel.RelNode)<<4|uint32(rel.ForkNum))
		binary.LittleEndian.PutUint32(dst[i+4:], blk)
	}
}

func (s *memSource) Databases(context.Context, lsn.LSN) ([]Database, error) { return s.dbs, nil }
func (s *memSource) Relations(context.Context, lsn.LSN) ([]pgtypes.RelTag, error) {
	var out []pgtypes.RelTag
	for r := range s.rels {
		out = append(out, r)
	}
	return out, nil
}
func (s *memSource) RelSize(_ context.Context, rel pgtypes.RelTag, _ lsn.LSN) (uint32, error) {
	n, ok := s.rels[rel]
	if !ok {
		return 0, fmt.Errorf("no relation %s", rel)
	}
	return n, nil
}
func (s *memSource) Block(_ context.Context, rel pgtypes.RelTag, blk uint32, _ lsn.LSN, dst []byte) error {
	s.pages++
	if s.onPage != nil {
		s.onPage(s.pages)
	}
	if s.failAfter && blk == s.failPage {
		return errInjected
	}
	fillPage(dst, rel, blk)
	return nil
}
func (s *memSource) RelMapFile(_ context.Context, spc, db pgtypes.Oid, _ lsn.LSN) ([]byte, error) {
	return s.relmaps[[2]pgtypes.Oid{spc, db}], nil
}
func (s *memSource) SlruSegments(_ context.Context, kind keyspace.SlruKind, _ lsn.LSN) ([]uint32, error) {
	var out []uint32
	for segno := range s.slrus[kind] {
		out = append(out, segno)
	}
	return out, nil
}
func (s *memSource) SlruSegment(_ context.Context, kind keyspace.SlruKind, segno uint32, _ lsn.LSN) ([]byte, error) {
	return s.slrus[kind][segno], nil
}
func (s *memSource) TwoPhaseFiles(context.Context, lsn.LSN) ([]uint64, error) {
	var out []uint64
	for xid := range s.twophase {
		out = append(out, xid)
	}
	return out, nil
}
func (s *memSource) TwoPhaseFile(_ context.Context, xid uint64, _ lsn.LSN) ([]byte, error) {
	return s.twophase[xid], nil
}
func (s *memSource) ControlFile(context.Context, lsn.LSN) ([]byte, error) { return s.control, nil }
func (s *memSource) Checkpoint(context.Context, lsn.LSN) (rmgr.CheckPoint, error) {
	return s.cp, nil
}

func twoPhaseState(xid uint32) []byte {
	b := make([]byte, 80)
	binary.LittleEndian.PutUint32(b[0:], twoPhaseMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)+4))
	binary.LittleEndian.PutUint32(b[8:], xid)
	copy(b[72:], "gid\x00")
	return b
}

func relmap(tag byte) []byte { return bytes.Repeat([]byte{tag}, relMapFileSize) }

const (
	db5 = pgtypes.Oid(5)
	db7 = pgtypes.Oid(16384)
)

func rel(spc, db, node pgtypes.Oid, fork pgtypes.ForkNumber) pgtypes.RelTag {
	return pgtypes.RelTag{SpcNode: spc, DbNode: db, RelNode: node, ForkNum: fork}
}

func newMemSource() *memSource {
	cp := testCheckPoint()
	cp.NextXid = 40550              // pg_xact page 1 of segment 0
	cp.NextMulti = 5000             // offsets page 2
	cp.NextMultiOffset = 1636*3 + 5 // members page 3
	return &memSource{
		dbs: []Database{
			{Spc: pgtypes.DefaultTablespaceOid, Db: db7, HasRelmap: true},
			{Spc: pgtypes.GlobalTablespaceOid, HasRelmap: true},
			{Spc: pgtypes.DefaultTablespaceOid, Db: db5, HasRelmap: true},
			{Spc: pgtypes.DefaultTablespaceOid, Db: 99999}, // being created: no relmap
		},
		rels: map[pgtypes.RelTag]uint32{
			rel(1663, db5, 1259, pgtypes.MainForkNum):           5,
			rel(1663, db5, 1259, pgtypes.FSMForkNum):            3,
			rel(1663, db7, 16390, pgtypes.MainForkNum):          7, // split at 3 blocks in tests
			rel(1663, db7, 16391, pgtypes.MainForkNum):          0, // empty file
			rel(1663, db7, 16400, pgtypes.MainForkNum):          9, // unlogged: stored main is ignored
			rel(1663, db7, 16400, pgtypes.VisibilityMapForkNum): 1,
			rel(1663, db7, 16400, pgtypes.InitForkNum):          1,
			rel(1664, 0, 1262, pgtypes.MainForkNum):             2,
		},
		relmaps: map[[2]pgtypes.Oid][]byte{
			{1664, 0}: relmap('g'), {1663, db5}: relmap('5'), {1663, db7}: relmap('7'),
		},
		slrus: map[keyspace.SlruKind]map[uint32][]byte{
			keyspace.SlruClog:             {0: bytes.Repeat([]byte{0x55}, 8192)}, // short of nextXid's page
			keyspace.SlruMultiXactOffsets: {0: bytes.Repeat([]byte{1}, 3*8192)},  // holds nextMulti's page
			keyspace.SlruMultiXactMembers: {},                                    // empty: must be created
		},
		twophase: map[uint64][]byte{0x2DC: twoPhaseState(0x2DC), 0x1F: twoPhaseState(0x1F)},
		control:  testControlFile(),
		cp:       cp,
	}
}

type entry struct {
	name string
	dir  bool
	data []byte
}

func readTar(t *testing.T, archive []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.Equal(t, h.Size, int64(len(data)))
		if h.Typeflag == tar.TypeDir {
			require.Equal(t, int64(0o700), h.Mode, h.Name)
		} else {
			require.Equal(t, int64(0o600), h.Mode, h.Name)
		}
		out = append(out, entry{strings.TrimSuffix(h.Name, "/"), h.Typeflag == tar.TypeDir, data})
	}
}

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func backup(t *testing.T, src Source, opts Options) ([]entry, Result, []byte) {
	t.Helper()
	opts.Now = testNow
	var buf bytes.Buffer
	res, err := write(context.Background(), &buf, src, lsn.MustParse("0/1A2B3C0"), opts, 3)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), res.Bytes)
	return readTar(t, buf.Bytes()), res, buf.Bytes()
}

func files(entries []entry) map[string][]byte {
	m := make(map[string][]byte)
	for _, e := range entries {
		if !e.dir {
			m[e.name] = e.data
		}
	}
	return m
}

func names(entries []entry, dirs bool) []string {
	var out []string
	for _, e := range entries {
		if e.dir == dirs {
			out = append(out, e.name)
		}
	}
	return out
}

func TestWriteFullbackup(t *testing.T) {
	src := newMemSource()
	entries, res, _ := backup(t, src, Options{Full: true})
	require.Equal(t, lsn.MustParse("0/2000028"), res.CheckpointLSN)
	require.Equal(t, "pg_wal/000000010000000000000002", res.WALFile)

	require.Equal(t, []string{
		"PG_VERSION", "postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf",
		"pg_xact/0000", "pg_multixact/members/0000", "pg_multixact/offsets/0000",
		"base/5/PG_VERSION", "base/5/pg_filenode.map",
		"base/16384/PG_VERSION", "base/16384/pg_filenode.map",
		"global/pg_filenode.map",
		"base/5/1259", "base/5/1259.1", "base/5/1259_fsm",
		"base/16384/16390", "base/16384/16390.1", "base/16384/16390.2",
		"base/16384/16391",
		"base/16384/16400_init", "base/16384/16400",
		"global/1262",
		"pg_twophase/0000001F", "pg_twophase/000002DC",
		"pg_wal/000000010000000000000002",
		"global/pg_control",
	}, names(entries, false))
	dirs := names(entries, true)
	for _, d := range []string{"base", "base/5", "base/16384", "base/99999", "global", "pg_wal/archive_status",
		"pg_logical/snapshots", "pg_logical/mappings", "pg_subtrans", "pg_commit_ts", "pg_tblspc", "pg_replslot"} {
		require.Contains(t, dirs, d)
	}
	// Every directory precedes every file.
	require.True(t, entries[len(dirs)-1].dir)

	f := files(entries)
	require.Equal(t, []byte("15\n"), f["PG_VERSION"])
	require.Equal(t, []byte("15\n"), f["base/5/PG_VERSION"])
	require.Equal(t, relmap('7'), f["base/16384/pg_filenode.map"])
	require.Equal(t, relmap('g'), f["global/pg_filenode.map"])
	require.Contains(t, string(f["postgresql.conf"]), "max_prepared_transactions = 5")

	// Relation files: 1 "GiB" (here 3 blocks) segments with the right pages.
	require.Len(t, f["base/16384/16390"], 3*8192)
	require.Len(t, f["base/16384/16390.2"], 1*8192)
	want := make([]byte, 8192)
	fillPage(want, rel(1663, db7, 16390, 0), 6)
	require.Equal(t, want, f["base/16384/16390.2"])
	require.Empty(t, f["base/16384/16391"])
	// The unlogged relation is reset: main is a copy of init, other forks dropped.
	require.Equal(t, f["base/16384/16400_init"], f["base/16384/16400"])
	fillPage(want, rel(1663, db7, 16400, pgtypes.InitForkNum), 0)
	require.Equal(t, want, f["base/16384/16400"])
	require.Equal(t, uint64(5+3+7+0+1+1+2), res.RelationBlocks)

	// SLRUs: nextXid's pg_xact page and nextMultiOffset's members page are
	// added as zeros; the offsets segment already holds nextMulti's page.
	require.Len(t, f["pg_xact/0000"], 2*8192)
	require.Equal(t, bytes.Repeat([]byte{0x55}, 8192), f["pg_xact/0000"][:8192])
	require.Equal(t, make([]byte, 8192), f["pg_xact/0000"][8192:])
	require.Equal(t, make([]byte, 4*8192), f["pg_multixact/members/0000"])
	require.Equal(t, bytes.Repeat([]byte{1}, 3*8192), f["pg_multixact/offsets/0000"])

	// Twophase files carry their CRC.
	tp := f["pg_twophase/000002DC"]
	require.Len(t, tp, 84)
	require.Equal(t, crc32.Checksum(tp[:80], castagnoli), binary.LittleEndian.Uint32(tp[80:]))

	// pg_control describes a clean shutdown at the synthesized checkpoint.
	control := f["global/pg_control"]
	require.Len(t, control, ControlFileSize)
	_, err := ParseControlFile(control)
	require.NoError(t, err)
	require.Equal(t, uint64(res.CheckpointLSN), binary.LittleEndian.Uint64(control[ctlCheckPoint:]))
	cp, err := rmgr.DecodeCheckPoint(control[ctlCheckPointCopy:])
	require.NoError(t, err)
	require.Equal(t, res.CheckpointLSN, cp.Redo)
	require.Equal(t, src.cp.NextXid, cp.NextXid)
	require.Equal(t, testNow.Unix(), cp.Time)

	wal := f[res.WALFile]
	require.Len(t, wal, 16<<20)
	page, err := WALSegmentFirstPage(testSystemID, 16<<20, cp, res.CheckpointLSN)
	require.NoError(t, err)
	require.Equal(t, page, wal[:8192])
	require.NotContains(t, f, "neon.signal")
}

func TestWriteNeonStyle(t *testing.T) {
	entries, res, _ := backup(t, newMemSource(), Options{PrevLSN: lsn.MustParse("0/1A2B388"),
		ConfigFiles: map[string][]byte{"postgresql.conf": []byte("port = 5433\n")}})
	f := files(entries)
	for name := range f {
		if strings.HasPrefix(name, "base/") && !strings.HasSuffix(name, "PG_VERSION") && !strings.HasSuffix(name, ".map") {
			require.Contains(t, []string{"base/16384/16400_init", "base/16384/16400"}, name, "only unlogged relations")
		}
	}
	require.NotContains(t, f, "global/1262")
	require.Equal(t, uint64(2), res.RelationBlocks)
	require.Equal(t, "PREV LSN: 0/1A2B388", string(f["neon.signal"]))
	require.Equal(t, "PREV LSN: 0/1A2B388", string(f["zenith.signal"]))
	require.Equal(t, "port = 5433\n", string(f["postgresql.conf"]))
	require.Equal(t, "global/pg_control", entries[len(entries)-1].name)

	entries, _, _ = backup(t, newMemSource(), Options{})
	require.Equal(t, "PREV LSN: invalid", string(files(entries)["neon.signal"]))
}

func TestWriteIsDeterministic(t *testing.T) {
	_, _, a := backup(t, newMemSource(), Options{Full: true})
	_, _, b := backup(t, newMemSource(), Options{Full: true})
	require.True(t, bytes.Equal(a, b))
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*memSource)
		opts    Options
		wantErr error
		wantMsg string
		nothing bool // nothing may be written
	}{
		{name: "corrupt control file", mutate: func(s *memSource) { s.control[100] ^= 1 }, wantErr: ErrCorrupt, wantMsg: "CRC", nothing: true},
		{name: "bootstrap nextXid", mutate: func(s *memSource) { s.cp.NextXid = 2 }, wantErr: ErrInvalidCheckpoint, nothing: true},
		{name: "unknown config file", opts: Options{ConfigFiles: map[string][]byte{"../evil": nil}}, wantErr: ErrUnsupported, nothing: true},
		{name: "user tablespace", mutate: func(s *memSource) { s.rels[rel(16500, db7, 1, 0)] = 1 }, wantErr: ErrUnsupported, wantMsg: "tablespace 16500"},
		{name: "short relmap", mutate: func(s *memSource) { s.relmaps[[2]pgtypes.Oid{1663, db5}] = make([]byte, 511) }, wantErr: ErrCorrupt, wantMsg: "base/5/pg_filenode.map is 511 bytes"},
		{name: "ragged SLRU", mutate: func(s *memSource) { s.slrus[keyspace.SlruClog][0] = make([]byte, 8200) }, wantErr: ErrCorrupt, wantMsg: "pg_xact/0000 is 8200 bytes"},
		{name: "twophase length", mutate: func(s *memSource) { s.twophase[0x1F] = twoPhaseState(0x1F)[:72] }, wantErr: ErrCorrupt, wantMsg: "pg_twophase/0000001F"},
		{name: "twophase xid", mutate: func(s *memSource) { s.twophase[0x1F] = twoPhaseState(0x20) }, wantErr: ErrCorrupt, wantMsg: "holds xid 32"},
		{name: "64-bit xid", mutate: func(s *memSource) { s.twophase[1<<32] = twoPhaseState(0) }, wantErr: ErrUnsupported},
		{name: "page", mutate: func(s *memSource) { s.failAfter, s.failPage = true, 4 }, wantErr: errInjected, wantMsg: "backup at 0/1A2B3C0: basebackup: source: block 4 of 1663/5/1259: injected failure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newMemSource()
			if tc.mutate != nil {
				tc.mutate(src)
			}
			tc.opts.Full = true
			var buf bytes.Buffer
			_, err := write(context.Background(), &buf, src, lsn.MustParse("0/1A2B3C0"), tc.opts, 3)
			require.ErrorIs(t, err, tc.wantErr)
			require.Contains(t, err.Error(), tc.wantMsg)
			if tc.nothing {
				require.Zero(t, buf.Len())
			}
		})
	}
}

func TestWriteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newMemSource()
	src.rels[rel(1663, db7, 16390, 0)] = 100000
	src.onPage = func(n int) {
		if n == 1000 {
			cancel()
		}
	}
	_, err := write(ctx, io.Discard, src, lsn.MustParse("0/1A2B3C0"), Options{Full: true}, pgtypes.RelSegSize)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, src.pages, 1000+ctxCheckBlocks+1, "the stream must stop within one context check")
}

// A failing writer (client gone) stops the backup with the writer's error.
func TestWriteClientGone(t *testing.T) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := Write(context.Background(), pw, newMemSource(), lsn.MustParse("0/1A2B3C0"), Options{Full: true})
		done <- err
	}()
	_, err := io.CopyN(io.Discard, pr, 100_000)
	require.NoError(t, err)
	require.NoError(t, pr.CloseWithError(errInjected))
	require.ErrorIs(t, <-done, errInjected)
}

// benchSource serves one relation of n blocks and nothing else of size.
func benchSource(blocks uint32) *memSource {
	src := newMemSource()
	src.rels = map[pgtypes.RelTag]uint32{rel(1663, db7, 16390, 0): blocks}
	return src
}

// BenchmarkWriteFull measures a fullbackup of 8 MiB of relation data plus
// the fixed 16 MiB WAL segment; BenchmarkBaselineTar is the floor: the same
// bytes through archive/tar with no Source, no checks.
func BenchmarkWriteFull(b *testing.B) {
	const blocks = 1024
	src := benchSource(blocks)
	b.SetBytes(blocks*8192 + 16<<20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Write(context.Background(), io.Discard, src, lsn.MustParse("0/1A2B3C0"), Options{Full: true, Now: testNow}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineTar(b *testing.B) {
	const blocks = 1024
	b.SetBytes(blocks*8192 + 16<<20)
	b.ReportAllocs()
	page := make([]byte, 8192)
	for b.Loop() {
		tw := tar.NewWriter(io.Discard)
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "base/16384/16390", Size: blocks * 8192, Mode: 0o600})
		for blk := range uint32(blocks) {
			fillPage(page, rel(1663, db7, 16390, 0), blk)
			_, _ = tw.Write(page)
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pg_wal/x", Size: 16 << 20, Mode: 0o600})
		clear(page)
		for range 16 << 20 / 8192 {
			_, _ = tw.Write(page)
		}
		_ = tw.Close()
	}
}

func FuzzCheckTwoPhaseState(f *testing.F) {
	f.Add(twoPhaseState(0x2DC), uint32(0x2DC))
	f.Add(twoPhaseState(1)[:72], uint32(1))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, state []byte, xid uint32) {
		if err := checkTwoPhaseState(state, xid); err == nil {
			require.Equal(t, int(binary.LittleEndian.Uint32(state[4:])), len(state)+4)
		} else {
			require.ErrorIs(t, err, ErrCorrupt)
		}
	})
}

// TestWriteMemoryFlat checks that the bytes allocated by a fullbackup do
// not grow with the amount of relation data: 20× more blocks, same heap.
func TestWriteMemoryFlat(t *testing.T) {
	allocated := func(blocks uint32) uint64 {
		src := benchSource(blocks)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Write(context.Background(), io.Discard, src, lsn.MustParse("0/1A2B3C0"), Options{Full: true, Now: testNow})
		runtime.ReadMemStats(&after)
		require.NoError(t, err)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := allocated(1000), allocated(20000)
	t.Logf("allocated: %d bytes for 1000 blocks, %d bytes for 20000 blocks", small, large)
	require.Less(t, large, small+64<<10)
}
