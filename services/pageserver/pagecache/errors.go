package pagecache

import (
	"errors"
	"fmt"
)

var (
	// ErrAllPinned matches the error returned when no slot can be
	// allocated because every slot is pinned (see AllPinnedError).
	ErrAllPinned = errors.New("pagecache: all slots pinned")
	// ErrInvalidConfig is wrapped by Config.Validate and New.
	ErrInvalidConfig = errors.New("pagecache: invalid config")
	// ErrPageSize is returned (wrapped) when a page is not PageSize bytes.
	ErrPageSize = errors.New("pagecache: page is not 8192 bytes")
)

// AllPinnedError is returned when the clock sweep found no unpinned slot.
// errors.Is(err, ErrAllPinned) reports true.
type AllPinnedError struct {
	Slots int
}

func (e *AllPinnedError) Error() string {
	return fmt.Sprintf("pagecache: all %d slots pinned", e.Slots)
}

// Is makes errors.Is(err, ErrAllPinned) true.
func (e *AllPinnedError) Is(target error) bool { return target == ErrAllPinned }
