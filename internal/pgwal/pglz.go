package pgwal

import "errors"

// errPGLZ is returned (wrapped) by pglzDecompress for corrupt input.
var errPGLZ = errors.New("pglz: corrupt compressed data")

// pglzDecompress is a faithful port of PostgreSQL 15's pglz_decompress
// (src/common/pg_lzcompress.c) with check_complete = true: it decompresses
// src into dst, which must have exactly the raw size, and fails unless it
// consumes all of src and fills all of dst.
//
// The format: a control byte governs the next eight items, least significant
// bit first. A clear bit is one literal byte. A set bit is a two-byte match
// tag: the low nibble of the first byte is length-3, its high nibble the top
// four bits of a 12-bit offset whose low eight bits are the second byte;
// length 18 takes one more byte (0..255) to add. A match copies length bytes
// from offset bytes back in the output, possibly overlapping what it writes
// (offset < length repeats the last offset bytes).
//
// Where the C code reads up to two bytes past the end of corrupt input before
// noticing, this port checks first; the outcome (failure) is the same.
func pglzDecompress(src, dst []byte) error {
	sp, dp := 0, 0
	for sp < len(src) && dp < len(dst) {
		ctrl := src[sp]
		sp++
		for bit := 0; bit < 8 && sp < len(src) && dp < len(dst); bit++ {
			if ctrl&1 != 0 {
				if len(src)-sp < 2 {
					return errPGLZ
				}
				length := int(src[sp]&0x0f) + 3
				off := int(src[sp]&0xf0)<<4 | int(src[sp+1])
				sp += 2
				if length == 18 {
					if sp >= len(src) {
						return errPGLZ
					}
					length += int(src[sp])
					sp++
				}
				if off == 0 || off > dp {
					return errPGLZ
				}
				length = min(length, len(dst)-dp)
				// Copy off bytes at a time: each step doubles the run that
				// repeats with period off, exactly as the C code does.
				for off < length {
					copy(dst[dp:dp+off], dst[dp-off:dp])
					length -= off
					dp += off
					off += off
				}
				copy(dst[dp:dp+length], dst[dp-off:dp-off+length])
				dp += length
			} else {
				dst[dp] = src[sp]
				dp++
				sp++
			}
			ctrl >>= 1
		}
	}
	if dp != len(dst) || sp != len(src) {
		return errPGLZ
	}
	return nil
}
