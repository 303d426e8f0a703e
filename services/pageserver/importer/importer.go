package importer

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/timeline"
	"github.com/stratadb/strata/services/pageserver/value"
	"github.com/stratadb/strata/services/pageserver/walingest"
)

// Options tune an import.
type Options struct {
	// At is the import LSN. For an archive with a backup_label it may be
	// left zero (START WAL LOCATION is used) and must otherwise equal it.
	// For the archive of a cleanly shut-down cluster, whose pg_control
	// comes last, it is required and must equal pg_control's checkPoint.
	At lsn.LSN
	// Logger receives progress and warnings; nil discards them.
	Logger *slog.Logger
}

// Result describes what an import stored.
type Result struct {
	// At is the LSN of the stored images, the timeline's last_record_lsn
	// after the import, and where WAL ingest continues.
	At lsn.LSN
	// CheckpointLSN is the checkpoint record the import starts from: the
	// backup checkpoint (backup_label) or the shutdown checkpoint.
	CheckpointLSN lsn.LSN
	// FromBackup says the source was a base backup of a running server: its
	// pages are consistent only from the backup's end LSN on, after WAL
	// from At has been ingested.
	FromBackup bool
	// SystemID is pg_control's system identifier.
	SystemID uint64
	// Checkpoint is the checkpoint stored at At.
	Checkpoint rmgr.CheckPoint

	Databases     int
	Relations     int // relation forks in the relation directories
	Blocks        uint64
	SlruSegments  int
	TwoPhaseFiles int
	Bytes         int64 // bytes of file data read
	Elapsed       time.Duration
}

// Size limits for files read whole.
const (
	relMapFileSize     = 512
	maxTwoPhaseFile    = 64 << 20
	slruSegmentMaxSize = pgtypes.SLRUPagesPerSegment * pgtypes.BLCKSZ
)

// pg_control fields read here (pg15-formats.md §5.1).
const (
	ctlState          = 16
	ctlCheckPoint     = 32
	ctlCheckPointCopy = 40
	dbShutdowned      = 1
	dbShutdownedInRec = 2
)

// entry is one file or directory of a data directory, from a tar archive
// or a directory walk.
type entry struct {
	name  string // relative to the data directory, '/'-separated
	isDir bool
	// symlink: a symbolic link (only tablespace links are expected).
	symlink bool
	size    int64
	r       io.Reader
}

// state accumulates the directories and sizes while the files are stored.
type state struct {
	ctx   context.Context
	log   *slog.Logger
	put   func(key keyspace.Key, encoded []byte) error
	at    lsn.LSN
	label *backupLabel

	page    []byte // one page read buffer
	enc     []byte // one encoded value buffer
	control []byte

	relSizes map[pgtypes.RelTag]uint32
	relSegs  map[relSeg]struct{} // duplicate detection
	dbs      map[walingest.DbDirEntry]bool
	slru     [3]map[uint32]struct{}
	twoPhase map[uint32]struct{}

	res Result
}

type relSeg struct {
	rel pgtypes.RelTag
	seg uint32
}

func newState(ctx context.Context, opts Options) *state {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &state{
		ctx: ctx, log: log,
		page:     make([]byte, pgtypes.BLCKSZ),
		relSizes: make(map[pgtypes.RelTag]uint32),
		relSegs:  make(map[relSeg]struct{}),
		dbs:      make(map[walingest.DbDirEntry]bool),
		twoPhase: make(map[uint32]struct{}),
	}
	for i := range s.slru {
		s.slru[i] = make(map[uint32]struct{})
	}
	// The global tablespace always exists (its relations live in global/).
	s.dbs[walingest.DbDirEntry{SpcNode: pgtypes.GlobalTablespaceOid}] = false
	return s
}

func (s *state) putImage(key keyspace.Key, image []byte) error {
	s.enc = value.AppendImage(s.enc[:0], image)
	if err := s.put(key, s.enc); err != nil {
		return fmt.Errorf("importer: storing %s: %w", key.Describe(), err)
	}
	return nil
}

