package timeline

import (
	"context"

	"github.com/stratadb/strata/services/pageserver/layer"
	"github.com/stratadb/strata/services/pageserver/pagecache"
)

// cachedBlocks reads a layer file's blocks through the shared page cache
// (kind Immutable): a hit costs no system call; a miss preads into the slot.
// Checksums are verified once, when a block enters the cache (a block that
// fails is never cached), so hits skip the CRC.
type cachedBlocks struct {
	cache *pagecache.Cache
	id    pagecache.FileID
	file  *layer.FileBlockReader
	name  string
}

var _ layer.VerifiedBlockReader = (*cachedBlocks)(nil)

// VerifiesBlocks implements layer.VerifiedBlockReader.
func (c *cachedBlocks) VerifiesBlocks() {}

func (c *cachedBlocks) ReadBlock(ctx context.Context, blkno uint32, dst []byte) error {
	g, err := c.cache.ReadImmutable(c.id, blkno, func(page []byte) error {
		if err := c.file.ReadBlock(ctx, blkno, page); err != nil {
			return err
		}
		return layer.VerifyBlock(c.name, page, blkno)
	})
	if err != nil {
		return err
	}
	copy(dst, g.Bytes())
	g.Release()
	return nil
}
