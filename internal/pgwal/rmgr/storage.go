package rmgr

import (
	"fmt"
	"strings"

	"github.com/stratadb/strata/internal/pgtypes"
)

// Storage (smgr) record types (src/include/catalog/storage_xlog.h).
const (
	InfoSmgrCreate   uint8 = 0x10
	InfoSmgrTruncate uint8 = 0x20
)

// SMGR_TRUNCATE flags: which forks an SmgrTruncate cuts.
const (
	SmgrTruncateHeap uint32 = 0x1
	SmgrTruncateVM   uint32 = 0x2
	SmgrTruncateFSM  uint32 = 0x4
	SmgrTruncateAll         = SmgrTruncateHeap | SmgrTruncateVM | SmgrTruncateFSM
)

// Database record types (src/include/commands/dbcommands_xlog.h).
const (
	InfoDBCreateFileCopy uint8 = 0x00
	InfoDBCreateWalLog   uint8 = 0x10
	InfoDBDrop           uint8 = 0x20
)

// SmgrCreate is Storage CREATE (xl_smgr_create): fork Fork of Rel is created empty.
type SmgrCreate struct {
	Rel  pgtypes.RelFileNode
	Fork pgtypes.ForkNumber
}

func (*SmgrCreate) isBody() {}

// Rmgr implements Body.
func (*SmgrCreate) Rmgr() ID { return Storage }

// RecordName implements Body.
func (*SmgrCreate) RecordName() string { return "CREATE" }

// Tag returns the created fork's RelTag.
func (b *SmgrCreate) Tag() pgtypes.RelTag { return b.Rel.Tag(b.Fork) }

// String implements Body.
func (b *SmgrCreate) String() string { return b.Tag().Path() }

// SmgrTruncate is Storage TRUNCATE (xl_smgr_truncate): the forks named by
// Flags are cut so that the main fork keeps Blkno blocks; the FSM and VM cut
// points derive from that heap block count.
type SmgrTruncate struct {
	Blkno uint32
	Rel   pgtypes.RelFileNode
	Flags uint32
}

func (*SmgrTruncate) isBody() {}

// Rmgr implements Body.
func (*SmgrTruncate) Rmgr() ID { return Storage }

// RecordName implements Body.
func (*SmgrTruncate) RecordName() string { return "TRUNCATE" }

// TruncatesHeap reports whether the main fork is cut.
func (b *SmgrTruncate) TruncatesHeap() bool { return b.Flags&SmgrTruncateHeap != 0 }

// TruncatesVM reports whether the visibility-map fork is cut.
func (b *SmgrTruncate) TruncatesVM() bool { return b.Flags&SmgrTruncateVM != 0 }

// TruncatesFSM reports whether the free-space-map fork is cut.
func (b *SmgrTruncate) TruncatesFSM() bool { return b.Flags&SmgrTruncateFSM != 0 }

// String implements Body.
func (b *SmgrTruncate) String() string {
	return fmt.Sprintf("%s to %d blocks flags %d", b.Rel.Tag(pgtypes.MainForkNum).Path(), b.Blkno, int32(b.Flags))
}

func decodeSmgr(info uint8, data []byte) (Body, error) {
	op := info & RmgrInfoMask
	c := newCursor(Storage, info, data)
	var b Body
	switch op {
	case InfoSmgrCreate:
		rel := c.relFileNode("rnode")
		fork := c.i32("forkNum")
		if c.err == nil && (fork < 0 || fork > int32(pgtypes.MaxForkNum)) {
			c.fail(ErrCorrupt, "forkNum %d out of range", fork)
		}
		b = &SmgrCreate{Rel: rel, Fork: pgtypes.ForkNumber(fork)}
	case InfoSmgrTruncate:
		t := &SmgrTruncate{}
		t.Blkno = c.u32("blkno")
		t.Rel = c.relFileNode("rnode")
		t.Flags = c.u32("flags")
		b = t
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}

// DBCreateFileCopy is Database CREATE_FILE_COPY: directory
// SrcTablespaceID/SrcDbID is copied whole to TablespaceID/DbID.
type DBCreateFileCopy struct {
	DbID            pgtypes.Oid
	TablespaceID    pgtypes.Oid
	SrcDbID         pgtypes.Oid
	SrcTablespaceID pgtypes.Oid
}

func (*DBCreateFileCopy) isBody() {}

// Rmgr implements Body.
func (*DBCreateFileCopy) Rmgr() ID { return Database }

// RecordName implements Body.
func (*DBCreateFileCopy) RecordName() string { return "CREATE_FILE_COPY" }

// String implements Body.
func (b *DBCreateFileCopy) String() string {
	return fmt.Sprintf("copy dir %d/%d to %d/%d", b.SrcTablespaceID, b.SrcDbID, b.TablespaceID, b.DbID)
}

// DBCreateWalLog is Database CREATE_WAL_LOG: only the directory (and its
// PG_VERSION) is created; the contents follow as ordinary WAL.
type DBCreateWalLog struct {
	DbID         pgtypes.Oid
	TablespaceID pgtypes.Oid
}

func (*DBCreateWalLog) isBody() {}

// Rmgr implements Body.
func (*DBCreateWalLog) Rmgr() ID { return Database }

// RecordName implements Body.
func (*DBCreateWalLog) RecordName() string { return "CREATE_WAL_LOG" }

// String implements Body.
func (b *DBCreateWalLog) String() string {
	return fmt.Sprintf("create dir %d/%d", b.TablespaceID, b.DbID)
}

// DBDrop is Database DROP: the database's directory in each tablespace is removed.
type DBDrop struct {
	DbID          pgtypes.Oid
	TablespaceIDs []pgtypes.Oid
}

func (*DBDrop) isBody() {}

// Rmgr implements Body.
func (*DBDrop) Rmgr() ID { return Database }

// RecordName implements Body.
func (*DBDrop) RecordName() string { return "DROP" }

// String implements Body.
func (b *DBDrop) String() string {
	var s strings.Builder
	s.WriteString("dir")
	for _, ts := range b.TablespaceIDs {
		fmt.Fprintf(&s, " %d/%d", ts, b.DbID)
	}
	return s.String()
}

func decodeDatabase(info uint8, data []byte) (Body, error) {
	op := info & RmgrInfoMask
	c := newCursor(Database, info, data)
	var b Body
	switch op {
	case InfoDBCreateFileCopy:
		d := &DBCreateFileCopy{}
		d.DbID = c.oid("db_id")
		d.TablespaceID = c.oid("tablespace_id")
		d.SrcDbID = c.oid("src_db_id")
		d.SrcTablespaceID = c.oid("src_tablespace_id")
		b = d
	case InfoDBCreateWalLog:
		d := &DBCreateWalLog{}
		d.DbID = c.oid("db_id")
		d.TablespaceID = c.oid("tablespace_id")
		b = d
	case InfoDBDrop:
		d := &DBDrop{}
		d.DbID = c.oid("db_id")
		n := c.count("tablespace_ids", 4)
		if ids := c.u32s(n, "tablespace_ids"); ids != nil {
			d.TablespaceIDs = make([]pgtypes.Oid, n)
			for i, v := range ids {
				d.TablespaceIDs[i] = pgtypes.Oid(v)
			}
		}
		b = d
	default:
		return nil, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return b, nil
}