// file stores one entry. f is its classification.
func (s *state) file(e entry, f dataFile) error {
	switch f.kind {
	case kindTablespace:
		return fmt.Errorf("%w: %q: user tablespaces are not supported", ErrUnsupported, e.name)
	case kindIgnore:
		return nil
	case kindDir:
		if f.db {
			db := walingest.DbDirEntry{SpcNode: f.rel.SpcNode, DbNode: f.rel.DbNode}
			if _, ok := s.dbs[db]; !ok {
				s.dbs[db] = false
			}
		}
		return nil
	}
	if e.symlink || e.isDir {
		return fmt.Errorf("%w: %q is a link or directory where PostgreSQL keeps a file", ErrUnsupported, e.name)
	}
	var err error
	switch f.kind {
	case kindBackupLabel:
		// Consumed before the import starts (see ImportBaseBackup); a
		// second one is an error.
		return fmt.Errorf("%w: %q: more than one backup_label, or one after the data files", ErrCorrupt, e.name)
	case kindRel:
		err = s.relFile(e, f)
	case kindSlru:
		err = s.slruFile(e, f)
	case kindTwoPhase:
		err = s.twoPhaseFile(e, f)
	case kindRelMap:
		err = s.relMapFile(e, f)
	case kindControl:
		err = s.controlFile(e)
	}
	if err != nil {
		return fmt.Errorf("importer: %q: %w", e.name, err)
	}
	return nil
}

// readPage reads the next page of a file into s.page; a short last page is
// zero-padded (a fuzzy copy may catch an extension half-written; WAL
// replay rewrites that page). It returns false at the end of the file.
func (s *state) readPage(r io.Reader, name string) (bool, error) {
	n, err := io.ReadFull(r, s.page)
	switch {
	case err == nil:
		s.res.Bytes += int64(n)
		return true, nil
	case errors.Is(err, io.EOF):
		return false, nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.res.Bytes += int64(n)
		s.log.Warn("importer: file length is not a multiple of the page size; last page zero-padded", "file", name, "tail_bytes", n)
		clear(s.page[n:])
		return true, nil
	}
	return false, err
}

func (s *state) relFile(e entry, f dataFile) error {
	rs := relSeg{f.rel, f.seg}
	if _, dup := s.relSegs[rs]; dup {
		return fmt.Errorf("%w: duplicate file", ErrCorrupt)
	}
	s.relSegs[rs] = struct{}{}
	db := walingest.DbDirEntry{SpcNode: f.rel.SpcNode, DbNode: f.rel.DbNode}
	if _, ok := s.dbs[db]; !ok {
		s.dbs[db] = false
	}
	first := f.seg * pgtypes.RelSegSize
	var n uint32
	for {
		ok, err := s.readPage(e.r, e.name)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if n == pgtypes.RelSegSize {
			return fmt.Errorf("%w: segment longer than %d blocks", ErrCorrupt, pgtypes.RelSegSize)
		}
		if err := s.putImage(keyspace.RelBlock(f.rel, first+n), s.page); err != nil {
			return err
		}
		n++
		s.res.Blocks++
		if n%1024 == 0 {
			if err := s.ctx.Err(); err != nil {
				return err
			}
		}
	}
	size := s.relSizes[f.rel]
	if n > 0 || f.seg == 0 {
		size = max(size, first+n)
	}
	s.relSizes[f.rel] = size
	return nil
}

func (s *state) slruFile(e entry, f dataFile) error {
	set := s.slru[f.slru]
	if _, dup := set[f.seg]; dup {
		return fmt.Errorf("%w: duplicate file", ErrCorrupt)
	}
	set[f.seg] = struct{}{}
	var n uint32
	for {
		ok, err := s.readPage(e.r, e.name)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if n == pgtypes.SLRUPagesPerSegment {
			return fmt.Errorf("%w: SLRU segment longer than %d bytes", ErrCorrupt, slruSegmentMaxSize)
		}
		if err := s.putImage(keyspace.SlruBlock(f.slru, f.seg, n), s.page); err != nil {
			return err
		}
		n++
	}
	s.res.SlruSegments++
	return s.putImage(keyspace.SlruSegmentSize(f.slru, f.seg), walingest.EncodeRelSize(n))
}

// readWhole reads a small file completely, refusing more than limit bytes.
func (s *state) readWhole(e entry, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(e.r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, limit)
	}
	s.res.Bytes += int64(len(b))
	return b, nil
}

