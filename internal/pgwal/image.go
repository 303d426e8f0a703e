package pgwal

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/stratadb/strata/internal/pgtypes"
)

// zstdDecoder is shared by every RestorePage call: a zstd.Decoder's DecodeAll
// is safe for concurrent use, holds no per-call state, and with concurrency 1
// starts no goroutines. Built on first use; never changed afterwards.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(1<<20), // a page is 8 KiB; refuse frames that declare more
	)
})

// RestorePage rebuilds the block's 8 KiB page from its full-page image into
// dst (len(dst) must be at least BLCKSZ), as PostgreSQL's RestoreBlockImage
// does: decompress if needed, then put the zero-filled hole back. The
// decompressed size must be exactly BLCKSZ - HoleLength.
func (b *BlockRef) RestorePage(dst []byte) error {
	if !b.HasImage() {
		return fmt.Errorf("%w (block %d)", ErrNoImage, b.ID)
	}
	if len(dst) < pgtypes.BLCKSZ {
		return fmt.Errorf("%w: destination of %d bytes is smaller than a page", ErrBadOption, len(dst))
	}
	page := dst[:pgtypes.BLCKSZ]
	rawLen := pgtypes.BLCKSZ - int(b.HoleLength)
	if int(b.HoleOffset)+int(b.HoleLength) > pgtypes.BLCKSZ || rawLen == 0 {
		return corrupt("hole offset %d length %d does not fit a page (block %d)", b.HoleOffset, b.HoleLength, b.ID)
	}
	// Decompress (or copy) the image bytes to the end of the page, then move
	// the part after the hole into place: one buffer, no allocation.
	tail := page[pgtypes.BLCKSZ-rawLen:]
	switch c := b.Compression(); c {
	case CompressionNone:
		if len(b.Image) != rawLen {
			return corrupt("image of %d bytes, want %d (block %d)", len(b.Image), rawLen, b.ID)
		}
		copy(tail, b.Image)
	case CompressionPGLZ:
		if err := pglzDecompress(b.Image, tail); err != nil {
			return corrupt("invalid compressed image (pglz), block %d: %v", b.ID, err)
		}
	case CompressionLZ4:
		n, err := lz4.UncompressBlock(b.Image, tail)
		if err != nil || n != rawLen {
			return corrupt("invalid compressed image (lz4), block %d: %d of %d bytes: %v", b.ID, n, rawLen, err)
		}
	case CompressionZSTD:
		dec, err := zstdDecoder()
		if err != nil {
			return fmt.Errorf("pgwal: zstd decoder: %w", err)
		}
		out, err := dec.DecodeAll(b.Image, tail[:0])
		if err != nil || len(out) != rawLen || &out[0] != &tail[0] { // a frame that outgrows tail is reallocated: reject it
			return corrupt("invalid compressed image (zstd), block %d: %d of %d bytes: %v", b.ID, len(out), rawLen, err)
		}
	}
	if b.HoleLength > 0 {
		// page = image[:hole] + zeros + image[hole:]; the image sits at
		// page[HoleLength:], so the head moves down and the hole is cleared.
		copy(page[:b.HoleOffset], tail[:b.HoleOffset])
		clear(page[b.HoleOffset : b.HoleOffset+b.HoleLength])
	}
	return nil
}
