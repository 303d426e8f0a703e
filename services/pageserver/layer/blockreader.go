package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// BlockReader reads block blkno (BlockSize bytes) of an immutable layer file
// into dst (len(dst) == BlockSize). The pageserver plugs its page cache in
// here; FileBlockReader is the plain pread implementation.
//
// Implementations return the bytes as stored: the Reader verifies every
// block's checksum itself. A block past the end of the file, or a partial
// one, must be reported as an error wrapping io.EOF or io.ErrUnexpectedEOF
// (the Reader reports those as ErrCorrupt: the file is truncated); any other
// error is passed up as an I/O error. Implementations must be safe for
// concurrent use.
type BlockReader interface {
	ReadBlock(ctx context.Context, blkno uint32, dst []byte) error
}

// FileBlockReader reads blocks of an open file with pread. It is safe for
// concurrent use.
type FileBlockReader struct {
	f      *os.File
	blocks uint32
	size   int64
}

// OpenFileBlockReader opens path for block reads.
func OpenFileBlockReader(path string) (*FileBlockReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("layer: opening %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("layer: stat %s: %w", path, err)
	}
	n := st.Size() / BlockSize
	if n > int64(^uint32(0)) {
		n = int64(^uint32(0))
	}
	return &FileBlockReader{f: f, blocks: uint32(n), size: st.Size()}, nil
}

// Blocks is the number of whole blocks in the file when it was opened.
func (r *FileBlockReader) Blocks() uint32 { return r.blocks }

// Size is the file size in bytes when it was opened.
func (r *FileBlockReader) Size() int64 { return r.size }

// ReadBlock implements BlockReader.
func (r *FileBlockReader) ReadBlock(ctx context.Context, blkno uint32, dst []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := r.f.ReadAt(dst[:BlockSize], int64(blkno)*BlockSize)
	if n == BlockSize {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		if n == 0 {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	return err
}

// Close closes the file.
func (r *FileBlockReader) Close() error { return r.f.Close() }

// VerifiedBlockReader is a BlockReader that checks every block's checksum
// itself (with VerifyBlock) before returning it — typically once, when it
// loads the block into a cache — so that the Reader need not check it again
// on every read. A block that fails must be reported as an error wrapping
// ErrCorrupt (VerifyBlock's error does).
type VerifiedBlockReader interface {
	BlockReader
	VerifiesBlocks()
}

// VerifyBlock checks the checksum of blk (BlockSize bytes) as block blkno of
// the file called name, returning an error wrapping ErrCorrupt that names
// the file and block. blk is unchanged.
func VerifyBlock(name string, blk []byte, blkno uint32) error {
	if len(blk) != BlockSize {
		return corruptf(name, blkno, "block of %d bytes", len(blk))
	}
	if err := verifyBlock(blk, blkno); err != nil {
		return corruptf(name, blkno, "%v", err)
	}
	return nil
}
