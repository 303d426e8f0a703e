package replication

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stratadb/strata/internal/lsn"
)

// parseTimelineHistory parses a PostgreSQL timeline history file (what
// TIMELINE_HISTORY returns): one line per ancestor timeline,
// "<timeline>\t<switch point>\t<reason>", where the switch point is the LSN
// at which that timeline ended; blank lines and lines starting with '#'
// are ignored (PostgreSQL's readTimeLineHistory). It returns the switch
// point of every ancestor timeline.
func parseTimelineHistory(content []byte) (map[uint32]lsn.LSN, error) {
	ends := make(map[uint32]lsn.LSN)
	for i, line := range bytes.Split(content, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fields := bytes.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("line %d: %q: want a timeline and a switch point", i+1, line)
		}
		tli, err := strconv.ParseUint(string(fields[0]), 10, 32)
		if err != nil || tli == 0 {
			return nil, fmt.Errorf("line %d: timeline %q", i+1, fields[0])
		}
		end, err := lsn.Parse(string(fields[1]))
		if err != nil {
			return nil, fmt.Errorf("line %d: switch point %q: %w", i+1, fields[1], err)
		}
		if _, dup := ends[uint32(tli)]; dup {
			return nil, fmt.Errorf("line %d: timeline %d listed twice", i+1, tli)
		}
		ends[uint32(tli)] = end
	}
	return ends, nil
}

// checkTimelineSwitch is called when the primary is on timeline to and the
// spool holds WAL of the older timeline from, up to spooled: the switch
// can be followed only if from ended at or after spooled in to's history.
func checkTimelineSwitch(ctx context.Context, conn *pgconn.PgConn, from, to uint32, spooled lsn.LSN) (lsn.LSN, error) {
	h, err := pglogrepl.TimelineHistory(ctx, conn, int32(to))
	if err != nil {
		return lsn.Invalid, fmt.Errorf("replication: TIMELINE_HISTORY %d: %w", to, err)
	}
	ends, err := parseTimelineHistory(h.Content)
	if err != nil {
		return lsn.Invalid, fmt.Errorf("replication: history file %s of timeline %d: %w", h.FileName, to, err)
	}
	end, ok := ends[from]
	if !ok {
		return lsn.Invalid, fmt.Errorf("%w: the primary is on timeline %d, whose history (%s) does not contain timeline %d of the spooled WAL; re-attach the timeline with import = true",
			ErrTimelineDiverged, to, h.FileName, from)
	}
	if spooled > end {
		return lsn.Invalid, fmt.Errorf("%w: the primary switched from timeline %d to %d at %s, but the spool holds WAL of timeline %d up to %s: the WAL after %s is not in the new timeline's history "+
			"(after a crash of the old primary it may be only the incomplete last record it had flushed, but the spool cannot continue on the new timeline either way); re-attach the timeline with import = true",
			ErrTimelineDiverged, from, to, end, from, spooled, end)
	}
	return end, nil
}
