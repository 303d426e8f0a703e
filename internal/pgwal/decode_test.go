package pgwal

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/pgtypes"
)

// recBody assembles record parts after the XLogRecord header.
type recBody struct{ hdr, payload []byte }

func (b *recBody) block(id, forkFlags uint8, dataLen uint16, image []byte, rel *pgtypes.RelFileNode, blk uint32) *recBody {
	b.hdr = append(b.hdr, id, forkFlags)
	b.hdr = binary.LittleEndian.AppendUint16(b.hdr, dataLen)
	if image != nil {
		b.hdr = append(b.hdr, image...)
	}
	if rel != nil {
		b.hdr = binary.LittleEndian.AppendUint32(b.hdr, uint32(rel.SpcNode))
		b.hdr = binary.LittleEndian.AppendUint32(b.hdr, uint32(rel.DbNode))
		b.hdr = binary.LittleEndian.AppendUint32(b.hdr, uint32(rel.RelNode))
	}
	b.hdr = binary.LittleEndian.AppendUint32(b.hdr, blk)
	return b
}

func (b *recBody) record() []byte {
	return finishRecord(10, 0, 700, 0, append(bytes.Clone(b.hdr), b.payload...))
}

func imageHeader(length, holeOffset uint16, info uint8, holeLength uint16) []byte {
	h := binary.LittleEndian.AppendUint16(nil, length)
	h = binary.LittleEndian.AppendUint16(h, holeOffset)
	h = append(h, info)
	if info&bkpImageCompressed != 0 && info&BkpImageHasHole != 0 {
		h = binary.LittleEndian.AppendUint16(h, holeLength)
	}
	return h
}

// testPage is a plausible heap page: header, then a hole, then tuples.
func testPage(lower, upper uint16) []byte {
	p := make([]byte, pgtypes.BLCKSZ)
	pgtypes.PageSetLSN(p, 0x1_0000_0040)
	binary.LittleEndian.PutUint16(p[12:], lower)
	binary.LittleEndian.PutUint16(p[14:], upper)
	binary.LittleEndian.PutUint16(p[16:], pgtypes.BLCKSZ)
	binary.LittleEndian.PutUint16(p[18:], pgtypes.PageSizeVersion)
	for i := 24; i < int(lower); i++ {
		p[i] = byte(i)
	}
	for i := int(upper); i < pgtypes.BLCKSZ; i++ {
		p[i] = byte(i * 7)
	}
	return p
}

func TestDecodeRecord(t *testing.T) {
	rel := pgtypes.RelFileNode{SpcNode: 1663, DbNode: 5, RelNode: 16390}
	page := testPage(64, 6000)
	withHole := append(bytes.Clone(page[:64]), page[6000:]...)
	lz4Buf := make([]byte, lz4.CompressBlockBound(len(withHole)))
	n, err := lz4.CompressBlock(withHole, lz4Buf, nil)
	require.NoError(t, err)
	require.Positive(t, n)
	lz4Img := lz4Buf[:n]

	var b recBody
	b.block(0, BkpBlockHasData, 3, nil, &rel, 7)
	b.block(2, BkpBlockHasImage|BkpBlockSameRel|uint8(pgtypes.VisibilityMapForkNum), 0,
		imageHeader(uint16(len(withHole)), 64, BkpImageHasHole|BkpImageApply, 0), nil, 9)
	b.block(3, BkpBlockHasImage|BkpBlockWillInit, 0,
		imageHeader(uint16(len(lz4Img)), 64, BkpImageHasHole|BkpImageApply|BkpImageCompressLZ4, uint16(6000-64)), &rel, 11)
	b.hdr = append(b.hdr, blockIDOrigin, 4, 0, blockIDToplevelXid, 9, 0, 0, 0, blockIDDataLong)
	b.hdr = binary.LittleEndian.AppendUint32(b.hdr, 300)
	b.payload = append(append(append([]byte{1, 2, 3}, withHole...), lz4Img...), bytes.Repeat([]byte{0xAB}, 300)...)
	raw := b.record()

	var d DecodedRecord
	require.NoError(t, DecodeRecord(raw, &d))
	require.Equal(t, uint32(len(raw)), d.TotalLen)
	require.Equal(t, uint32(700), d.Xid)
	require.Equal(t, uint16(4), d.Origin)
	require.Equal(t, uint32(9), d.ToplevelXid)
	require.Equal(t, bytes.Repeat([]byte{0xAB}, 300), d.MainData)
	require.Len(t, d.Blocks, 3)
	require.Equal(t, 3, d.MaxBlockID())
	require.Equal(t, []byte{1, 2, 3}, d.Block(0).Data)
	require.Equal(t, rel, d.Block(2).Rel, "SAME_REL")
	require.Equal(t, pgtypes.VisibilityMapForkNum, d.Block(2).Fork)
	require.Nil(t, d.Block(1))
	require.True(t, d.Block(3).WillInit())
	require.Equal(t, CompressionLZ4, d.Block(3).Compression())
	require.Equal(t, uint32(len(raw))-uint32(len(withHole))-uint32(len(lz4Img)), d.RecLen())

	out := make([]byte, pgtypes.BLCKSZ)
	for _, id := range []uint8{2, 3} {
		clear(out)
		require.NoError(t, d.Block(id).RestorePage(out), "block %d", id)
		want := bytes.Clone(page)
		clear(want[64:6000])
		require.Equal(t, want, out, "block %d", id)
	}
	require.ErrorIs(t, d.Block(0).RestorePage(out), ErrNoImage)

	// Reuse keeps working and resets old fields.
	require.NoError(t, DecodeRecord(makeRecord(1, 0, 0, 0, []byte{5}), &d))
	require.Empty(t, d.Blocks)
	require.Equal(t, uint16(0), d.Origin)
	require.Equal(t, []byte{5}, d.MainData)
}

