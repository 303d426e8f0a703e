package basebackup

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// dirSource is a Source over a cleanly stopped PostgreSQL 15 data
// directory: the state "at" any LSN is simply the directory's. It stands in
// for a timeline in the boot tests.
type dirSource struct {
	dir string

	open     *os.File // the relation segment read last
	openPath string
	pages    uint64 // Page calls, for tests
}

var relFileName = regexp.MustCompile(`^([0-9]+)(_fsm|_vm|_init)?$`)

func (s *dirSource) Close() error {
	if s.open != nil {
		return s.open.Close()
	}
	return nil
}

func (s *dirSource) Databases(ctx context.Context, _ lsn.LSN) ([]Database, error) {
	dbs := []Database{{Spc: pgtypes.GlobalTablespaceOid, HasRelmap: exists(filepath.Join(s.dir, "global", "pg_filenode.map"))}}
	entries, err := os.ReadDir(filepath.Join(s.dir, "base"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		oid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil || !e.IsDir() {
			continue
		}
		dbs = append(dbs, Database{Spc: pgtypes.DefaultTablespaceOid, Db: pgtypes.Oid(oid),
			HasRelmap: exists(filepath.Join(s.dir, "base", e.Name(), "pg_filenode.map"))})
	}
	return dbs, nil
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func (s *dirSource) Relations(ctx context.Context, at lsn.LSN) ([]pgtypes.RelTag, error) {
	dbs, err := s.Databases(ctx, at)
	if err != nil {
		return nil, err
	}
	var rels []pgtypes.RelTag
	for _, db := range dbs {
		dir := filepath.Join(s.dir, dbDir(db))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			m := relFileName.FindStringSubmatch(e.Name())
			if m == nil {
				continue
			}
			oid, _ := strconv.ParseUint(m[1], 10, 32)
			fork := map[string]pgtypes.ForkNumber{"": pgtypes.MainForkNum, "_fsm": pgtypes.FSMForkNum,
				"_vm": pgtypes.VisibilityMapForkNum, "_init": pgtypes.InitForkNum}[m[2]]
			rels = append(rels, pgtypes.RelTag{SpcNode: db.Spc, DbNode: db.Db, RelNode: pgtypes.Oid(oid), ForkNum: fork})
		}
	}
	return rels, nil
}

func (s *dirSource) RelSize(_ context.Context, rel pgtypes.RelTag, _ lsn.LSN) (uint32, error) {
	var blocks uint32
	for seg := uint32(0); ; seg++ {
		st, err := os.Stat(filepath.Join(s.dir, rel.SegmentPath(seg)))
		if os.IsNotExist(err) && seg > 0 {
			return blocks, nil
		}
		if err != nil {
			return 0, err
		}
		if st.Size()%pgtypes.BLCKSZ != 0 {
			return 0, fmt.Errorf("%s: size %d is not whole blocks", rel.SegmentPath(seg), st.Size())
		}
		blocks += uint32(st.Size() / pgtypes.BLCKSZ)
	}
}

func (s *dirSource) Block(_ context.Context, rel pgtypes.RelTag, blkno uint32, _ lsn.LSN, dst []byte) error {
	s.pages++
	path := filepath.Join(s.dir, rel.SegmentPath(blkno/pgtypes.RelSegSize))
	if path != s.openPath {
		if s.open != nil {
			s.open.Close()
			s.open = nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		s.open, s.openPath = f, path
	}
	_, err := s.open.ReadAt(dst[:pgtypes.BLCKSZ], int64(blkno%pgtypes.RelSegSize)*pgtypes.BLCKSZ)
	return err
}

func (s *dirSource) RelMapFile(_ context.Context, spc, db pgtypes.Oid, _ lsn.LSN) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.dir, dbDir(Database{Spc: spc, Db: db}), "pg_filenode.map"))
}

func (s *dirSource) SlruSegments(_ context.Context, kind keyspace.SlruKind, _ lsn.LSN) ([]uint32, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, kind.Dir()))
	if err != nil {
		return nil, err
	}
	var segs []uint32
	for _, e := range entries {
		n, err := strconv.ParseUint(e.Name(), 16, 32)
		if err == nil {
			segs = append(segs, uint32(n))
		}
	}
	return segs, nil
}

func (s *dirSource) SlruSegment(_ context.Context, kind keyspace.SlruKind, segno uint32, _ lsn.LSN) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.dir, kind.Dir(), fmt.Sprintf("%04X", segno)))
}

func (s *dirSource) TwoPhaseFiles(_ context.Context, _ lsn.LSN) ([]uint64, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "pg_twophase"))
	if err != nil {
		return nil, err
	}
	var xids []uint64
	for _, e := range entries {
		n, err := strconv.ParseUint(e.Name(), 16, 32)
		if err == nil && len(e.Name()) == 8 {
			xids = append(xids, n)
		}
	}
	return xids, nil
}

// TwoPhaseFile strips and checks the file's CRC: the Source contract is the
// PREPARE record's main data.
func (s *dirSource) TwoPhaseFile(_ context.Context, xid uint64, _ lsn.LSN) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "pg_twophase", fmt.Sprintf("%08X", xid)))
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("twophase file of xid %d is %d bytes", xid, len(b))
	}
	state := b[:len(b)-4]
	if crc32.Checksum(state, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("twophase file of xid %d: bad CRC", xid)
	}
	return state, nil
}

func (s *dirSource) ControlFile(_ context.Context, _ lsn.LSN) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.dir, "global", "pg_control"))
}

func (s *dirSource) Checkpoint(ctx context.Context, at lsn.LSN) (rmgr.CheckPoint, error) {
	b, err := s.ControlFile(ctx, at)
	if err != nil {
		return rmgr.CheckPoint{}, err
	}
	if len(b) < ctlCheckPointCopy+rmgr.CheckPointSize {
		return rmgr.CheckPoint{}, fmt.Errorf("pg_control is %d bytes", len(b))
	}
	return rmgr.DecodeCheckPoint(b[ctlCheckPointCopy : ctlCheckPointCopy+rmgr.CheckPointSize])
}

// clusterEnd returns the end of the stopped cluster's WAL: the end of its
// shutdown checkpoint record.
func (s *dirSource) clusterEnd() (lsn.LSN, error) {
	b, err := s.ControlFile(context.Background(), 0)
	if err != nil {
		return 0, err
	}
	return lsn.LSN(binary.LittleEndian.Uint64(b[ctlCheckPoint:]) + checkpointRecordSize).Align(), nil
}
