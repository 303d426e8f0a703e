package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
)

const (
	// FileName is the name of the metadata file inside a timeline directory.
	FileName = "metadata"
	// Version is the format version this package writes.
	Version = 1
	// Size is the exact length of a version 1 file.
	Size = 80

	magic = "STLM"

	offVersion     = 4
	offLength      = 6
	offAncestorID  = 8
	offAncestorLSN = 24
	offDiskLSN     = 32
	offPrevLSN     = 40
	offStartLSN    = 48
	offGCCutoffLSN = 56
	offPGVersion   = 64
	offCreatedAt   = 68
	offCRC         = 76
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Metadata is what a timeline persists about itself.
type Metadata struct {
	// AncestorTimeline is the timeline this one branched from; zero for a
	// root timeline.
	AncestorTimeline ids.TimelineID
	// AncestorLSN is the branch point: reads below it go to the ancestor.
	// Valid exactly when AncestorTimeline is set.
	AncestorLSN lsn.LSN
	// DiskConsistentLSN: every record below it is in this timeline's layer
	// files. After a restart, WAL is re-ingested from here.
	DiskConsistentLSN lsn.LSN
	// PrevRecordLSN is the start of the last record before
	// DiskConsistentLSN, needed to write a checkpoint's xl_prev; Invalid
	// when unknown.
	PrevRecordLSN lsn.LSN
	// StartLSN is the initdb/import LSN: the timeline's history begins there
	// (Neon's initdb_lsn).
	StartLSN lsn.LSN
	// LatestGCCutoffLSN: GC may have removed history below it; reads and
	// branch points below it are refused.
	LatestGCCutoffLSN lsn.LSN
	// PGVersion is the PostgreSQL major version (15).
	PGVersion uint32
	// CreatedAt is when the timeline was created, stored with nanosecond
	// precision in UTC.
	CreatedAt time.Time
}

// HasAncestor reports whether the timeline is a branch.
func (m Metadata) HasAncestor() bool { return !m.AncestorTimeline.IsZero() }

// Validate reports the first reason m cannot be stored, wrapped in
// ErrInvalid.
func (m Metadata) Validate() error {
	if err := m.check(); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, err)
	}
	return nil
}

// check holds the value rules shared by Encode and Decode, so that whatever
// Encode accepts Decode accepts too.
func (m Metadata) check() error {
	if m.HasAncestor() != m.AncestorLSN.IsValid() {
		return fmt.Errorf("ancestor timeline %s with ancestor LSN %s: both must be set or both unset", m.AncestorTimeline, m.AncestorLSN)
	}
	if m.PGVersion == 0 {
		return errors.New("PostgreSQL version is 0")
	}
	return nil
}

// Encode returns the version 1 bytes of m.
func Encode(m Metadata) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, Size)
	copy(b, magic)
	le := binary.LittleEndian
	le.PutUint16(b[offVersion:], Version)
	le.PutUint16(b[offLength:], Size)
	copy(b[offAncestorID:], m.AncestorTimeline[:])
	le.PutUint64(b[offAncestorLSN:], uint64(m.AncestorLSN))
	le.PutUint64(b[offDiskLSN:], uint64(m.DiskConsistentLSN))
	le.PutUint64(b[offPrevLSN:], uint64(m.PrevRecordLSN))
	le.PutUint64(b[offStartLSN:], uint64(m.StartLSN))
	le.PutUint64(b[offGCCutoffLSN:], uint64(m.LatestGCCutoffLSN))
	le.PutUint32(b[offPGVersion:], m.PGVersion)
	var nanos int64
	if !m.CreatedAt.IsZero() {
		nanos = m.CreatedAt.UnixNano()
	}
	le.PutUint64(b[offCreatedAt:], uint64(nanos))
	le.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
	return b, nil
}

// Decode parses version 1 bytes. Every error wraps ErrCorrupt; Read adds the
// file name.
func Decode(b []byte) (Metadata, error) {
	var m Metadata
	if len(b) != Size {
		return m, fmt.Errorf("%w: %d bytes, want %d", ErrCorrupt, len(b), Size)
	}
	if string(b[:len(magic)]) != magic {
		return m, fmt.Errorf("%w: bad magic %q, want %q", ErrCorrupt, b[:len(magic)], magic)
	}
	le := binary.LittleEndian
	if v := le.Uint16(b[offVersion:]); v != Version {
		return m, fmt.Errorf("%w: unsupported format version %d, want %d", ErrCorrupt, v, Version)
	}
	if n := le.Uint16(b[offLength:]); n != Size {
		return m, fmt.Errorf("%w: length field %d, want %d", ErrCorrupt, n, Size)
	}
	if got, want := le.Uint32(b[offCRC:]), crc32.Checksum(b[:offCRC], castagnoli); got != want {
		return m, fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	copy(m.AncestorTimeline[:], b[offAncestorID:offAncestorLSN])
	m.AncestorLSN = lsn.LSN(le.Uint64(b[offAncestorLSN:]))
	m.DiskConsistentLSN = lsn.LSN(le.Uint64(b[offDiskLSN:]))
	m.PrevRecordLSN = lsn.LSN(le.Uint64(b[offPrevLSN:]))
	m.StartLSN = lsn.LSN(le.Uint64(b[offStartLSN:]))
	m.LatestGCCutoffLSN = lsn.LSN(le.Uint64(b[offGCCutoffLSN:]))
	m.PGVersion = le.Uint32(b[offPGVersion:])
	if nanos := int64(le.Uint64(b[offCreatedAt:])); nanos != 0 {
		m.CreatedAt = time.Unix(0, nanos).UTC()
	}
	if err := m.check(); err != nil {
		return Metadata{}, fmt.Errorf("%w: %s", ErrCorrupt, err)
	}
	return m, nil
}

// Path returns the metadata file's path inside timeline directory dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Write atomically replaces dir/metadata with m (see durable.WriteFile). When
// it returns nil the new content and its directory entry are on disk.
func Write(dir string, m Metadata) error {
	b, err := Encode(m)
	if err != nil {
		return fmt.Errorf("metadata: writing %s: %w", Path(dir), err)
	}
	if err := durable.WriteFile(Path(dir), b, 0o600); err != nil {
		return fmt.Errorf("metadata: writing %s: %w", Path(dir), err)
	}
	return nil
}

// Read reads and decodes dir/metadata. A missing file is an error wrapping
// fs.ErrNotExist; bad content an error wrapping ErrCorrupt. Both name the
// file.
func Read(dir string) (Metadata, error) {
	path := Path(dir)
	b, err := os.ReadFile(path)
	if err != nil {
		return Metadata{}, fmt.Errorf("metadata: reading %s: %w", path, err)
	}
	m, err := Decode(b)
	if err != nil {
		return Metadata{}, fmt.Errorf("metadata: file %s: %w", path, err)
	}
	return m, nil
}
