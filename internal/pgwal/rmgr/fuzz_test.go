package rmgr

import (
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary main data to every resource manager: Decode must
// return a body or an ErrTruncated/ErrCorrupt error, never panic, and a body
// must describe itself without panicking.
func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(uint8(v.id), v.info, v.data)
	}
	f.Add(uint8(Transaction), InfoXactCommit|XactHasInfo, []byte(buf{}.u64(0).u32(0x1ff).u32(1).u32(2)))
	f.Add(uint8(Transaction), InfoXactPrepare, []byte(buf{}.u32(TwoPhaseMagic).zeros(68)))
	f.Add(uint8(LogicalMessage), InfoLogicalMessage, []byte(buf{}.u32(0).u8(0).zeros(3).u64(1).u64(1).u8(0).u8(7)))
	f.Fuzz(func(t *testing.T, id, info uint8, data []byte) {
		b, err := Decode(ID(id), info, data)
		if err != nil {
			if b != nil {
				t.Fatalf("body %T together with error %v", b, err)
			}
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Rmgr != ID(id) {
				t.Fatalf("error %v is not a DecodeError for rmgr %d", err, id)
			}
			return
		}
		if b == nil {
			t.Fatal("nil body without error")
		}
		if b.Rmgr() != ID(id) {
			t.Fatalf("body %T says rmgr %s, decoded as %s", b, b.Rmgr(), ID(id))
		}
		_ = Describe(b)
	})
}
