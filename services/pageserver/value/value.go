package value

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
)

// ErrCorrupt is returned (wrapped) when bytes are not a valid value.
var ErrCorrupt = errors.New("value: corrupt value")

// Kind is the first byte of an encoded value.
type Kind uint8

// Kinds of value.
const (
	KindImage  Kind = 0
	KindRecord Kind = 1
	KindNative Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindImage:
		return "image"
	case KindRecord:
		return "record"
	case KindNative:
		return "native"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

const (
	headerLen       = 2
	recordHeaderLen = headerLen + 8
	flagWillInit    = 1
)

// Value is a decoded value. Its byte slices alias the encoded input.
type Value struct {
	Kind Kind
	// Image holds the object for KindImage.
	Image []byte
	// WillInit is set for a KindRecord that initializes its page.
	WillInit bool
	// RecordStart is the start LSN of a KindRecord's WAL record.
	RecordStart lsn.LSN
	// Record is the raw PostgreSQL WAL record (xl_tot_len bytes).
	Record []byte
	// NativeType and NativePayload describe a KindNative record.
	NativeType    uint8
	NativePayload []byte
}

// AppendImage appends the encoding of an image to dst.
func AppendImage(dst, image []byte) []byte {
	dst = append(dst, byte(KindImage), 0)
	return append(dst, image...)
}

// AppendRecord appends the encoding of a WAL record to dst.
func AppendRecord(dst []byte, start lsn.LSN, willInit bool, raw []byte) []byte {
	var flags byte
	if willInit {
		flags |= flagWillInit
	}
	dst = append(dst, byte(KindRecord), flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(start))
	return append(dst, raw...)
}

// AppendNative appends the encoding of a native record to dst.
func AppendNative(dst []byte, subtype uint8, payload []byte) []byte {
	dst = append(dst, byte(KindNative), subtype)
	return append(dst, payload...)
}

// Decode decodes b. The result aliases b.
func Decode(b []byte) (Value, error) {
	if len(b) < headerLen {
		return Value{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrCorrupt, len(b), headerLen)
	}
	switch k := Kind(b[0]); k {
	case KindImage:
		if b[1] != 0 {
			return Value{}, fmt.Errorf("%w: image flags 0x%02X, want 0", ErrCorrupt, b[1])
		}
		return Value{Kind: k, Image: b[headerLen:]}, nil
	case KindRecord:
		if len(b) < recordHeaderLen {
			return Value{}, fmt.Errorf("%w: record value of %d bytes, need at least %d", ErrCorrupt, len(b), recordHeaderLen)
		}
		if b[1]&^flagWillInit != 0 {
			return Value{}, fmt.Errorf("%w: record flags 0x%02X", ErrCorrupt, b[1])
		}
		return Value{
			Kind:        k,
			WillInit:    b[1]&flagWillInit != 0,
			RecordStart: lsn.LSN(binary.BigEndian.Uint64(b[headerLen:])),
			Record:      b[recordHeaderLen:],
		}, nil
	case KindNative:
		return Value{Kind: k, NativeType: b[1], NativePayload: b[headerLen:]}, nil
	default:
		return Value{}, fmt.Errorf("%w: unknown kind %d", ErrCorrupt, uint8(k))
	}
}

// WillInit reports, without decoding the rest, whether the encoded value
// makes older versions unnecessary: an image, or a will-init record.
func WillInit(b []byte) bool {
	if len(b) < headerLen {
		return false
	}
	switch Kind(b[0]) {
	case KindImage:
		return true
	case KindRecord:
		return b[1]&flagWillInit != 0
	}
	return false
}
