package rmgr

import (
	"fmt"
	"strings"
)

// InfoMask is XLR_INFO_MASK: the low bits of xl_info that belong to the WAL
// machinery, not to the resource manager.
const InfoMask uint8 = 0x0F

// RmgrInfoMask is XLR_RMGR_INFO_MASK: the bits of xl_info a resource manager owns.
const RmgrInfoMask uint8 = 0xF0

// Body is the typed main data of one WAL record. Each record type this
// package decodes is its own struct (a pointer implements Body); everything
// else is a *GenericBody.
//
// Byte-slice fields (RelMapUpdate.Data, LogicalMessage.Message,
// XactPrepare.Raw, GenericBody.Data, ...) alias the main data passed to
// Decode: a caller that reuses that buffer must copy them first. Every other
// field is a copy.
type Body interface {
	// Rmgr returns the record's resource manager.
	Rmgr() ID
	// RecordName returns the record type as pg_waldump identifies it, e.g.
	// "COMMIT", "INSERT+INIT", "CHECKPOINT_ONLINE".
	RecordName() string
	// String returns a one-line description of the fields, modelled on
	// pg_waldump's desc text (without the record name).
	String() string

	isBody()
}

// Describe returns the record name followed by its description, the text
// pg_waldump prints after "desc: " (trailing spaces trimmed).
func Describe(b Body) string {
	if b == nil {
		return ""
	}
	d := b.String()
	if d == "" {
		return b.RecordName()
	}
	return strings.TrimRight(b.RecordName()+" "+d, " ")
}

// Decode decodes a record's main data into a typed body. info is the record's
// whole xl_info byte: the resource manager's bits are info & 0xF0, and the
// generic XLR_* bits in info & 0x0F are ignored.
//
// Records this package has no body type for decode as *GenericBody and are not
// an error. A record this package does type but whose main data is too short
// or holds impossible values returns a *DecodeError wrapping ErrTruncated or
// ErrCorrupt. Bytes after a fully decoded fixed-size body are tolerated (C
// code reads fields by offset and ignores them too).
//
// Decode never panics and never allocates more than a small multiple of
// len(mainData).
func Decode(id ID, info uint8, mainData []byte) (Body, error) {
	var (
		b   Body
		err error
	)
	switch id {
	case XLOG:
		b, err = decodeXLOG(info, mainData)
	case Transaction:
		b, err = decodeXact(info, mainData)
	case Storage:
		b, err = decodeSmgr(info, mainData)
	case CLOG:
		b, err = decodeCLOG(info, mainData)
	case Database:
		b, err = decodeDatabase(info, mainData)
	case MultiXact:
		b, err = decodeMultiXact(info, mainData)
	case RelMap:
		b, err = decodeRelMap(info, mainData)
	case Standby:
		b, err = decodeStandby(info, mainData)
	case Heap:
		b, err = decodeHeap(info, mainData)
	case Heap2:
		b, err = decodeHeap2(info, mainData)
	case CommitTs:
		b, err = decodeCommitTs(info, mainData)
	case LogicalMessage:
		b, err = decodeLogicalMessage(info, mainData)
	}
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = &GenericBody{ID: id, Info: info, Data: mainData}
	}
	return b, nil
}

// GenericBody is the body of every record this package does not type: other
// resource managers (indexes, sequences, custom rmgrs) and record types the
// ingest does not interpret. It is not an error to meet one.
type GenericBody struct {
	ID   ID
	Info uint8  // the whole xl_info byte
	Data []byte // main data; aliases Decode's input
}

func (*GenericBody) isBody() {}

// Rmgr implements Body.
func (g *GenericBody) Rmgr() ID { return g.ID }

// RecordName implements Body.
func (g *GenericBody) RecordName() string { return RecordName(g.ID, g.Info) }

// String implements Body.
func (g *GenericBody) String() string { return fmt.Sprintf("%d bytes of main data", len(g.Data)) }

// RecordName returns the name pg_waldump's rm_identify gives a record of
// resource manager id with xl_info info, or "UNKNOWN (%x)" as pg_waldump
// prints when rm_identify does not know it.
func RecordName(id ID, info uint8) string {
	op := info & RmgrInfoMask
	switch id {
	case Transaction:
		op &= XactOpMask
	case Generic:
		return "Generic"
	}
	if int(id) < len(recordNames) {
		if n, ok := recordNames[id][op]; ok {
			return n
		}
	}
	return fmt.Sprintf("UNKNOWN (%x)", op)
}

