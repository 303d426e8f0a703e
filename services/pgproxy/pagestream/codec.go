package pagestream

import (
	"encoding/binary"
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
)

// Version is a pagestream protocol version.
type Version uint8

// The versions Neon's page_service accepts (V1 was removed in 2024).
const (
	V2 Version = 2
	V3 Version = 3
)

// Valid reports whether v is V2 or V3.
func (v Version) Valid() bool { return v == V2 || v == V3 }

// headerLen is the request header size including the tag byte.
func (v Version) headerLen() int {
	if v == V3 {
		return 25
	}
	return 17
}

// RequestTag is the first byte of a request (PagestreamFeMessageTag).
type RequestTag uint8

// Request tags.
const (
	TagExists         RequestTag = 0
	TagNblocks        RequestTag = 1
	TagGetPage        RequestTag = 2
	TagDbSize         RequestTag = 3
	TagGetSlruSegment RequestTag = 4
)

// String names the tag for logs and metric labels.
func (t RequestTag) String() string {
	switch t {
	case TagExists:
		return "exists"
	case TagNblocks:
		return "nblocks"
	case TagGetPage:
		return "get_page"
	case TagDbSize:
		return "db_size"
	case TagGetSlruSegment:
		return "get_slru_segment"
	default:
		return fmt.Sprintf("unknown(%d)", uint8(t))
	}
}

// bodyLen returns the body size of a request with tag t, or -1.
func (t RequestTag) bodyLen() int {
	switch t {
	case TagExists, TagNblocks:
		return relTagLen
	case TagGetPage:
		return relTagLen + 4
	case TagDbSize:
		return 4
	case TagGetSlruSegment:
		return 5
	default:
		return -1
	}
}

// ResponseTag is the first byte of a response (PagestreamBeMessageTag).
type ResponseTag uint8

// Response tags.
const (
	TagExistsResponse         ResponseTag = 100
	TagNblocksResponse        ResponseTag = 101
	TagGetPageResponse        ResponseTag = 102
	TagErrorResponse          ResponseTag = 103
	TagDbSizeResponse         ResponseTag = 104
	TagGetSlruSegmentResponse ResponseTag = 105
)

// SlruKind is the SLRU selector on the wire (0 pg_xact, 1
// pg_multixact/members, 2 pg_multixact/offsets). Note the gRPC enum is
// shifted by one (it reserves 0 for "unspecified").
type SlruKind uint8

// SLRU kinds on the wire.
const (
	SlruClog             SlruKind = 0
	SlruMultiXactMembers SlruKind = 1
	SlruMultiXactOffsets SlruKind = 2
)

// Valid reports whether k is one of the three kinds.
func (k SlruKind) Valid() bool { return k <= SlruMultiXactOffsets }

// PageSize is the size of a page image (BLCKSZ).
const PageSize = pgtypes.BLCKSZ

// MaxSlruBlocks bounds the blocks of one SLRU segment (SLRU_PAGES_PER_SEGMENT).
const MaxSlruBlocks = 32

const relTagLen = 13

// MaxRequestLen is the size of the largest request (a V3 GetPage).
const MaxRequestLen = 25 + relTagLen + 4

// MaxResponseLen bounds a response: a V3 GetSlruSegment of 32 pages. Error
// responses are bounded by MaxErrorMessageLen.
const MaxResponseLen = 34 + MaxSlruBlocks*PageSize

// MaxErrorMessageLen bounds the message of an Error response written by
// AppendResponse; longer messages are truncated.
const MaxErrorMessageLen = 4096

// Request is one decoded pagestream request. Fields that the tag does not
// use are zero.
type Request struct {
	Tag RequestTag
	// ReqID is the V3 request id (0 in V2).
	ReqID            uint64
	RequestLSN       lsn.LSN
	NotModifiedSince lsn.LSN
	// Rel is set for Exists, Nblocks and GetPage.
	Rel pgtypes.RelTag
	// BlockNo is set for GetPage.
	BlockNo uint32
	// DbNode is set for DbSize.
	DbNode pgtypes.Oid
	// Kind and SegNo are set for GetSlruSegment.
	Kind  SlruKind
	SegNo uint32
}

