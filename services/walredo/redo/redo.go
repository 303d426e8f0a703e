package redo

import (
	"context"
	"fmt"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
)

// Record is one WAL record to apply.
type Record struct {
	// Start is the LSN of the record's first byte; End is the LSN just past
	// it as the WAL reader reports (EndRecPtr), which redo stamps on pages.
	Start, End lsn.LSN
	// Raw is the whole record, XLogRecord header included.
	Raw []byte
}

// Request asks for one block rebuilt from a base image and records.
type Request struct {
	Tenant ids.TenantID
	Tag    pgtypes.BufferTag
	// Base is the 8 KB page to start from, or nil for an all-zero page.
	Base []byte
	// Records are applied oldest first.
	Records []Record
}

// Redoer rebuilds pages. Apply writes the page into page, which must be
// pgtypes.BLCKSZ bytes; on error page's contents are unspecified.
type Redoer interface {
	Apply(ctx context.Context, req *Request, page []byte) error
}

// recordHeaderSize is sizeof(XLogRecord).
const recordHeaderSize = 24

// Validate checks what can be checked without PostgreSQL: sizes, fork,
// block number and LSN order. Errors wrap ErrInvalidRequest.
func (r *Request) Validate(page []byte) error {
	switch {
	case len(page) != pgtypes.BLCKSZ:
		return fmt.Errorf("%w: result buffer is %d bytes, want %d", ErrInvalidRequest, len(page), pgtypes.BLCKSZ)
	case r.Base != nil && len(r.Base) != pgtypes.BLCKSZ:
		return fmt.Errorf("%w: base image is %d bytes, want %d", ErrInvalidRequest, len(r.Base), pgtypes.BLCKSZ)
	case !r.Tag.Rel.ForkNum.Valid():
		return fmt.Errorf("%w: %s has an invalid fork", ErrInvalidRequest, r.Tag)
	case r.Tag.BlockNum == pgtypes.InvalidBlockNumber:
		return fmt.Errorf("%w: %s has the invalid block number", ErrInvalidRequest, r.Tag)
	}
	for i, rec := range r.Records {
		if len(rec.Raw) < recordHeaderSize {
			return fmt.Errorf("%w: record %d at %s is %d bytes, shorter than a record header", ErrInvalidRequest, i, rec.Start, len(rec.Raw))
		}
		if rec.End <= rec.Start {
			return fmt.Errorf("%w: record %d at %s ends at %s, not after its start", ErrInvalidRequest, i, rec.Start, rec.End)
		}
	}
	return nil
}
