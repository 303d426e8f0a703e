package basebackup

import (
	"archive/tar"
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"time"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// Options selects what a backup contains.
type Options struct {
	// Full selects a fullbackup: every relation fork materialized at the
	// LSN. Otherwise the backup is Neon-style: no relation data except the
	// init forks of unlogged relations (and their main forks, reset).
	Full bool
	// Now is the time stamped on the checkpoint, the control file and the
	// tar entries; zero means time.Now(). Tests set it for reproducible
	// archives.
	Now time.Time
	// ConfigFiles overrides the generated configuration files; the keys
	// may be "postgresql.conf", "postgresql.auto.conf", "pg_hba.conf" and
	// "pg_ident.conf". A file not given gets a minimal default.
	ConfigFiles map[string][]byte
	// PrevLSN is the start LSN of the last record before the backup LSN,
	// written to neon.signal in a non-full backup; 0 writes "invalid".
	PrevLSN lsn.LSN
	// Logger receives one line per backup; nil discards.
	Logger *slog.Logger
}

// Result describes a written backup.
type Result struct {
	// CheckpointLSN is where the synthesized shutdown checkpoint sits; the
	// booted server writes its first WAL right after it.
	CheckpointLSN lsn.LSN
	// WALFile is the synthesized segment's path in the archive.
	WALFile string
	// Files counts regular-file entries; RelationBlocks the relation
	// blocks read from the Source; Bytes the archive size.
	Files          int
	RelationBlocks uint64
	Bytes          int64
}

// dataDirSubdirs are the directories initdb creates (pg15-formats.md §5.4,
// neon-anchor.md §2.2), parents before children.
var dataDirSubdirs = [...]string{
	"base", "global", "pg_commit_ts", "pg_dynshmem", "pg_logical", "pg_logical/mappings",
	"pg_logical/snapshots", "pg_multixact", "pg_multixact/members", "pg_multixact/offsets",
	"pg_notify", "pg_replslot", "pg_serial", "pg_snapshots", "pg_stat", "pg_stat_tmp",
	"pg_subtrans", "pg_tblspc", "pg_twophase", "pg_wal", "pg_wal/archive_status", "pg_xact",
}

// configFileNames are the configuration files a backup always contains.
var configFileNames = [...]string{"postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf"}

const (
	pgVersionText = "15\n"
	// relMapFileSize is sizeof(RelMapFile).
	relMapFileSize = 512
	// twoPhaseMagic is TWOPHASE_MAGIC; twoPhaseHeaderSize is
	// sizeof(xl_xact_prepare).
	twoPhaseMagic      = 0x57F94534
	twoPhaseHeaderSize = 72
	// ctxCheckBlocks is how many relation blocks are copied between two
	// checks of the context.
	ctxCheckBlocks = 32
	// SLRU geometry (pg15-formats.md §4).
	clogXactsPerPage        = 32768
	multiXactOffsetsPerPage = 2048
	multiXactMembersPerPage = 1636
)

// Write streams a backup of src at LSN at to w as a tar archive and closes
// the archive (not w). Memory stays flat in the size of the database: pages
// are copied one at a time through a single 8 KB buffer, SLRU segments (at
// most 256 KiB) one at a time.
//
// Entries come in a fixed order: directories, PG_VERSION, configuration,
// SLRU segments, per-database PG_VERSION and relmapper files, relation
// files (1 GiB segments), pg_twophase, (non-full) neon.signal, the
// synthesized WAL segment, and global/pg_control last, so that an archive
// cut short anywhere cannot be started as if it were complete.
//
// Everything that can be checked before the first byte is written (control
// file, checkpoint) is; a later failure, including a cancelled ctx, returns
// an error with a truncated archive, which the caller must discard. Write
// starts no goroutines.
func Write(ctx context.Context, w io.Writer, src Source, at lsn.LSN, opts Options) (Result, error) {
	return write(ctx, w, src, at, opts, pgtypes.RelSegSize)
}

// write is Write with a configurable RELSEG_SIZE, for tests.
func write(ctx context.Context, w io.Writer, src Source, at lsn.LSN, opts Options, relSegBlocks uint32) (Result, error) {
	began := time.Now()
	now := opts.Now
	if now.IsZero() {
		now = began
	}
	now = now.Truncate(time.Second)
	for name := range opts.ConfigFiles {
		if !slices.Contains(configFileNames[:], name) {
			return Result{}, fmt.Errorf("%w: configuration file %q (want one of %v)", ErrUnsupported, name, configFileNames)
		}
	}

	base, err := src.ControlFile(ctx, at)
	if err != nil {
		return Result{}, fmt.Errorf("%w: control file at %s: %w", ErrSource, at, err)
	}
	info, err := ParseControlFile(base)
	if err != nil {
		return Result{}, fmt.Errorf("stored control file at %s: %w", at, err)
	}
	stored, err := src.Checkpoint(ctx, at)
	if err != nil {
		return Result{}, fmt.Errorf("%w: checkpoint at %s: %w", ErrSource, at, err)
	}
	checkpointLSN := CheckpointLocation(at, info.WALSegmentSize)
	shutdown, err := ShutdownCheckpoint(stored, checkpointLSN, now)
	if err != nil {
		return Result{}, fmt.Errorf("checkpoint at %s: %w", at, err)
	}
	control, err := GenerateControlFile(base, shutdown, checkpointLSN)
	if err != nil {
		return Result{}, fmt.Errorf("control file at %s: %w", at, err)
	}

	counter := &countingWriter{w: w}
	buffered := bufio.NewWriterSize(counter, 64<<10)
	b := &builder{
		ctx:  ctx,
		tw:   tar.NewWriter(buffered),
		src:  src,
		at:   at,
		now:  now,
		opts: opts,
		cp:   shutdown,
		info: info,
		dirs: make(map[string]bool),
		page: make([]byte, pgtypes.BLCKSZ),

		relSegBlocks: relSegBlocks,
	}
	b.result.CheckpointLSN = checkpointLSN
	b.result.WALFile = "pg_wal/" + WALFileName(shutdown.ThisTimeLineID, checkpointLSN, info.WALSegmentSize)
	if err := b.run(control); err != nil {
		return Result{}, fmt.Errorf("backup at %s: %w", at, err)
	}
	if err := b.tw.Close(); err != nil {
		return Result{}, fmt.Errorf("backup at %s: %w", at, err)
	}
	if err := buffered.Flush(); err != nil {
		return Result{}, fmt.Errorf("backup at %s: %w", at, err)
	}
	b.result.Bytes = counter.n
	if opts.Logger != nil {
		opts.Logger.LogAttrs(ctx, slog.LevelInfo, "backup written",
			slog.Bool("full", opts.Full), slog.String("lsn", at.String()),
			slog.String("checkpoint_lsn", checkpointLSN.String()), slog.Int("files", b.result.Files),
			slog.Uint64("relation_blocks", b.result.RelationBlocks), slog.Int64("bytes", counter.n),
			slog.Duration("elapsed", time.Since(began)))
	}
	return b.result, nil
}

// builder holds the state of one Write.
type builder struct {
	ctx  context.Context
	tw   *tar.Writer
	src  Source
	at   lsn.LSN
	now  time.Time
	opts Options
	cp   rmgr.CheckPoint
	info ControlInfo
	dirs map[string]bool
	page []byte

	// relSegBlocks is RELSEG_SIZE; tests lower it to exercise splitting.
	relSegBlocks uint32
	twoPhaseXids []uint64
	result       Result
}

func (b *builder) run(control []byte) error {
	dbs, err := b.src.Databases(b.ctx, b.at)
	if err != nil {
		return fmt.Errorf("%w: databases: %w", ErrSource, err)
	}
	slices.SortFunc(dbs, func(x, y Database) int {
		return cmp.Or(cmp.Compare(x.Spc, y.Spc), cmp.Compare(x.Db, y.Db))
	})
	for _, d := range dataDirSubdirs {
		if err := b.dir(d); err != nil {
			return err
		}
	}
	for _, db := range dbs {
		if err := checkTablespace(db.Spc); err != nil {
			return err
		}
		if db.Spc == pgtypes.DefaultTablespaceOid {
			if err := b.dir(dbDir(db)); err != nil {
				return err
			}
		}
	}
	xids, err := b.src.TwoPhaseFiles(b.ctx, b.at)
	if err != nil {
		return fmt.Errorf("%w: pg_twophase: %w", ErrSource, err)
	}
	slices.Sort(xids)
	b.twoPhaseXids = xids
	if err := b.file("PG_VERSION", []byte(pgVersionText)); err != nil {
		return err
	}
	if err := b.configFiles(); err != nil {
		return err
	}
	if err := b.slrus(); err != nil {
		return err
	}
	for _, db := range dbs {
		if err := b.database(db); err != nil {
			return err
		}
	}
	if err := b.relations(); err != nil {
		return err
	}
	if err := b.twoPhase(); err != nil {
		return err
	}
	if !b.opts.Full {
		prev := "invalid"
		if b.opts.PrevLSN.IsValid() {
			prev = b.opts.PrevLSN.String()
		}
		signal := []byte("PREV LSN: " + prev)
		for _, name := range []string{"neon.signal", "zenith.signal"} {
			if err := b.file(name, signal); err != nil {
				return err
			}
		}
	}
	if err := b.walSegment(); err != nil {
		return err
	}
	return b.file("global/pg_control", control)
}

func checkTablespace(spc pgtypes.Oid) error {
	if spc != pgtypes.DefaultTablespaceOid && spc != pgtypes.GlobalTablespaceOid {
		return fmt.Errorf("%w: user tablespace %d", ErrUnsupported, spc)
	}
	return nil
}

func dbDir(db Database) string {
	if db.Spc == pgtypes.GlobalTablespaceOid {
		return "global"
	}
	return "base/" + strconv.FormatUint(uint64(db.Db), 10)
}

// dir writes a directory entry once.
func (b *builder) dir(name string) error {
	if b.dirs[name] {
		return nil
	}
	if parent := path.Dir(name); parent != "." {
		if err := b.dir(parent); err != nil {
			return err
		}
	}
	b.dirs[name] = true
	return b.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700, ModTime: b.now, Format: tar.FormatGNU,
	})
}

