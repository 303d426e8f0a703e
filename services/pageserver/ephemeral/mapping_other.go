//go:build !linux

package ephemeral

import (
	"fmt"
	"os"
)

// mapFile reads the first size bytes of f into memory, in large
// sequential reads (the Linux build maps them instead).
func mapFile(f *os.File, size uint64) ([]byte, func() error, error) {
	const chunk = 4 << 20
	data := make([]byte, size)
	for off := uint64(0); off < size; off += chunk {
		end := min(off+chunk, size)
		if _, err := f.ReadAt(data[off:end], int64(off)); err != nil {
			return nil, nil, fmt.Errorf("reading bytes %d..%d: %w", off, end, err)
		}
	}
	return data, func() error { return nil }, nil
}