// recordNames mirrors the rm_identify functions of PostgreSQL 15
// (src/backend/access/rmgrdesc/*.c), keyed by info & 0xF0 (Transaction: by
// its opcode, info & 0x70).
var recordNames = [...]map[uint8]string{
	XLOG: {
		0x00: "CHECKPOINT_SHUTDOWN", 0x10: "CHECKPOINT_ONLINE", 0x20: "NOOP", 0x30: "NEXTOID",
		0x40: "SWITCH", 0x50: "BACKUP_END", 0x60: "PARAMETER_CHANGE", 0x70: "RESTORE_POINT",
		0x80: "FPW_CHANGE", 0x90: "END_OF_RECOVERY", 0xA0: "FPI_FOR_HINT", 0xB0: "FPI",
		0xD0: "OVERWRITE_CONTRECORD",
	},
	Transaction: {
		0x00: "COMMIT", 0x10: "PREPARE", 0x20: "ABORT", 0x30: "COMMIT_PREPARED",
		0x40: "ABORT_PREPARED", 0x50: "ASSIGNMENT", 0x60: "INVALIDATION",
	},
	Storage:  {0x10: "CREATE", 0x20: "TRUNCATE"},
	CLOG:     {0x00: "ZEROPAGE", 0x10: "TRUNCATE"},
	Database: {0x00: "CREATE_FILE_COPY", 0x10: "CREATE_WAL_LOG", 0x20: "DROP"},
	Tablespace: {
		0x00: "CREATE", 0x10: "DROP",
	},
	MultiXact: {0x00: "ZERO_OFF_PAGE", 0x10: "ZERO_MEM_PAGE", 0x20: "CREATE_ID", 0x30: "TRUNCATE_ID"},
	RelMap:    {0x00: "UPDATE"},
	Standby:   {0x00: "LOCK", 0x10: "RUNNING_XACTS", 0x20: "INVALIDATIONS"},
	Heap2: {
		0x00: "REWRITE", 0x10: "PRUNE", 0x20: "VACUUM", 0x30: "FREEZE_PAGE", 0x40: "VISIBLE",
		0x50: "MULTI_INSERT", 0xD0: "MULTI_INSERT+INIT", 0x60: "LOCK_UPDATED", 0x70: "NEW_CID",
	},
	Heap: {
		0x00: "INSERT", 0x80: "INSERT+INIT", 0x10: "DELETE", 0x20: "UPDATE", 0xA0: "UPDATE+INIT",
		0x30: "TRUNCATE", 0x40: "HOT_UPDATE", 0xC0: "HOT_UPDATE+INIT", 0x50: "HEAP_CONFIRM",
		0x60: "LOCK", 0x70: "INPLACE",
	},
	Btree: {
		0x00: "INSERT_LEAF", 0x10: "INSERT_UPPER", 0x20: "INSERT_META", 0x30: "SPLIT_L",
		0x40: "SPLIT_R", 0x50: "INSERT_POST", 0x60: "DEDUP", 0x70: "DELETE", 0x80: "UNLINK_PAGE",
		0x90: "UNLINK_PAGE_META", 0xA0: "NEWROOT", 0xB0: "MARK_PAGE_HALFDEAD", 0xC0: "VACUUM",
		0xD0: "REUSE_PAGE", 0xE0: "META_CLEANUP",
	},
	Hash: {
		0x00: "INIT_META_PAGE", 0x10: "INIT_BITMAP_PAGE", 0x20: "INSERT", 0x30: "ADD_OVFL_PAGE",
		0x40: "SPLIT_ALLOCATE_PAGE", 0x50: "SPLIT_PAGE", 0x60: "SPLIT_COMPLETE",
		0x70: "MOVE_PAGE_CONTENTS", 0x80: "SQUEEZE_PAGE", 0x90: "DELETE", 0xA0: "SPLIT_CLEANUP",
		0xB0: "UPDATE_META_PAGE", 0xC0: "VACUUM_ONE_PAGE",
	},
	Gin: {
		0x10: "CREATE_PTREE", 0x20: "INSERT", 0x30: "SPLIT", 0x40: "VACUUM_PAGE",
		0x90: "VACUUM_DATA_LEAF_PAGE", 0x50: "DELETE_PAGE", 0x60: "UPDATE_META_PAGE",
		0x70: "INSERT_LISTPAGE", 0x80: "DELETE_LISTPAGE",
	},
	Gist: {
		0x00: "PAGE_UPDATE", 0x10: "DELETE", 0x20: "PAGE_REUSE", 0x30: "PAGE_SPLIT",
		0x60: "PAGE_DELETE", 0x70: "ASSIGN_LSN",
	},
	Sequence: {0x00: "LOG"},
	SPGist: {
		0x10: "ADD_LEAF", 0x20: "MOVE_LEAFS", 0x30: "ADD_NODE", 0x40: "SPLIT_TUPLE",
		0x50: "PICKSPLIT", 0x60: "VACUUM_LEAF", 0x70: "VACUUM_ROOT", 0x80: "VACUUM_REDIRECT",
	},
	BRIN: {
		0x00: "CREATE_INDEX", 0x10: "INSERT", 0x90: "INSERT+INIT", 0x20: "UPDATE", 0xA0: "UPDATE+INIT",
		0x30: "SAMEPAGE_UPDATE", 0x40: "REVMAP_EXTEND", 0x50: "DESUMMARIZE",
	},
	CommitTs:          {0x00: "ZEROPAGE", 0x10: "TRUNCATE"},
	ReplicationOrigin: {0x00: "SET", 0x10: "DROP"},
	Generic:           {},
	LogicalMessage:    {0x00: "MESSAGE"},
}