func (s *state) twoPhaseFile(e entry, f dataFile) error {
	b, err := s.readWhole(e, maxTwoPhaseFile)
	if err != nil {
		return err
	}
	// xl_xact_prepare header: magic, total_len (the file size), xid.
	const twoPhaseMagic = 0x57F94534
	le := binary.LittleEndian
	if len(b) < 16 || le.Uint32(b) != twoPhaseMagic || int(le.Uint32(b[4:])) != len(b) || le.Uint32(b[8:]) != f.xid {
		return fmt.Errorf("%w: not the twophase state file of xid %d (%d bytes)", ErrCorrupt, f.xid, len(b))
	}
	if _, dup := s.twoPhase[f.xid]; dup {
		return fmt.Errorf("%w: duplicate file", ErrCorrupt)
	}
	s.twoPhase[f.xid] = struct{}{}
	return s.putImage(keyspace.TwoPhaseFile(uint64(f.xid)), b)
}

func (s *state) relMapFile(e entry, f dataFile) error {
	b, err := s.readWhole(e, relMapFileSize)
	if err != nil {
		return err
	}
	if len(b) != relMapFileSize {
		return fmt.Errorf("%w: relmapper file is %d bytes, want %d", ErrCorrupt, len(b), relMapFileSize)
	}
	db := walingest.DbDirEntry{SpcNode: f.rel.SpcNode, DbNode: f.rel.DbNode}
	if s.dbs[db] {
		return fmt.Errorf("%w: duplicate file", ErrCorrupt)
	}
	s.dbs[db] = true
	return s.putImage(keyspace.RelMapFile(f.rel.SpcNode, f.rel.DbNode), b)
}

func (s *state) controlFile(e entry) error {
	if s.control != nil {
		return fmt.Errorf("%w: duplicate file", ErrCorrupt)
	}
	b, err := s.readWhole(e, basebackup.ControlFileSize)
	if err != nil {
		return err
	}
	if _, err := basebackup.ParseControlFile(b); err != nil {
		return err
	}
	s.control = b
	return nil
}

// finish checks pg_control against the import LSN and stores the
// directories, sizes, the control file and the checkpoint.
func (s *state) finish() error {
	if s.control == nil {
		return fmt.Errorf("%w: no global/pg_control", ErrIncomplete)
	}
	info, err := basebackup.ParseControlFile(s.control)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	state := le.Uint32(s.control[ctlState:])
	checkPoint := lsn.LSN(le.Uint64(s.control[ctlCheckPoint:]))
	cp, err := rmgr.DecodeCheckPoint(s.control[ctlCheckPointCopy : ctlCheckPointCopy+rmgr.CheckPointSize])
	if err != nil {
		return fmt.Errorf("%w: pg_control checkPointCopy: %v", ErrCorrupt, err)
	}
	if s.label != nil {
		s.res.CheckpointLSN = s.label.Checkpoint
		s.res.FromBackup = true
		if checkPoint != s.label.Checkpoint {
			// A checkpoint completed while the files were copied: pg_control
			// (copied last) is newer. Its counters are only further ahead.
			s.log.Info("importer: pg_control names a later checkpoint than backup_label", "backup_label", s.label.Checkpoint, "pg_control", checkPoint)
		}
	} else {
		if state != dbShutdowned && state != dbShutdownedInRec {
			return fmt.Errorf("%w: no backup_label and pg_control state %d is not shut down: the cluster was running, take a base backup instead", ErrNoImportLSN, state)
		}
		if checkPoint != s.at || cp.Redo != checkPoint {
			return fmt.Errorf("%w: shut-down cluster's checkpoint is at %s (redo %s), import LSN is %s", ErrNoImportLSN, checkPoint, cp.Redo, s.at)
		}
		s.res.CheckpointLSN = checkPoint
	}
	s.res.SystemID = info.SystemID
	// walingest's convention (neon-anchor §6.3): Redo is the end of an
	// ingested shutdown checkpoint record, else 0. None was ingested yet.
	cp.Redo = 0
	s.res.Checkpoint = cp
	if err := s.putImage(keyspace.Checkpoint(), cp.Encode()); err != nil {
		return err
	}
	if err := s.putImage(keyspace.ControlFile(), s.control); err != nil {
		return err
	}

	// Unlogged relations: only the init fork is WAL-logged, so only it
	// belongs in the directory (the backup resets the main fork from it).
	unlogged := make(map[pgtypes.RelFileNode]struct{})
	for rel := range s.relSizes {
		if rel.ForkNum == pgtypes.InitForkNum {
			unlogged[pgtypes.RelFileNode{SpcNode: rel.SpcNode, DbNode: rel.DbNode, RelNode: rel.RelNode}] = struct{}{}
		}
	}
	relDirs := make(map[walingest.DbDirEntry]map[walingest.RelDirEntry]struct{}, len(s.dbs))
	for db := range s.dbs {
		relDirs[db] = make(map[walingest.RelDirEntry]struct{})
	}
	rels := make([]pgtypes.RelTag, 0, len(s.relSizes))
	for rel := range s.relSizes {
		rels = append(rels, rel)
	}
	sort.Slice(rels, func(i, j int) bool { return keyspace.RelSize(rels[i]).Less(keyspace.RelSize(rels[j])) })
	for _, rel := range rels {
		node := pgtypes.RelFileNode{SpcNode: rel.SpcNode, DbNode: rel.DbNode, RelNode: rel.RelNode}
		if _, ok := unlogged[node]; ok && rel.ForkNum != pgtypes.InitForkNum {
			continue
		}
		db := walingest.DbDirEntry{SpcNode: rel.SpcNode, DbNode: rel.DbNode}
		relDirs[db][walingest.RelDirEntry{RelNode: rel.RelNode, Fork: rel.ForkNum}] = struct{}{}
		if err := s.putImage(keyspace.RelSize(rel), walingest.EncodeRelSize(s.relSizes[rel])); err != nil {
			return err
		}
		s.res.Relations++
	}
	for db, dir := range relDirs {
		if err := s.putImage(keyspace.RelDir(db.SpcNode, db.DbNode), walingest.EncodeRelDir(dir)); err != nil {
			return err
		}
	}
	if err := s.putImage(keyspace.DbDir(), walingest.EncodeDbDir(s.dbs)); err != nil {
		return err
	}
	s.res.Databases = len(s.dbs)
	for kind, segs := range s.slru {
		if err := s.putImage(keyspace.SlruDir(keyspace.SlruKind(kind)), walingest.EncodeSlruDir(segs)); err != nil {
			return err
		}
	}
	s.res.TwoPhaseFiles = len(s.twoPhase)
	return s.putImage(keyspace.TwoPhaseDir(), walingest.EncodeTwoPhaseDir(s.twoPhase))
}