// header starts a regular file of size bytes, after its parent directory.
func (b *builder) header(name string, size int64) error {
	if err := b.ctx.Err(); err != nil {
		return err
	}
	if parent := path.Dir(name); parent != "." {
		if err := b.dir(parent); err != nil {
			return err
		}
	}
	b.result.Files++
	if err := b.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: b.now, Format: tar.FormatGNU,
	}); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (b *builder) file(name string, data []byte) error {
	if err := b.header(name, int64(len(data))); err != nil {
		return err
	}
	if _, err := b.tw.Write(data); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (b *builder) configFiles() error {
	for _, name := range configFileNames {
		data, ok := b.opts.ConfigFiles[name]
		if !ok {
			data = b.defaultConfig(name)
		}
		if err := b.file(name, data); err != nil {
			return err
		}
	}
	return nil
}

// defaultConfig returns a minimal configuration file. postgresql.conf
// allows as many prepared transactions as the primary did, and at least as
// many as are prepared: a server with fewer slots than pg_twophase files
// refuses to start.
func (b *builder) defaultConfig(name string) []byte {
	switch name {
	case "postgresql.conf":
		maxPrepared := max(int(b.info.MaxPreparedXacts), len(b.twoPhaseXids))
		return fmt.Appendf(nil, "# Written by Strata: no postgresql.conf was stored for this timeline.\n"+
			"listen_addresses = 'localhost'\nmax_prepared_transactions = %d\n", maxPrepared)
	case "postgresql.auto.conf":
		return []byte("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n")
	case "pg_hba.conf":
		return []byte("# Written by Strata: local connections only.\n" +
			"# TYPE  DATABASE     USER  ADDRESS       METHOD\n" +
			"local   all          all                 trust\n" +
			"host    all          all   127.0.0.1/32  trust\n" +
			"host    all          all   ::1/128       trust\n" +
			"local   replication  all                 trust\n" +
			"host    replication  all   127.0.0.1/32  trust\n" +
			"host    replication  all   ::1/128       trust\n")
	}
	return nil
}

// requiredSlruPage returns the SLRU page that a clean startup reads for
// kind (pg15-formats.md §4.5): the pg_xact page of nextXid, the offsets
// page of nextMulti, the members page of nextMultiOffset.
func (b *builder) requiredSlruPage(kind keyspace.SlruKind) uint32 {
	switch kind {
	case keyspace.SlruClog:
		return b.cp.NextXidXid() / clogXactsPerPage
	case keyspace.SlruMultiXactOffsets:
		return b.cp.NextMulti / multiXactOffsetsPerPage
	default:
		return b.cp.NextMultiOffset / multiXactMembersPerPage
	}
}

// slrus writes pg_xact and pg_multixact. The page a clean startup reads
// (requiredSlruPage) is added as zeros when the timeline does not hold
// it, as happens when no xid or multixact was assigned on it yet: zeros
// mean "in progress" for xids that do not exist, exactly what PostgreSQL
// would have written when it extended the SLRU (design D11).
func (b *builder) slrus() error {
	for _, kind := range []keyspace.SlruKind{keyspace.SlruClog, keyspace.SlruMultiXactMembers, keyspace.SlruMultiXactOffsets} {
		segs, err := b.src.SlruSegments(b.ctx, kind, b.at)
		if err != nil {
			return fmt.Errorf("%w: %s segments: %w", ErrSource, kind.Dir(), err)
		}
		need := b.requiredSlruPage(kind)
		needSeg := need / pgtypes.SLRUPagesPerSegment
		needLen := int(need%pgtypes.SLRUPagesPerSegment+1) * pgtypes.BLCKSZ
		stored := slices.Clone(segs)
		if !slices.Contains(segs, needSeg) {
			segs = append(segs, needSeg)
		}
		slices.Sort(segs)
		segs = slices.Compact(segs)
		for _, segno := range segs {
			name := fmt.Sprintf("%s/%04X", kind.Dir(), segno)
			var data []byte
			if slices.Contains(stored, segno) {
				data, err = b.src.SlruSegment(b.ctx, kind, segno, b.at)
				if err != nil {
					return fmt.Errorf("%w: %s: %w", ErrSource, name, err)
				}
			}
			if len(data)%pgtypes.BLCKSZ != 0 || len(data) > pgtypes.SLRUPagesPerSegment*pgtypes.BLCKSZ {
				return fmt.Errorf("%w: %s is %d bytes, want whole 8192-byte pages, at most 32", ErrCorrupt, name, len(data))
			}
			if segno == needSeg && len(data) < needLen {
				data = append(data, make([]byte, needLen-len(data))...)
			}
			if err := b.file(name, data); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *builder) database(db Database) error {
	if !db.HasRelmap {
		return nil
	}
	dir := dbDir(db)
	if db.Spc == pgtypes.DefaultTablespaceOid {
		// The global tablespace's PG_VERSION is the data directory's own.
		if err := b.file(dir+"/PG_VERSION", []byte(pgVersionText)); err != nil {
			return err
		}
	}
	relmap, err := b.src.RelMapFile(b.ctx, db.Spc, db.Db, b.at)
	if err != nil {
		return fmt.Errorf("%w: %s/pg_filenode.map: %w", ErrSource, dir, err)
	}
	if len(relmap) != relMapFileSize {
		return fmt.Errorf("%w: %s/pg_filenode.map is %d bytes, want %d", ErrCorrupt, dir, len(relmap), relMapFileSize)
	}
	return b.file(dir+"/pg_filenode.map", relmap)
}

// relations writes relation files. A relation with an init fork is
// unlogged: its other forks were never WAL-logged, so, as PostgreSQL's
// ResetUnloggedRelations does after a crash, only the init fork is kept and
// copied as the main fork. A fullbackup writes every other fork as stored;
// a Neon-style backup writes only the unlogged relations.
func (b *builder) relations() error {
	rels, err := b.src.Relations(b.ctx, b.at)
	if err != nil {
		return fmt.Errorf("%w: relations: %w", ErrSource, err)
	}
	slices.SortFunc(rels, compareRelTag)
	unlogged := make(map[pgtypes.RelFileNode]bool)
	for _, rel := range rels {
		if err := checkTablespace(rel.SpcNode); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if !rel.ForkNum.Valid() {
			return fmt.Errorf("%w: relation %s has fork %d", ErrCorrupt, rel, rel.ForkNum)
		}
		if rel.ForkNum == pgtypes.InitForkNum {
			unlogged[rel.Node()] = true
		}
	}
	for _, rel := range rels {
		if unlogged[rel.Node()] {
			if rel.ForkNum != pgtypes.InitForkNum {
				continue
			}
			if err := b.relation(rel, rel); err != nil {
				return err
			}
			if err := b.relation(rel.Node().Tag(pgtypes.MainForkNum), rel); err != nil {
				return err
			}
			continue
		}
		if b.opts.Full {
			if err := b.relation(rel, rel); err != nil {
				return err
			}
		}
	}
	return nil
}

func compareRelTag(x, y pgtypes.RelTag) int {
	return cmp.Or(cmp.Compare(x.SpcNode, y.SpcNode), cmp.Compare(x.DbNode, y.DbNode),
		cmp.Compare(x.RelNode, y.RelNode), cmp.Compare(x.ForkNum, y.ForkNum))
}

// relation writes the files of fork as (named by as, 1 GiB segments) with
// the pages of fork from.
func (b *builder) relation(as, from pgtypes.RelTag) error {
	nblocks, err := b.src.RelSize(b.ctx, from, b.at)
	if err != nil {
		return fmt.Errorf("%w: size of %s: %w", ErrSource, from, err)
	}
	if nblocks > pgtypes.MaxBlockNumber+1 {
		return fmt.Errorf("%w: relation %s has %d blocks", ErrCorrupt, from, nblocks)
	}
	for seg := uint32(0); ; seg++ {
		first := seg * b.relSegBlocks
		if first >= nblocks && (seg > 0 || nblocks > 0) {
			return nil
		}
		count := min(nblocks-first, b.relSegBlocks)
		name := as.SegmentPath(seg)
		if err := b.header(name, int64(count)*pgtypes.BLCKSZ); err != nil {
			return err
		}
		for blk := first; blk < first+count; blk++ {
			if (blk-first)%ctxCheckBlocks == 0 {
				if err := b.ctx.Err(); err != nil {
					return err
				}
			}
			if err := b.src.Block(b.ctx, from, blk, b.at, b.page); err != nil {
				return fmt.Errorf("%w: block %d of %s: %w", ErrSource, blk, from, err)
			}
			if _, err := b.tw.Write(b.page); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		b.result.RelationBlocks += uint64(count)
		if count == 0 {
			return nil
		}
	}
}

// twoPhase writes pg_twophase/<XID>: the stored state plus its CRC-32C.
func (b *builder) twoPhase() error {
	for _, xid := range b.twoPhaseXids {
		if xid > 0xFFFFFFFF {
			return fmt.Errorf("%w: prepared transaction xid %d does not fit PostgreSQL 15's 32 bits", ErrUnsupported, xid)
		}
		name := fmt.Sprintf("pg_twophase/%08X", xid)
		state, err := b.src.TwoPhaseFile(b.ctx, xid, b.at)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrSource, name, err)
		}
		if err := checkTwoPhaseState(state, uint32(xid)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		file := binary.LittleEndian.AppendUint32(slices.Clip(state), crc32.Checksum(state, castagnoli))
		if err := b.file(name, file); err != nil {
			return err
		}
	}
	return nil
}

// checkTwoPhaseState checks the xl_xact_prepare header against the state's
// length: PostgreSQL rejects the file at startup if they disagree.
func checkTwoPhaseState(state []byte, xid uint32) error {
	if len(state) < twoPhaseHeaderSize || len(state)%8 != 0 {
		return fmt.Errorf("%w: twophase state is %d bytes, want a multiple of 8 of at least %d", ErrCorrupt, len(state), twoPhaseHeaderSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(state[0:]); m != twoPhaseMagic {
		return fmt.Errorf("%w: twophase magic %08x, want %08x", ErrCorrupt, m, uint32(twoPhaseMagic))
	}
	if total := le.Uint32(state[4:]); int(total) != len(state)+4 {
		return fmt.Errorf("%w: twophase total_len %d, want %d (state + CRC)", ErrCorrupt, total, len(state)+4)
	}
	if got := le.Uint32(state[8:]); got != xid {
		return fmt.Errorf("%w: twophase state holds xid %d", ErrCorrupt, got)
	}
	return nil
}

func (b *builder) walSegment() error {
	if err := b.header(b.result.WALFile, int64(b.info.WALSegmentSize)); err != nil {
		return err
	}
	if err := WriteWALSegment(b.ctx, b.tw, b.info.SystemID, b.info.WALSegmentSize, b.cp, b.result.CheckpointLSN); err != nil {
		return fmt.Errorf("%s: %w", b.result.WALFile, err)
	}
	return nil
}

// countingWriter counts the bytes that reach w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
