package timeline

import (
	"context"

	"github.com/stratadb/strata/services/pageserver/layer"
	"github.com/stratadb/strata/services/pageserver/pagecache"
)

// cachedBlocks reads a layer file's blocks through the shared page cache
// (kind Immutable): a hit costs no system call; a miss preads into the slot.
type cachedBlocks struct {
	cache *pagecache.Cache
	id    pagecache.FileID
	file  *layer.FileBlockReader
}

func (c *cachedBlocks) ReadBlock(ctx context.Context, blkno uint32, dst []byte) error {
	g, err := c.cache.ReadImmutable(c.id, blkno, func(page []byte) error {
		return c.file.ReadBlock(ctx, blkno, page)
	})
	if err != nil {
		return err
	}
	copy(dst, g.Bytes())
	g.Release()
	return nil
}