func TestDecodeRecordErrors(t *testing.T) {
	rel := pgtypes.RelFileNode{SpcNode: 1663, DbNode: 5, RelNode: 1}
	build := func(f func(b *recBody)) []byte {
		var b recBody
		f(&b)
		return b.record()
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"short", []byte{1, 2, 3}},
		{"tot-len-mismatch", append(makeRecord(1, 0, 0, 0, nil), 0)},
		{"out-of-order", build(func(b *recBody) {
			b.block(2, 0, 0, nil, &rel, 1)
			b.block(1, 0, 0, nil, &rel, 1)
		})},
		{"has-data-without-data", build(func(b *recBody) { b.block(0, BkpBlockHasData, 0, nil, &rel, 1) })},
		{"data-without-has-data", build(func(b *recBody) {
			b.block(0, 0, 2, nil, &rel, 1)
			b.payload = []byte{1, 2}
		})},
		{"same-rel-first", build(func(b *recBody) { b.block(0, BkpBlockSameRel, 0, nil, nil, 1) })},
		{"invalid-block-id", build(func(b *recBody) { b.hdr = append(b.hdr, 40) })},
		{"payload-missing", build(func(b *recBody) { b.hdr = append(b.hdr, blockIDDataShort, 10) })},
		{"payload-extra", build(func(b *recBody) {
			b.hdr = append(b.hdr, blockIDDataShort, 1)
			b.payload = []byte{1, 2}
		})},
		{"truncated-header", build(func(b *recBody) { b.hdr = append(b.hdr, 0, BkpBlockHasImage) })},
		{"hole-without-offset", build(func(b *recBody) {
			b.block(0, BkpBlockHasImage, 0, imageHeader(100, 0, BkpImageHasHole|BkpImageApply, 0), &rel, 1)
			b.payload = make([]byte, 100)
		})},
		{"no-hole-with-offset", build(func(b *recBody) {
			b.block(0, BkpBlockHasImage, 0, imageHeader(8192, 10, BkpImageApply, 0), &rel, 1)
			b.payload = make([]byte, 8192)
		})},
		{"uncompressed-short", build(func(b *recBody) {
			b.block(0, BkpBlockHasImage, 0, imageHeader(100, 0, BkpImageApply, 0), &rel, 1)
			b.payload = make([]byte, 100)
		})},
		{"image-too-long", build(func(b *recBody) {
			b.block(0, BkpBlockHasImage, 0, imageHeader(9000, 10, BkpImageApply|BkpImageHasHole, 0), &rel, 1)
			b.payload = make([]byte, 9000)
		})},
		{"compressed-full-length", build(func(b *recBody) {
			b.block(0, BkpBlockHasImage, 0, imageHeader(8192, 0, BkpImageApply|BkpImageCompressLZ4, 0), &rel, 1)
			b.payload = make([]byte, 8192)
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d DecodedRecord
			err := DecodeRecord(tc.raw, &d)
			require.ErrorIs(t, err, ErrCorrupt)
			rec := Record{LSN: 0x1234, Raw: tc.raw}
			require.ErrorContains(t, rec.Decode(&d), "record at 0/1234")
		})
	}
}

func TestRestorePageErrors(t *testing.T) {
	page := make([]byte, pgtypes.BLCKSZ)
	for _, tc := range []struct {
		name string
		b    BlockRef
	}{
		{"bad-lz4", BlockRef{ForkFlags: BkpBlockHasImage, ImageInfo: BkpImageCompressLZ4 | BkpImageApply, Image: []byte{0xff, 1, 2}}},
		{"bad-zstd", BlockRef{ForkFlags: BkpBlockHasImage, ImageInfo: BkpImageCompressZSTD | BkpImageApply, Image: []byte{1, 2, 3, 4, 5}}},
		{"bad-pglz", BlockRef{ForkFlags: BkpBlockHasImage, ImageInfo: BkpImageCompressPGLZ | BkpImageApply, Image: []byte{1, 0, 0}}},
		{"hole-past-page", BlockRef{ForkFlags: BkpBlockHasImage, HoleOffset: 8000, HoleLength: 500, Image: make([]byte, 7692)}},
		{"uncompressed-wrong-size", BlockRef{ForkFlags: BkpBlockHasImage, HoleOffset: 10, HoleLength: 10, Image: make([]byte, 5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.b.RestorePage(page), ErrCorrupt)
		})
	}
	b := BlockRef{ForkFlags: BkpBlockHasImage, Image: make([]byte, pgtypes.BLCKSZ)}
	require.ErrorIs(t, b.RestorePage(page[:100]), ErrBadOption)
}
