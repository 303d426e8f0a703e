package timelines

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/lsn"
)

// stateFileName is the attachments file inside the state directory.
const stateFileName = "attachments.json"

// stateVersion is the version of the attachments file format.
const stateVersion = 1

// stateFile is the on-disk form (version 1). It holds the primaries'
// connection strings, so it is written with mode 0600 and never logged.
type stateFile struct {
	Version   int             `json:"version"`
	Timelines []stateTimeline `json:"timelines"`
}

type stateTimeline struct {
	TenantID        string  `json:"tenant_id"`
	TimelineID      string  `json:"timeline_id"`
	SlotName        string  `json:"slot_name"`
	PrimaryConnInfo string  `json:"primary_conninfo"`
	Import          bool    `json:"import,omitempty"`
	Imported        bool    `json:"imported,omitempty"`
	StartLSN        lsn.LSN `json:"start_lsn"`
}

// loadState reads the attachments file; a missing file is no attachment.
func loadState(dir string) ([]Attachment, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrState, filepath.Join(dir, stateFileName), err)
	}
	if sf.Version != stateVersion {
		return nil, fmt.Errorf("%w: %s has version %d, this bridge reads version %d", ErrState, filepath.Join(dir, stateFileName), sf.Version, stateVersion)
	}
	out := make([]Attachment, 0, len(sf.Timelines))
	for _, t := range sf.Timelines {
		a := Attachment{TenantID: t.TenantID, TimelineID: t.TimelineID, SlotName: t.SlotName, PrimaryConnInfo: t.PrimaryConnInfo, Import: t.Import, Imported: t.Imported, StartLSN: t.StartLSN}
		if err := a.validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrState, filepath.Join(dir, stateFileName), err)
		}
		out = append(out, a)
	}
	return out, nil
}

// saveState replaces the attachments file atomically (internal/durable).
func saveState(dir string, atts []Attachment) error {
	sf := stateFile{Version: stateVersion, Timelines: []stateTimeline{}}
	for _, a := range atts {
		sf.Timelines = append(sf.Timelines, stateTimeline{TenantID: a.TenantID, TimelineID: a.TimelineID, SlotName: a.SlotName, PrimaryConnInfo: a.PrimaryConnInfo, Import: a.Import, Imported: a.Imported, StartLSN: a.StartLSN})
	}
	data, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, stateFileName), append(data, '\n'), 0o600)
}
