//go:build !linux

package ephemeral

import (
	"fmt"
	"os"
)

// mapFile reads the size bytes of f at base into memory, in large
// sequential reads (the Linux build maps them instead).
func mapFile(f *os.File, base, size uint64, _ bool) ([]byte, func() error, error) {
	const chunk = 4 << 20
	data := make([]byte, size)
	for off := uint64(0); off < size; off += chunk {
		end := min(off+chunk, size)
		if _, err := f.ReadAt(data[off:end], int64(base+off)); err != nil {
			return nil, nil, fmt.Errorf("reading bytes %d..%d: %w", base+off, base+end, err)
		}
	}
	return data, func() error { return nil }, nil
}
