package pgwal

import (
	"errors"
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
)

var (
	// ErrNeedMore is returned by StreamDecoder.Next when the bytes fed so far
	// do not hold the next whole record. Feed more and call Next again.
	ErrNeedMore = errors.New("pgwal: need more WAL")

	// ErrEndOfWAL marks the end of valid WAL: the next record position holds
	// zeros, a stale or invalid page, a record that fails its length, prev-link
	// or CRC check, or a missing segment. PostgreSQL's own reader stops at the
	// same places and for the same reasons. The concrete error is an
	// *EndOfWALError carrying the position and the reason.
	ErrEndOfWAL = errors.New("pgwal: end of WAL")

	// ErrCorrupt marks bytes that passed the reader's checks (CRC included)
	// but cannot be decoded, or WAL that cannot belong to this stream (wrong
	// system identifier, segment size or block size).
	ErrCorrupt = errors.New("pgwal: corrupt WAL")

	// ErrNotContiguous is returned by FeedAt when a chunk does not start where
	// the previous one ended.
	ErrNotContiguous = errors.New("pgwal: WAL chunk is not contiguous")

	// ErrNoImage is returned by BlockRef.RestorePage for a block without a
	// full-page image.
	ErrNoImage = errors.New("pgwal: block reference has no full-page image")

	// ErrBadOption is returned (wrapped) for an unusable option value.
	ErrBadOption = errors.New("pgwal: invalid option")
)

// EndReason says why the reader decided valid WAL ends.
type EndReason uint8

// Reasons for the end of WAL.
const (
	// EndZeroed: the next record's xl_tot_len is zero (the normal end after a
	// clean stop, or the zero-filled rest of the current page).
	EndZeroed EndReason = iota + 1
	// EndBadPageHeader: a page header has a wrong magic number, unknown flag
	// bits, a missing long header or an out-of-sequence timeline.
	EndBadPageHeader
	// EndBadPageAddr: xlp_pageaddr differs from the page's position (a stale
	// page of a recycled segment).
	EndBadPageAddr
	// EndBadRecordHeader: xl_tot_len too small or too large, an invalid rmgr
	// id, or a record offset inside a page header.
	EndBadRecordHeader
	// EndBadPrevLink: xl_prev does not point at the previous record.
	EndBadPrevLink
	// EndBadContinuation: a continuation page lacks XLP_FIRST_IS_CONTRECORD
	// or has the wrong xlp_rem_len.
	EndBadContinuation
	// EndBadCRC: the record's CRC-32C does not match.
	EndBadCRC
	// EndMissingSegment: the next segment file does not exist or is short.
	EndMissingSegment
)

var endReasonNames = [...]string{
	EndZeroed:          "zeroed",
	EndBadPageHeader:   "invalid page header",
	EndBadPageAddr:     "unexpected page address",
	EndBadRecordHeader: "invalid record header",
	EndBadPrevLink:     "incorrect prev-link",
	EndBadContinuation: "invalid continuation",
	EndBadCRC:          "checksum mismatch",
	EndMissingSegment:  "missing segment",
}

func (r EndReason) String() string {
	if int(r) < len(endReasonNames) && endReasonNames[r] != "" {
		return endReasonNames[r]
	}
	return fmt.Sprintf("EndReason(%d)", uint8(r))
}

// EndOfWALError is the concrete end-of-WAL error. errors.Is(err, ErrEndOfWAL)
// holds for it.
type EndOfWALError struct {
	// LSN is where the reader found the problem, in the words of
	// PostgreSQL's message (usually the position of the record it tried to
	// read, or of the page it rejected).
	LSN lsn.LSN
	// LastRecord is the start of the last valid record returned, or Invalid.
	LastRecord lsn.LSN
	// Reason classifies the end.
	Reason EndReason
	// Detail is PostgreSQL's wording, e.g. "invalid record length at
	// 0/40964D0: wanted 24, got 0".
	Detail string
}

func (e *EndOfWALError) Error() string {
	return fmt.Sprintf("pgwal: end of WAL at %s (%s): %s", e.LSN, e.Reason, e.Detail)
}

// Is makes errors.Is(err, ErrEndOfWAL) true.
func (e *EndOfWALError) Is(target error) bool { return target == ErrEndOfWAL }
