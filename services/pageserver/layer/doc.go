// Package layer owns the pageserver's immutable layer files (design §4): the
// delta layers that frozen open layers are flushed to (every page version
// of a key range over an LSN range) and the image layers written by import
// and, later, compaction (one value per key at one LSN). It writes them
// (DeltaWriter, ImageWriter), names them (DeltaFileName, ImageFileName,
// ParseFileName) and reads them (Reader) block by block through a
// BlockReader, which is where the pageserver plugs in its page cache.
//
// It does not own: the layer map (which layers cover a key and LSN), value
// encoding (package value; here values are opaque bytes), the page cache
// (package pagecache), timeline directories or when layers are written and
// deleted.
//
// # Concurrency
//
// A Reader is immutable after Open and safe for concurrent use; each read
// borrows scratch buffers from a per-Reader pool, so reads do not allocate
// in the steady state (Versions, which returns copies, does). Writers and
// Iterators belong to one goroutine.
//
// Values passed to Visit/VisitReverse callbacks alias internal buffers and
// are valid only until the callback returns; Iterator.Value until the next
// Next; Image copies into the caller's buffer.
//
// # Durability
//
// A writer streams into ".<final name>.tmp-*" in the target directory (the
// pattern durable.RemoveTemps deletes at startup), writes the header last,
// fsyncs the file, renames it to its final name and fsyncs the directory.
// A file under a final name is therefore complete; a crash leaves at most a
// temp file.
//
// # File names
//
//	delta: <key start 36 hex>-<key end 36 hex>__<LSN start 16 hex>-<LSN end 16 hex>
//	image: <key start 36 hex>-<key end 36 hex>__<LSN 16 hex>
//
// Uppercase hex, fixed width (keyspace.Key.String, LSN as %016X); both
// ranges are half-open. ParseFileName accepts only this canonical form.
//
// # File format, version 1
//
// All integers are big-endian. The file is a sequence of 8192-byte blocks.
// The last 4 bytes of every block (offset 8188) hold the CRC-32C
// (Castagnoli) of the block's first 8188 bytes followed by the block number
// as a u32, so a block that is damaged or stored at the wrong place fails.
// Every block read is verified. The file is laid out as
//
//	block 0                      header
//	blocks 1 .. D                data: the entry stream
//	blocks D+1 .. D+L            index leaves, in key order
//	blocks D+L+1 .. last         inner index levels, bottom-up; the root is the last block
//
// Header (block 0; bytes 156..8187 are zero):
//
//	off  size  field
//	  0    4   magic 0x53544C59 ("STLY")
//	  4    2   format version (1)
//	  6    1   kind: 1 delta, 2 image
//	  7    1   reserved (0)
//	  8   16   tenant id
//	 24   16   timeline id
//	 40   18   key range start (inclusive)
//	 58   18   key range end (exclusive)
//	 76    8   LSN range start (inclusive); image: the image LSN
//	 84    8   LSN range end (exclusive); image: image LSN + 1
//	 92    8   number of entries
//	100    8   number of distinct keys
//	108    8   length of the entry stream in bytes (DataBytes)
//	116    4   first data block (1)
//	120    4   number of data blocks D = ceil(DataBytes / 8188)
//	124    4   first index block (D + 1)
//	128    4   number of index blocks
//	132    4   number of leaf blocks L
//	136    4   root block (the last block)
//	140    1   index depth (1: the root is the only leaf)
//	141    3   reserved (0)
//	144    4   length of the longest value
//	148    4   total number of blocks (file size / 8192)
//	152    4   reserved (0)
//	156    4   CRC-32C of bytes 0..155
//
// The layout fields are redundant on purpose: a reader recomputes them from
// the entry count and DataBytes and rejects any mismatch.
//
// Entry stream: the 8188-byte payloads of the data blocks concatenated
// (the last one zero-padded) hold the entries back to back; an entry may
// cross any number of block boundaries (an 8 KB page image always does):
//
//	key     18 bytes (keyspace.Key.Put)
//	LSN      8 bytes
//	length   4 bytes (<= MaxValueLen and <= the header's longest value)
//	value    length bytes
//
// Entries are in strictly increasing (key, LSN) order; an image layer holds
// one entry per key, all at the image LSN. Offset o of the stream is byte
// o % 8188 of block 1 + o / 8188.
//
// Index: a B+-tree bulk-built from the sorted entries, one node per block.
// The index key is the 26-byte (key, LSN) — byte order is entry order —
// and there is one leaf entry per data entry:
//
//	off  size  field
//	  0    1   level (0 = leaf)
//	  1    1   reserved (0)
//	  2    2   count
//	  4   34×count  entries: index key (26 bytes), value u64
//
// Leaf values are stream offsets of entries; inner values are child block
// numbers, keyed by the child's first index key. Nodes hold up to 240
// entries; every leaf but the last is full, so leaf i holds
// min(240, entries - 240 i) entries and the leaves are contiguous blocks —
// a reader walks neighbouring leaves without going back up. An empty layer
// has one empty leaf as its root. Readers check node levels, counts, child
// ranges (children lie at lower block numbers than their parent, so a
// descent always ends), that every entry read through the index carries the
// index's (key, LSN), and that lengths stay inside the stream.
//
// # Corruption
//
// Any failed check is reported as a *CorruptError (errors.Is ErrCorrupt)
// with the file name and the block at which it was found; a file shorter
// than its header says is caught at Open.
package layer
