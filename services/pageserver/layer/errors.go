package layer

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt marks a layer file whose bytes fail a check: a block
	// checksum, the header, the index or an entry. It is always wrapped in a
	// *CorruptError that names the file and block.
	ErrCorrupt = errors.New("layer: corrupt layer file")
	// ErrOutOfOrder is returned by a writer when an entry does not sort
	// strictly after the previous one: (key, LSN) for deltas, key for images.
	ErrOutOfOrder = errors.New("layer: entry out of order")
	// ErrOutOfRange is returned by a writer for an entry outside the layer's
	// declared key or LSN range.
	ErrOutOfRange = errors.New("layer: entry outside the layer's range")
	// ErrValueTooLarge is returned by a writer for a value longer than
	// MaxValueLen.
	ErrValueTooLarge = errors.New("layer: value too large")
	// ErrInvalidRange is returned when a writer is created with an empty or
	// inverted key or LSN range.
	ErrInvalidRange = errors.New("layer: invalid range")
	// ErrInvalidName is returned by ParseFileName for a name that is not a
	// layer file name in canonical form.
	ErrInvalidName = errors.New("layer: invalid layer file name")
	// ErrWrongKind is returned by an image-only read on a delta layer.
	ErrWrongKind = errors.New("layer: wrong layer kind")
	// ErrNotFound is returned by Reader.Image for a key the layer does not hold.
	ErrNotFound = errors.New("layer: key not found")
	// ErrWriterClosed is returned by a writer used after Finish or Abort, or
	// after an earlier error made it unusable.
	ErrWriterClosed = errors.New("layer: writer closed")
	// ErrTooLarge is returned by a writer whose file would exceed the
	// format's limits (2^32-1 blocks).
	ErrTooLarge = errors.New("layer: layer file too large")
)

// CorruptError describes a failed check. Block is the block number (8 KB
// units) at which the problem was found: the block whose checksum failed,
// whose content is inconsistent, or, for a truncated file, the first block
// that is missing or partial.
type CorruptError struct {
	File   string
	Block  uint32
	Detail string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("layer: corrupt layer file %s, block %d: %s", e.File, e.Block, e.Detail)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(file string, blk uint32, format string, args ...any) error {
	return &CorruptError{File: file, Block: blk, Detail: fmt.Sprintf(format, args...)}
}
