package rmgr

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/stratadb/strata/internal/pgtypes"
)

// cursor reads little-endian fields from main data. Its error is sticky: after
// the first failure every read returns a zero value, so decoders read a whole
// struct and check err once. Every length and count is checked against the
// bytes that remain before anything is sliced or allocated.
type cursor struct {
	id   ID
	info uint8 // names the record in errors; the name is looked up only on failure
	b    []byte
	off  int
	err  error
}

func newCursor(id ID, info uint8, b []byte) *cursor {
	return &cursor{id: id, info: info, b: b}
}

func (c *cursor) fail(sentinel error, format string, args ...any) {
	if c.err == nil {
		c.err = &DecodeError{Rmgr: c.id, Record: RecordName(c.id, c.info), Detail: fmt.Sprintf(format, args...), Err: sentinel}
	}
}

func (c *cursor) remaining() int { return len(c.b) - c.off }

// need reports whether n more bytes are available for the named field.
func (c *cursor) need(n int, what string) bool {
	if c.err != nil {
		return false
	}
	if n < 0 || n > c.remaining() {
		c.fail(ErrTruncated, "main data has %d bytes, %s needs %d at offset %d", len(c.b), what, n, c.off)
		return false
	}
	return true
}

func (c *cursor) skip(n int, what string) {
	if c.need(n, what) {
		c.off += n
	}
}

func (c *cursor) u8(what string) uint8 {
	if !c.need(1, what) {
		return 0
	}
	v := c.b[c.off]
	c.off++
	return v
}

func (c *cursor) boolean(what string) bool { return c.u8(what) != 0 }

func (c *cursor) u16(what string) uint16 {
	if !c.need(2, what) {
		return 0
	}
	v := binary.LittleEndian.Uint16(c.b[c.off:])
	c.off += 2
	return v
}

func (c *cursor) u32(what string) uint32 {
	if !c.need(4, what) {
		return 0
	}
	v := binary.LittleEndian.Uint32(c.b[c.off:])
	c.off += 4
	return v
}

func (c *cursor) i32(what string) int32 { return int32(c.u32(what)) }

func (c *cursor) oid(what string) pgtypes.Oid { return pgtypes.Oid(c.u32(what)) }

func (c *cursor) u64(what string) uint64 {
	if !c.need(8, what) {
		return 0
	}
	v := binary.LittleEndian.Uint64(c.b[c.off:])
	c.off += 8
	return v
}

func (c *cursor) i64(what string) int64 { return int64(c.u64(what)) }

// relFileNode reads a 12-byte RelFileNode.
func (c *cursor) relFileNode(what string) pgtypes.RelFileNode {
	if !c.need(12, what) {
		return pgtypes.RelFileNode{}
	}
	return pgtypes.RelFileNode{SpcNode: c.oid(what), DbNode: c.oid(what), RelNode: c.oid(what)}
}

// bytes returns the next n bytes. The slice aliases the main data.
func (c *cursor) bytes(n int, what string) []byte {
	if !c.need(n, what) {
		return nil
	}
	v := c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return v
}

// count reads an int32 element count and checks that count elements of
// elemSize bytes fit in what remains after it.
func (c *cursor) count(what string, elemSize int) int {
	n := c.i32(what + " count")
	if c.err != nil {
		return 0
	}
	return c.checkCount(what, int64(n), elemSize)
}

// checkCount validates a count read by other means (u16, u64, a header
// field) against the bytes that remain.
func (c *cursor) checkCount(what string, n int64, elemSize int) int {
	if c.err != nil {
		return 0
	}
	if n < 0 {
		c.fail(ErrCorrupt, "%s count %d is negative", what, n)
		return 0
	}
	if n > int64(c.remaining()/elemSize) {
		c.fail(ErrTruncated, "main data has %d bytes, %s count %d needs %d at offset %d",
			len(c.b), what, n, n*int64(elemSize), c.off)
		return 0
	}
	return int(n)
}

// u32s reads n uint32s; n must have passed count or checkCount.
func (c *cursor) u32s(n int, what string) []uint32 {
	if n == 0 || !c.need(4*n, what) {
		return nil
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(c.b[c.off:])
		c.off += 4
	}
	return out
}

// relFileNodes reads n RelFileNodes; n must have passed count or checkCount.
func (c *cursor) relFileNodes(n int, what string) []pgtypes.RelFileNode {
	if n == 0 || !c.need(12*n, what) {
		return nil
	}
	out := make([]pgtypes.RelFileNode, n)
	for i := range out {
		out[i] = c.relFileNode(what)
	}
	return out
}

// cstring reads a NUL-terminated string and consumes the NUL.
func (c *cursor) cstring(what string) string {
	if c.err != nil {
		return ""
	}
	i := bytes.IndexByte(c.b[c.off:], 0)
	if i < 0 {
		// The string runs past the end of the data.
		c.fail(ErrTruncated, "main data has %d bytes, %s at offset %d has no terminating NUL", len(c.b), what, c.off)
		return ""
	}
	s := string(c.b[c.off : c.off+i])
	c.off += i + 1
	return s
}

// alignTo skips padding up to the next multiple of a (relative to the start of
// the main data). A missing pad at the very end is not an error.
func (c *cursor) alignTo(a int) {
	if c.err != nil {
		return
	}
	pad := (a - c.off%a) % a
	if pad > c.remaining() {
		pad = c.remaining()
	}
	c.off += pad
}
