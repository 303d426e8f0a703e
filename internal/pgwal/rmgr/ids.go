package rmgr

import "strconv"

// ID is a resource manager id (RmgrId), the xl_rmid byte of a WAL record.
type ID uint8

// Resource manager ids of PostgreSQL 15 (src/include/access/rmgrlist.h).
const (
	XLOG              ID = 0
	Transaction       ID = 1
	Storage           ID = 2
	CLOG              ID = 3
	Database          ID = 4
	Tablespace        ID = 5
	MultiXact         ID = 6
	RelMap            ID = 7
	Standby           ID = 8
	Heap2             ID = 9
	Heap              ID = 10
	Btree             ID = 11
	Hash              ID = 12
	Gin               ID = 13
	Gist              ID = 14
	Sequence          ID = 15
	SPGist            ID = 16
	BRIN              ID = 17
	CommitTs          ID = 18
	ReplicationOrigin ID = 19
	Generic           ID = 20
	LogicalMessage    ID = 21

	// MaxBuiltin is the highest built-in id (RM_MAX_BUILTIN_ID).
	MaxBuiltin = LogicalMessage
	// MinCustom is the first id reserved for custom resource managers (RM_MIN_CUSTOM_ID).
	MinCustom ID = 128
	// Experimental is RM_EXPERIMENTAL_ID.
	Experimental ID = 128
)

var names = [...]string{
	XLOG:              "XLOG",
	Transaction:       "Transaction",
	Storage:           "Storage",
	CLOG:              "CLOG",
	Database:          "Database",
	Tablespace:        "Tablespace",
	MultiXact:         "MultiXact",
	RelMap:            "RelMap",
	Standby:           "Standby",
	Heap2:             "Heap2",
	Heap:              "Heap",
	Btree:             "Btree",
	Hash:              "Hash",
	Gin:               "Gin",
	Gist:              "Gist",
	Sequence:          "Sequence",
	SPGist:            "SPGist",
	BRIN:              "BRIN",
	CommitTs:          "CommitTs",
	ReplicationOrigin: "ReplicationOrigin",
	Generic:           "Generic",
	LogicalMessage:    "LogicalMessage",
}

// String returns the name pg_waldump prints for the resource manager. Custom
// ids print as "custom%03d", as pg_waldump does for an unloaded custom rmgr;
// ids in the unused range 22..127 print as "unknown%d".
func (id ID) String() string {
	if int(id) < len(names) {
		return names[id]
	}
	if id >= MinCustom {
		s := strconv.Itoa(int(id))
		for len(s) < 3 {
			s = "0" + s
		}
		return "custom" + s
	}
	return "unknown" + strconv.Itoa(int(id))
}

// IsBuiltin reports whether id is a resource manager PostgreSQL 15 ships.
func (id ID) IsBuiltin() bool { return id <= MaxBuiltin }
