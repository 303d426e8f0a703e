package pagestream

import (
	"bytes"
	"testing"
)

// FuzzDecodeRequest: no panic on any input, and every accepted request
// re-encodes to exactly the input (the format has no redundancy).
func FuzzDecodeRequest(f *testing.F) {
	for _, v := range []Version{V2, V3} {
		for _, tc := range testRequests(v) {
			f.Add(byte(v), unhex(f, tc.golden))
		}
	}
	f.Add(byte(3), []byte{})
	f.Add(byte(2), []byte{99, 0, 0})
	f.Fuzz(func(t *testing.T, v byte, in []byte) {
		req, err := DecodeRequest(Version(v), in)
		if err != nil {
			return
		}
		out, err := AppendRequest(nil, Version(v), &req)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("round trip: %x != %x", out, in)
		}
	})
}

// FuzzDecodeResponse: no panic on any input; accepted responses re-encode
// to the input (V2 always; V3 except that Error drops nothing either).
func FuzzDecodeResponse(f *testing.F) {
	f.Add(byte(2), unhex(f, "6401"))
	f.Add(byte(3), unhex(f, "64"+gHdrV3+gRel+"01"))
	f.Add(byte(3), unhex(f, "67"+gHdrV3+"626f6f6d00"))
	f.Add(byte(2), unhex(f, "6900000000"))
	f.Add(byte(3), unhex(f, "68"+gHdrV3+gDb+"00000000007a0000"))
	f.Fuzz(func(t *testing.T, v byte, in []byte) {
		resp, err := DecodeResponse(Version(v), in)
		if err != nil {
			return
		}
		if resp.Tag == TagErrorResponse && bytes.IndexByte([]byte(resp.Message), 0) >= 0 {
			return // NULs inside are sanitized on encode by design
		}
		if len(resp.Message) > MaxErrorMessageLen {
			return
		}
		out, err := AppendResponse(nil, Version(v), &resp)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("round trip: %x != %x", out, in)
		}
	})
}
