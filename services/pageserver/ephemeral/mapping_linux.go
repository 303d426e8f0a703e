package ephemeral

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the size bytes of f at off (page-aligned) read-only. With
// populate, MAP_POPULATE maps every page in the one system call (the file
// was just written, so its pages are in the OS page cache): no page fault
// per 4 KiB later.
func mapFile(f *os.File, off, size uint64, populate bool) ([]byte, func() error, error) {
	flags := unix.MAP_SHARED
	if populate {
		flags |= unix.MAP_POPULATE
	}
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var (
		data []byte
		mErr error
	)
	if err := raw.Control(func(fd uintptr) {
		data, mErr = unix.Mmap(int(fd), int64(off), int(size), unix.PROT_READ, flags)
	}); err != nil {
		return nil, nil, err
	}
	if mErr != nil {
		return nil, nil, mErr
	}
	return data, func() error { return unix.Munmap(data) }, nil
}