// ImportBaseBackup stores the data directory archived in base (a tar as
// BASE_BACKUP / pg_basebackup -Ft writes base.tar) on the empty timeline
// tl, as one image layer at the import LSN (see the package doc for which
// LSN, and why WAL from there must be ingested next).
func ImportBaseBackup(ctx context.Context, tl *timeline.Timeline, base io.Reader, opts Options) (Result, error) {
	began := time.Now()
	s := newState(ctx, opts)
	tr := tar.NewReader(base)

	// Read up to the backup_label or the first data file: the import LSN
	// must be known before the first value is staged. Directories seen
	// before are remembered (they register databases).
	var (
		early   []dataFile
		pending *entry
		pendF   dataFile
	)
	for pending == nil {
		e, f, err := nextTarEntry(tr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, err
		}
		switch f.kind {
		case kindIgnore, kindDir:
			early = append(early, f)
		case kindBackupLabel:
			b, err := s.readWhole(e, maxBackupLabelSize)
			if err != nil {
				return Result{}, fmt.Errorf("importer: %q: %w", e.name, err)
			}
			l, err := parseBackupLabel(b)
			if err != nil {
				return Result{}, fmt.Errorf("importer: %q: %w", e.name, err)
			}
			if l.Timeline != 1 {
				return Result{}, fmt.Errorf("%w: %q: backup of timeline %d; only timeline 1 is supported", ErrUnsupported, e.name, l.Timeline)
			}
			s.label = &l
		default:
			ee := e
			pending, pendF = &ee, f
		}
		if s.label != nil {
			break
		}
	}
	switch {
	case s.label != nil && opts.At.IsValid() && opts.At != s.label.Start:
		return Result{}, fmt.Errorf("%w: Options.At %s differs from backup_label START WAL LOCATION %s", ErrNoImportLSN, opts.At, s.label.Start)
	case s.label != nil:
		s.at = s.label.Start
	case opts.At.IsValid():
		s.at = opts.At
	default:
		return Result{}, fmt.Errorf("%w: the archive has no backup_label before its data files and Options.At is not set", ErrNoImportLSN)
	}
	err := tl.WriteImageLayer(ctx, s.at, lsn.Invalid, func(put func(keyspace.Key, []byte) error) error {
		s.put = put
		for _, f := range early {
			if err := s.file(entry{isDir: true}, f); err != nil {
				return err
			}
		}
		if pending != nil {
			if err := s.file(*pending, pendF); err != nil {
				return err
			}
		}
		for {
			e, f, err := nextTarEntry(tr)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if err := s.file(e, f); err != nil {
				return err
			}
		}
		return s.finish()
	})
	if err != nil {
		return Result{}, err
	}
	s.res.At = s.at
	s.res.Elapsed = time.Since(began)
	s.log.Info("importer: base backup imported", "at", s.at, "checkpoint", s.res.CheckpointLSN,
		"relations", s.res.Relations, "blocks", s.res.Blocks, "bytes", s.res.Bytes, "elapsed", s.res.Elapsed)
	return s.res, nil
}

