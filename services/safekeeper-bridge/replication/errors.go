package replication

import "errors"

var (
	// ErrWALGap marks WAL that would be missing from the spool: the primary
	// cannot send what the spool needs next.
	ErrWALGap = errors.New("replication: gap in WAL")
	// ErrSlotMissing marks a replication slot that disappeared while the
	// spool holds WAL: WAL after the spool's end may already be gone.
	ErrSlotMissing = errors.New("replication: replication slot is missing")
	// ErrWALRemoved marks a primary that has removed WAL the bridge needs.
	ErrWALRemoved = errors.New("replication: requested WAL was removed by the primary")
	// ErrConfig marks an unusable configuration.
	ErrConfig = errors.New("replication: invalid configuration")
	// ErrTimelineDiverged marks a primary that switched to a timeline whose
	// history does not contain all of the spooled WAL: the new timeline
	// forked before the spool's end (a failover to a server that was
	// behind), so WAL already spooled, and perhaps ingested, is not part of
	// the new history.
	ErrTimelineDiverged = errors.New("replication: the primary's new timeline diverged from the spooled WAL")
)

// permanent reports whether err stops the timeline instead of triggering a
// reconnect.
func permanent(err error) bool {
	return errors.Is(err, ErrWALGap) || errors.Is(err, ErrSlotMissing) || errors.Is(err, ErrWALRemoved) || errors.Is(err, ErrConfig) ||
		errors.Is(err, ErrTimelineDiverged)
}