// DecodeRequest decodes one request of version v from b, which must hold
// exactly one message. It copies what it keeps: b may be reused afterwards.
func DecodeRequest(v Version, b []byte) (Request, error) {
	var r Request
	if !v.Valid() {
		return r, fmt.Errorf("%w: %d", ErrUnsupportedVersion, v)
	}
	if len(b) == 0 {
		return r, fmt.Errorf("%w: empty request", ErrMalformed)
	}
	r.Tag = RequestTag(b[0])
	bodyLen := r.Tag.bodyLen()
	if bodyLen < 0 {
		return r, fmt.Errorf("%w: unknown request tag %d", ErrMalformed, b[0])
	}
	hl := v.headerLen()
	if want := hl + bodyLen; len(b) != want {
		return r, fmt.Errorf("%w: %s request of protocol v%d is %d bytes, want %d", ErrMalformed, r.Tag, v, len(b), want)
	}
	p := b[1:]
	if v == V3 {
		r.ReqID = binary.BigEndian.Uint64(p)
		p = p[8:]
	}
	r.RequestLSN = lsn.LSN(binary.BigEndian.Uint64(p))
	r.NotModifiedSince = lsn.LSN(binary.BigEndian.Uint64(p[8:]))
	p = p[16:]
	switch r.Tag {
	case TagExists, TagNblocks, TagGetPage:
		r.Rel = decodeRelTag(p)
		if r.Tag == TagGetPage {
			r.BlockNo = binary.BigEndian.Uint32(p[relTagLen:])
		}
	case TagDbSize:
		r.DbNode = pgtypes.Oid(binary.BigEndian.Uint32(p))
	case TagGetSlruSegment:
		r.Kind = SlruKind(p[0])
		r.SegNo = binary.BigEndian.Uint32(p[1:])
	}
	return r, nil
}

func decodeRelTag(p []byte) pgtypes.RelTag {
	return pgtypes.RelTag{
		SpcNode: pgtypes.Oid(binary.BigEndian.Uint32(p)),
		DbNode:  pgtypes.Oid(binary.BigEndian.Uint32(p[4:])),
		RelNode: pgtypes.Oid(binary.BigEndian.Uint32(p[8:])),
		ForkNum: pgtypes.ForkNumber(p[12]),
	}
}

func appendRelTag(dst []byte, t pgtypes.RelTag) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(t.SpcNode))
	dst = binary.BigEndian.AppendUint32(dst, uint32(t.DbNode))
	dst = binary.BigEndian.AppendUint32(dst, uint32(t.RelNode))
	return append(dst, byte(t.ForkNum))
}

// appendHeader appends the version's header fields of r (without the tag).
func appendHeader(dst []byte, v Version, r *Request) []byte {
	if v == V3 {
		dst = binary.BigEndian.AppendUint64(dst, r.ReqID)
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.RequestLSN))
	return binary.BigEndian.AppendUint64(dst, uint64(r.NotModifiedSince))
}

// appendBody appends the request body of r (what V3 responses echo).
func appendBody(dst []byte, r *Request) []byte {
	switch r.Tag {
	case TagExists, TagNblocks:
		dst = appendRelTag(dst, r.Rel)
	case TagGetPage:
		dst = appendRelTag(dst, r.Rel)
		dst = binary.BigEndian.AppendUint32(dst, r.BlockNo)
	case TagDbSize:
		dst = binary.BigEndian.AppendUint32(dst, uint32(r.DbNode))
	case TagGetSlruSegment:
		dst = append(dst, byte(r.Kind))
		dst = binary.BigEndian.AppendUint32(dst, r.SegNo)
	}
	return dst
}