// nextTarEntry returns the next entry and its classification.
func nextTarEntry(tr *tar.Reader) (entry, dataFile, error) {
	h, err := tr.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return entry{}, dataFile{}, io.EOF
		}
		return entry{}, dataFile{}, fmt.Errorf("%w: reading tar: %v", ErrCorrupt, err)
	}
	e := entry{name: h.Name, size: h.Size, r: tr}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
	case tar.TypeDir:
		e.isDir = true
	case tar.TypeSymlink:
		e.symlink = true
	default:
		f := classify(h.Name, false)
		if f.kind == kindIgnore {
			return e, f, nil
		}
		return entry{}, dataFile{}, fmt.Errorf("%w: tar entry %q has type %q", ErrUnsupported, h.Name, h.Typeflag)
	}
	// pg_tblspc/<oid> links classify as tablespaces (unsupported); other
	// links (pg_wal on another disk) are not data and are ignored.
	return e, classify(h.Name, e.isDir), nil
}

// ImportDir stores a cleanly shut-down cluster's data directory (as initdb
// leaves it) on the empty timeline tl at pg_control's checkPoint: the same
// files and rules as ImportBaseBackup. Ingest its pg_wal next
// (ImportWALDir) to store the shutdown checkpoint record itself.
func ImportDir(ctx context.Context, tl *timeline.Timeline, dataDir string, opts Options) (Result, error) {
	began := time.Now()
	s := newState(ctx, opts)
	control, err := os.ReadFile(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrIncomplete, err)
	}
	if _, err := basebackup.ParseControlFile(control); err != nil {
		return Result{}, fmt.Errorf("importer: global/pg_control: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "backup_label")); err == nil {
		return Result{}, fmt.Errorf("%w: %s has a backup_label: import it as a base backup archive", ErrUnsupported, dataDir)
	}
	s.at = lsn.LSN(binary.LittleEndian.Uint64(control[ctlCheckPoint:]))
	if opts.At.IsValid() && opts.At != s.at {
		return Result{}, fmt.Errorf("%w: Options.At %s differs from pg_control's checkpoint %s", ErrNoImportLSN, opts.At, s.at)
	}
	err = tl.WriteImageLayer(ctx, s.at, lsn.Invalid, func(put func(keyspace.Key, []byte) error) error {
		s.put = put
		err := filepath.WalkDir(dataDir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dataDir, p)
			if err != nil || rel == "." {
				return err
			}
			name := filepath.ToSlash(rel)
			isLink := d.Type()&os.ModeSymlink != 0
			f := classify(name, d.IsDir())
			if f.kind == kindIgnore && !d.IsDir() || (d.IsDir() && f.kind == kindDir && !f.db && name != "base" && name != "global") {
				if d.IsDir() && skipDir(name) {
					return filepath.SkipDir
				}
				return nil
			}
			e := entry{name: name, isDir: d.IsDir(), symlink: isLink}
			if f.kind == kindDir || f.kind == kindTablespace || isLink {
				return s.file(e, f)
			}
			fh, err := os.Open(p)
			if err != nil {
				return err
			}
			defer fh.Close()
			e.r = fh
			return s.file(e, f)
		})
		if err != nil {
			return err
		}
		return s.finish()
	})
	if err != nil {
		return Result{}, err
	}
	s.res.At = s.at
	s.res.Elapsed = time.Since(began)
	return s.res, nil
}

// skipDir says which directories of a data directory hold nothing the
// import stores.
func skipDir(name string) bool {
	switch name {
	case "pg_wal", "pg_subtrans", "pg_commit_ts", "pg_notify", "pg_serial", "pg_stat", "pg_stat_tmp",
		"pg_replslot", "pg_logical", "pg_snapshots", "pg_dynshmem":
		return true
	}
	return false
}
