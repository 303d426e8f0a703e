package importer

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stratadb/strata/internal/lsn"
)

// backupLabel is what the importer needs from a backup_label file
// (PostgreSQL 15 do_pg_backup_start writes it).
type backupLabel struct {
	// Start is START WAL LOCATION: the REDO point of the backup checkpoint,
	// where WAL replay must begin.
	Start lsn.LSN
	// Checkpoint is CHECKPOINT LOCATION: the backup checkpoint record.
	Checkpoint lsn.LSN
	// Timeline is START TIMELINE (1 when the line is absent, as before
	// PostgreSQL 11).
	Timeline uint32
	// FromStandby: BACKUP FROM: standby.
	FromStandby bool
}

// maxBackupLabelSize bounds the file read into memory.
const maxBackupLabelSize = 64 << 10

// parseBackupLabel parses a backup_label. Unknown lines are ignored; START
// WAL LOCATION and CHECKPOINT LOCATION are required, and the checkpoint
// cannot precede its redo point.
func parseBackupLabel(b []byte) (backupLabel, error) {
	l := backupLabel{Timeline: 1}
	var haveStart, haveCheckpoint bool
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(strings.TrimRight(line, "\r"), ": ")
		if !ok {
			continue
		}
		switch key {
		case "START WAL LOCATION":
			// "0/2000028 (file 000000010000000000000002)"
			f, _, _ := strings.Cut(val, " ")
			v, err := lsn.Parse(f)
			if err != nil {
				return backupLabel{}, fmt.Errorf("%w: backup_label START WAL LOCATION %q: %v", ErrCorrupt, val, err)
			}
			l.Start, haveStart = v, true
		case "CHECKPOINT LOCATION":
			v, err := lsn.Parse(strings.TrimSpace(val))
			if err != nil {
				return backupLabel{}, fmt.Errorf("%w: backup_label CHECKPOINT LOCATION %q: %v", ErrCorrupt, val, err)
			}
			l.Checkpoint, haveCheckpoint = v, true
		case "START TIMELINE":
			v, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
			if err != nil || v == 0 {
				return backupLabel{}, fmt.Errorf("%w: backup_label START TIMELINE %q", ErrCorrupt, val)
			}
			l.Timeline = uint32(v)
		case "BACKUP FROM":
			l.FromStandby = strings.TrimSpace(val) == "standby"
		}
	}
	switch {
	case !haveStart:
		return backupLabel{}, fmt.Errorf("%w: backup_label has no START WAL LOCATION", ErrCorrupt)
	case !haveCheckpoint:
		return backupLabel{}, fmt.Errorf("%w: backup_label has no CHECKPOINT LOCATION", ErrCorrupt)
	case !l.Start.IsValid() || l.Checkpoint < l.Start:
		return backupLabel{}, fmt.Errorf("%w: backup_label checkpoint %s precedes its redo point %s", ErrCorrupt, l.Checkpoint, l.Start)
	}
	return l, nil
}