// AppendRequest appends the encoding of r in version v to dst (compute
// side). It fails for an invalid version or an unknown tag.
func AppendRequest(dst []byte, v Version, r *Request) ([]byte, error) {
	if !v.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrUnsupportedVersion, v)
	}
	if r.Tag.bodyLen() < 0 {
		return dst, fmt.Errorf("%w: unknown request tag %d", ErrMalformed, uint8(r.Tag))
	}
	dst = append(dst, byte(r.Tag))
	dst = appendHeader(dst, v, r)
	return appendBody(dst, r), nil
}

// Response is one pagestream response. Req is the request it answers (V3
// echoes its header and body). Which payload field is used depends on Tag.
type Response struct {
	Tag ResponseTag
	Req Request
	// Exists answers Exists.
	Exists bool
	// NBlocks answers Nblocks.
	NBlocks uint32
	// Page answers GetPage: exactly PageSize bytes.
	Page []byte
	// DbSize answers DbSize, in bytes.
	DbSize int64
	// Segment answers GetSlruSegment: a multiple of PageSize bytes, at most
	// MaxSlruBlocks pages.
	Segment []byte
	// Message is the text of an Error response.
	Message string
}

// AppendResponse appends the encoding of resp in version v to dst (server
// side). The payload sizes are checked so that a buggy upstream cannot make
// pgproxy emit a frame the compute would misparse: a GetPage payload must be
// exactly PageSize bytes and an SLRU segment a whole number of at most
// MaxSlruBlocks pages. Error messages are truncated to MaxErrorMessageLen
// bytes and NUL bytes in them are replaced (the message is NUL-terminated).
func AppendResponse(dst []byte, v Version, resp *Response) ([]byte, error) {
	if !v.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrUnsupportedVersion, v)
	}
	switch resp.Tag {
	case TagGetPageResponse:
		if len(resp.Page) != PageSize {
			return dst, fmt.Errorf("%w: page image is %d bytes, want %d", ErrMalformed, len(resp.Page), PageSize)
		}
	case TagGetSlruSegmentResponse:
		if len(resp.Segment)%PageSize != 0 || len(resp.Segment) > MaxSlruBlocks*PageSize {
			return dst, fmt.Errorf("%w: SLRU segment is %d bytes, want a multiple of %d up to %d pages", ErrMalformed, len(resp.Segment), PageSize, MaxSlruBlocks)
		}
	case TagExistsResponse, TagNblocksResponse, TagDbSizeResponse, TagErrorResponse:
	default:
		return dst, fmt.Errorf("%w: unknown response tag %d", ErrMalformed, uint8(resp.Tag))
	}
	dst = append(dst, byte(resp.Tag))
	if v == V3 {
		dst = appendHeader(dst, v, &resp.Req)
		if resp.Tag != TagErrorResponse {
			dst = appendBody(dst, &resp.Req)
		}
	}
	switch resp.Tag {
	case TagExistsResponse:
		b := byte(0)
		if resp.Exists {
			b = 1
		}
		dst = append(dst, b)
	case TagNblocksResponse:
		dst = binary.BigEndian.AppendUint32(dst, resp.NBlocks)
	case TagGetPageResponse:
		dst = append(dst, resp.Page...)
	case TagDbSizeResponse:
		dst = binary.BigEndian.AppendUint64(dst, uint64(resp.DbSize))
	case TagGetSlruSegmentResponse:
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(resp.Segment)/PageSize))
		dst = append(dst, resp.Segment...)
	case TagErrorResponse:
		msg := resp.Message
		if len(msg) > MaxErrorMessageLen {
			msg = msg[:MaxErrorMessageLen]
		}
		for i := 0; i < len(msg); i++ {
			if msg[i] == 0 {
				dst = append(dst, '?')
			} else {
				dst = append(dst, msg[i])
			}
		}
		dst = append(dst, 0)
	}
	return dst, nil
}

