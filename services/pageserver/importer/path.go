package importer

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver/keyspace"
)

// fileKind classifies a data-directory path.
type fileKind uint8

const (
	kindIgnore      fileKind = iota // not imported (config, PG_VERSION, stats, pg_wal …)
	kindDir                         // a directory entry (base/<db> registers a database)
	kindRel                         // a relation file segment
	kindSlru                        // an SLRU segment
	kindTwoPhase                    // pg_twophase/<XID>
	kindRelMap                      // pg_filenode.map
	kindControl                     // global/pg_control
	kindBackupLabel                 // backup_label
	kindTablespace                  // anything under pg_tblspc/<oid>: unsupported
)

// dataFile is what a path names.
type dataFile struct {
	kind fileKind
	rel  pgtypes.RelTag // kindRel; kindRelMap and kindDir use SpcNode/DbNode
	seg  uint32         // kindRel: segment number (.N); kindSlru: segment number
	slru keyspace.SlruKind
	xid  uint32 // kindTwoPhase
	db   bool   // kindDir: base/<db> (a database directory)
}

// classify maps a path relative to the data directory (tar entry name,
// "./" prefix and trailing "/" allowed) to what it holds. It never fails on
// names it does not know: those are ignored, as PostgreSQL ignores them.
func classify(name string, isDir bool) dataFile {
	name = strings.TrimPrefix(path.Clean("/"+strings.TrimSuffix(name, "/")), "/")
	parts := strings.Split(name, "/")
	if isDir {
		if len(parts) == 2 && parts[0] == "base" {
			if db, ok := parseOid(parts[1]); ok {
				return dataFile{kind: kindDir, db: true, rel: pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: db}}
			}
		}
		if len(parts) >= 2 && parts[0] == "pg_tblspc" {
			return dataFile{kind: kindTablespace}
		}
		return dataFile{kind: kindDir}
	}
	switch {
	case len(parts) == 1 && parts[0] == "backup_label":
		return dataFile{kind: kindBackupLabel}
	case len(parts) >= 2 && parts[0] == "pg_tblspc":
		return dataFile{kind: kindTablespace}
	case len(parts) == 2 && parts[0] == "global":
		switch parts[1] {
		case "pg_control":
			return dataFile{kind: kindControl}
		case "pg_filenode.map":
			return dataFile{kind: kindRelMap, rel: pgtypes.RelTag{SpcNode: pgtypes.GlobalTablespaceOid}}
		}
		if f, ok := parseRelFile(parts[1]); ok {
			f.rel.SpcNode = pgtypes.GlobalTablespaceOid
			return f
		}
	case len(parts) == 3 && parts[0] == "base":
		db, ok := parseOid(parts[1])
		if !ok {
			return dataFile{}
		}
		if parts[2] == "pg_filenode.map" {
			return dataFile{kind: kindRelMap, rel: pgtypes.RelTag{SpcNode: pgtypes.DefaultTablespaceOid, DbNode: db}}
		}
		if f, ok := parseRelFile(parts[2]); ok {
			f.rel.SpcNode, f.rel.DbNode = pgtypes.DefaultTablespaceOid, db
			return f
		}
	case len(parts) == 2 && parts[0] == "pg_xact":
		return slruFile(keyspace.SlruClog, parts[1])
	case len(parts) == 3 && parts[0] == "pg_multixact" && parts[1] == "offsets":
		return slruFile(keyspace.SlruMultiXactOffsets, parts[2])
	case len(parts) == 3 && parts[0] == "pg_multixact" && parts[1] == "members":
		return slruFile(keyspace.SlruMultiXactMembers, parts[2])
	case len(parts) == 2 && parts[0] == "pg_twophase":
		if len(parts[1]) == 8 && isUpperHex(parts[1]) {
			x, _ := strconv.ParseUint(parts[1], 16, 32)
			return dataFile{kind: kindTwoPhase, xid: uint32(x)}
		}
	}
	return dataFile{}
}

// parseRelFile parses "<relfilenode>[_fsm|_vm|_init][.<segno>]". Temporary
// relations ("t3_16384") and other names do not match.
func parseRelFile(s string) (dataFile, bool) {
	f := dataFile{kind: kindRel}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		seg, err := strconv.ParseUint(s[i+1:], 10, 32)
		if err != nil || seg == 0 || s[i+1] == '0' || seg > maxRelSegments {
			return dataFile{}, false
		}
		f.seg = uint32(seg)
		s = s[:i]
	}
	fork := pgtypes.MainForkNum
	if i := strings.IndexByte(s, '_'); i >= 0 {
		switch s[i+1:] {
		case "fsm":
			fork = pgtypes.FSMForkNum
		case "vm":
			fork = pgtypes.VisibilityMapForkNum
		case "init":
			fork = pgtypes.InitForkNum
		default:
			return dataFile{}, false
		}
		s = s[:i]
	}
	node, ok := parseOid(s)
	if !ok {
		return dataFile{}, false
	}
	f.rel.RelNode, f.rel.ForkNum = node, fork
	return f, true
}

// maxRelSegments bounds the segment number so that block numbers stay
// below InvalidBlockNumber (2^32-1 blocks of 8 KiB = 32 TiB per fork).
const maxRelSegments = (1<<32 - 1) / pgtypes.RelSegSize

// parseOid parses a positive decimal OID without sign or leading zeros.
func parseOid(s string) (pgtypes.Oid, bool) {
	if s == "" || s[0] == '0' || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return pgtypes.Oid(v), true
}

func slruFile(kind keyspace.SlruKind, name string) dataFile {
	// SlruScanDirectory accepts 4 to 6 uppercase hex digits in PG15.
	if len(name) < 4 || len(name) > 6 || !isUpperHex(name) {
		return dataFile{}
	}
	seg, _ := strconv.ParseUint(name, 16, 32)
	return dataFile{kind: kindSlru, slru: kind, seg: uint32(seg)}
}

func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return s != ""
}

// String names the file for error messages.
func (f dataFile) String() string {
	switch f.kind {
	case kindRel:
		return fmt.Sprintf("relation %s segment %d", f.rel, f.seg)
	case kindSlru:
		return fmt.Sprintf("%s segment %04X", f.slru.Dir(), f.seg)
	case kindTwoPhase:
		return fmt.Sprintf("twophase file of xid %d", f.xid)
	}
	return fmt.Sprintf("file kind %d", f.kind)
}
