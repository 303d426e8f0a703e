package walingest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/value"
)

const (
	defaultTablespace pgtypes.Oid = 1663
	relSegBlocks      uint32      = 131072
)

var relFileRE = regexp.MustCompile(`^(\d+)(_fsm|_vm|_init)?(\.(\d+))?$`)

// baseState is what seedFromDataDir imported.
type baseState struct {
	rels map[pgtypes.RelTag]uint32
}

// seedFromDataDir imports a stopped-or-idle, freshly checkpointed data
// directory into store at lsn: relation files as page images with their
// sizes and directories, relmapper files, the database directory, the SLRU
// segments, pg_control and its checkpoint. It stands in for the
// import-from-base-backup path, so that WAL ingested after at has the state
// it builds on.
func seedFromDataDir(t *testing.T, store *MemStore, dataDir string, at lsn.LSN) baseState {
	t.Helper()
	ctx := context.Background()
	put := func(key keyspace.Key, img []byte) {
		require.NoError(t, store.Put(ctx, key, at, value.AppendImage(nil, img)))
	}
	base := baseState{rels: make(map[pgtypes.RelTag]uint32)}
	dbs := map[DbDirEntry]bool{}
	seedDb := func(dir string, db DbDirEntry) {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		rels := map[RelDirEntry]struct{}{}
		for _, e := range entries {
			name := e.Name()
			if name == "pg_filenode.map" {
				b, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				put(keyspace.RelMapFile(db.SpcNode, db.DbNode), b)
				dbs[db] = true
				continue
			}
			m := relFileRE.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			relnode, _ := strconv.ParseUint(m[1], 10, 32)
			fork := map[string]pgtypes.ForkNumber{"": pgtypes.MainForkNum, "_fsm": pgtypes.FSMForkNum, "_vm": pgtypes.VisibilityMapForkNum, "_init": pgtypes.InitForkNum}[m[2]]
			segno := uint64(0)
			if m[4] != "" {
				segno, _ = strconv.ParseUint(m[4], 10, 32)
			}
			tag := pgtypes.RelTag{SpcNode: db.SpcNode, DbNode: db.DbNode, RelNode: pgtypes.Oid(relnode), ForkNum: fork}
			b, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			require.Zero(t, len(b)%pgtypes.BLCKSZ, name)
			for i := 0; i < len(b)/pgtypes.BLCKSZ; i++ {
				blk := uint32(segno)*relSegBlocks + uint32(i)
				put(keyspace.RelBlock(tag, blk), b[i*pgtypes.BLCKSZ:(i+1)*pgtypes.BLCKSZ])
				base.rels[tag] = max(base.rels[tag], blk+1)
			}
			if _, ok := base.rels[tag]; !ok {
				base.rels[tag] = 0
			}
			rels[RelDirEntry{RelNode: tag.RelNode, Fork: fork}] = struct{}{}
		}
		if _, ok := dbs[db]; !ok {
			dbs[db] = false
		}
		put(keyspace.RelDir(db.SpcNode, db.DbNode), EncodeRelDir(rels))
	}
	seedDb(filepath.Join(dataDir, "global"), DbDirEntry{SpcNode: globalTablespace, DbNode: 0})
	dbDirs, err := os.ReadDir(filepath.Join(dataDir, "base"))
	require.NoError(t, err)
	for _, e := range dbDirs {
		oid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		seedDb(filepath.Join(dataDir, "base", e.Name()), DbDirEntry{SpcNode: defaultTablespace, DbNode: pgtypes.Oid(oid)})
	}
	for rel, n := range base.rels {
		put(keyspace.RelSize(rel), EncodeRelSize(n))
	}
	put(keyspace.DbDir(), EncodeDbDir(dbs))

	for kind := keyspace.SlruClog; kind <= keyspace.SlruMultiXactOffsets; kind++ {
		dir := filepath.Join(dataDir, kind.Dir())
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		segs := map[uint32]struct{}{}
		for _, e := range entries {
			segno, err := strconv.ParseUint(e.Name(), 16, 32)
			if err != nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			n := len(b) / pgtypes.BLCKSZ
			for i := range n {
				put(keyspace.SlruBlock(kind, uint32(segno), uint32(i)), b[i*pgtypes.BLCKSZ:(i+1)*pgtypes.BLCKSZ])
			}
			put(keyspace.SlruSegmentSize(kind, uint32(segno)), EncodeRelSize(uint32(n)))
			segs[uint32(segno)] = struct{}{}
		}
		put(keyspace.SlruDir(kind), EncodeSlruDir(segs))
	}
	put(keyspace.TwoPhaseDir(), EncodeTwoPhaseDir(map[uint32]struct{}{}))
	control, err := os.ReadFile(filepath.Join(dataDir, "global", "pg_control"))
	require.NoError(t, err)
	put(keyspace.ControlFile(), control)
	put(keyspace.Checkpoint(), control[40:128])
	return base
}