// DecodeResponse decodes one response of version v from b (compute side).
// For V3 the echoed request is decoded into resp.Req; the caller compares it
// with what it sent. Page and Segment alias b.
func DecodeResponse(v Version, b []byte) (Response, error) {
	var resp Response
	if !v.Valid() {
		return resp, fmt.Errorf("%w: %d", ErrUnsupportedVersion, v)
	}
	if len(b) == 0 {
		return resp, fmt.Errorf("%w: empty response", ErrMalformed)
	}
	resp.Tag = ResponseTag(b[0])
	p := b[1:]
	var reqTag RequestTag
	switch resp.Tag {
	case TagExistsResponse:
		reqTag = TagExists
	case TagNblocksResponse:
		reqTag = TagNblocks
	case TagGetPageResponse:
		reqTag = TagGetPage
	case TagDbSizeResponse:
		reqTag = TagDbSize
	case TagGetSlruSegmentResponse:
		reqTag = TagGetSlruSegment
	case TagErrorResponse:
	default:
		return resp, fmt.Errorf("%w: unknown response tag %d", ErrMalformed, b[0])
	}
	if v == V3 {
		echo := 24
		if resp.Tag != TagErrorResponse {
			echo += reqTag.bodyLen()
		}
		if len(p) < echo {
			return resp, fmt.Errorf("%w: response tag %d: %d bytes, want at least %d", ErrMalformed, b[0], len(b), 1+echo)
		}
		resp.Req.Tag = reqTag
		resp.Req.ReqID = binary.BigEndian.Uint64(p)
		resp.Req.RequestLSN = lsn.LSN(binary.BigEndian.Uint64(p[8:]))
		resp.Req.NotModifiedSince = lsn.LSN(binary.BigEndian.Uint64(p[16:]))
		body := p[24:echo]
		switch reqTag {
		case TagExists, TagNblocks, TagGetPage:
			if resp.Tag != TagErrorResponse {
				resp.Req.Rel = decodeRelTag(body)
				if reqTag == TagGetPage {
					resp.Req.BlockNo = binary.BigEndian.Uint32(body[relTagLen:])
				}
			}
		case TagDbSize:
			resp.Req.DbNode = pgtypes.Oid(binary.BigEndian.Uint32(body))
		case TagGetSlruSegment:
			resp.Req.Kind = SlruKind(body[0])
			resp.Req.SegNo = binary.BigEndian.Uint32(body[1:])
		}
		p = p[echo:]
	}
	fixed := func(n int) error {
		if len(p) != n {
			return fmt.Errorf("%w: response tag %d has a %d-byte payload, want %d", ErrMalformed, b[0], len(p), n)
		}
		return nil
	}
	switch resp.Tag {
	case TagExistsResponse:
		if err := fixed(1); err != nil {
			return resp, err
		}
		if p[0] > 1 {
			return resp, fmt.Errorf("%w: exists flag %d is not 0 or 1", ErrMalformed, p[0])
		}
		resp.Exists = p[0] == 1
	case TagNblocksResponse:
		if err := fixed(4); err != nil {
			return resp, err
		}
		resp.NBlocks = binary.BigEndian.Uint32(p)
	case TagGetPageResponse:
		if err := fixed(PageSize); err != nil {
			return resp, err
		}
		resp.Page = p
	case TagDbSizeResponse:
		if err := fixed(8); err != nil {
			return resp, err
		}
		resp.DbSize = int64(binary.BigEndian.Uint64(p))
	case TagGetSlruSegmentResponse:
		if len(p) < 4 {
			return resp, fmt.Errorf("%w: SLRU response without block count", ErrMalformed)
		}
		n := binary.BigEndian.Uint32(p)
		if n > MaxSlruBlocks {
			return resp, fmt.Errorf("%w: SLRU response claims %d blocks, at most %d", ErrMalformed, n, MaxSlruBlocks)
		}
		p = p[4:]
		if err := fixed(int(n) * PageSize); err != nil {
			return resp, err
		}
		resp.Segment = p
	case TagErrorResponse:
		if len(p) == 0 || p[len(p)-1] != 0 {
			return resp, fmt.Errorf("%w: error message is not NUL-terminated", ErrMalformed)
		}
		resp.Message = string(p[:len(p)-1])
	}
	return resp, nil
}
