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

// FuzzHeapVMClear checks that HeapVMClear agrees with Decode followed by
// VMClearer.VMClear on every Heap record: same bits, same failures.
func FuzzHeapVMClear(f *testing.F) {
	for _, v := range loadVectors(f) {
		if v.id == Heap {
			f.Add(v.info, v.data)
		}
	}
	f.Add(InfoHeapInsert, []byte{1, 0, 1})
	f.Add(InfoHeapUpdate, []byte{0, 0, 0, 0, 1, 0, 0, 3, 0, 0, 0, 0, 2, 0})
	f.Add(InfoHeapLock, []byte{0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, info uint8, data []byte) {
		newBits, oldBits, ok, err := HeapVMClear(info, data)
		b, derr := Decode(Heap, info, data)
		c, isClearer := b.(VMClearer)
		switch {
		case !ok:
			if isClearer {
				t.Fatalf("HeapVMClear skipped %T", b)
			}
		case derr != nil || err != nil:
			if derr == nil || err == nil || err.Error() != derr.Error() {
				t.Fatalf("HeapVMClear error %v, Decode error %v", err, derr)
			}
		case !isClearer:
			t.Fatalf("HeapVMClear handled %T, which is no VMClearer", b)
		default:
			wantNew, wantOld := c.VMClear()
			if newBits != wantNew || oldBits != wantOld {
				t.Fatalf("HeapVMClear = %#x, %#x; Decode+VMClear = %#x, %#x", newBits, oldBits, wantNew, wantOld)
			}
		}
	})
}
