package basebackup

import (
	"context"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/internal/pgwal/rmgr"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// Database is one entry of the timeline's database directory: a
// (tablespace, database) pair. The global tablespace appears as
// (GlobalTablespaceOid, 0). HasRelmap says a relmapper file is stored for
// it; a database whose creation is still in progress at the LSN has none.
type Database struct {
	Spc, Db   pgtypes.Oid
	HasRelmap bool
}

// Source is the timeline state a backup reads, every method answering as
// of LSN at. It is declared here, by its consumer; the timeline implements
// it. Methods may be called from one goroutine only, in any order; dst and
// returned slices are not retained by either side after the call returns.
type Source interface {
	// Databases lists the database directory at at.
	Databases(ctx context.Context, at lsn.LSN) ([]Database, error)
	// Relations lists every relation fork that exists at at.
	Relations(ctx context.Context, at lsn.LSN) ([]pgtypes.RelTag, error)
	// RelSize is the fork's size in blocks at at.
	RelSize(ctx context.Context, rel pgtypes.RelTag, at lsn.LSN) (uint32, error)
	// Block materializes block blkno of rel at at into dst (BLCKSZ bytes).
	// blkno is below RelSize(rel, at): the caller checked it, so the source
	// need not look the relation up again for every block.
	Block(ctx context.Context, rel pgtypes.RelTag, blkno uint32, at lsn.LSN, dst []byte) error
	// RelMapFile is the 512-byte pg_filenode.map of (spc, db).
	RelMapFile(ctx context.Context, spc, db pgtypes.Oid, at lsn.LSN) ([]byte, error)
	// SlruSegments lists the segment numbers of an SLRU that exist at at.
	SlruSegments(ctx context.Context, kind keyspace.SlruKind, at lsn.LSN) ([]uint32, error)
	// SlruSegment is the content of one segment: whole 8192-byte pages,
	// at most 32 of them.
	SlruSegment(ctx context.Context, kind keyspace.SlruKind, segno uint32, at lsn.LSN) ([]byte, error)
	// TwoPhaseFiles lists the xids of transactions prepared and not yet
	// finished at at.
	TwoPhaseFiles(ctx context.Context, at lsn.LSN) ([]uint64, error)
	// TwoPhaseFile is the state of a prepared transaction: the main data
	// of its XLOG_XACT_PREPARE record, without the trailing CRC that the
	// on-disk file carries (the backup appends it).
	TwoPhaseFile(ctx context.Context, xid uint64, at lsn.LSN) ([]byte, error)
	// ControlFile is the pg_control image stored at import or initdb.
	ControlFile(ctx context.Context, at lsn.LSN) ([]byte, error)
	// Checkpoint is the latest checkpoint as advanced by the WAL up to at
	// (nextXid, nextOid, nextMulti, oldest* ...). Its Redo is ignored.
	Checkpoint(ctx context.Context, at lsn.LSN) (rmgr.CheckPoint, error)
}
