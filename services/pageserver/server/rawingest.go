package server

import (
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// rawIngestRequest receives an IngestRequest as gRPC's receive buffers
// (grpcserver.RawReceiver): a WAL chunk is fed to the decoder from those
// buffers, without the two copies of protobuf decoding (into one contiguous
// buffer, then into a fresh []byte per message — page faults included).
type rawIngestRequest struct {
	data   mem.BufferSlice
	pieces [][]byte // scratch: the buffers' bytes
	wal    [][]byte // scratch: the WAL data's pieces
}

// SetRaw implements grpcserver.RawReceiver.
func (r *rawIngestRequest) SetRaw(data mem.BufferSlice) {
	data.Ref()
	r.data = data
}

// free releases the buffers (and the WAL pieces that alias them).
func (r *rawIngestRequest) free() {
	r.data.Free()
	r.data = nil
	clear(r.wal)
	r.wal = r.wal[:0]
}

// walChunk is a WalChunk whose data is a list of pieces aliasing the
// receive buffers.
type walChunk struct {
	startLSN uint64
	data     [][]byte
}

// decode returns the request's WAL chunk when it holds one (its pieces
// valid until free), and otherwise the request decoded by protobuf.
func (r *rawIngestRequest) decode() (*walChunk, *pb.IngestRequest, error) {
	for _, b := range r.data {
		r.pieces = append(r.pieces, b.ReadOnlyData())
	}
	wal, ok := parseWalChunk(r.pieces, r.wal[:0])
	clear(r.pieces)
	r.pieces = r.pieces[:0]
	if ok {
		r.wal = wal.data
		return &wal, nil, nil
	}
	msg := &pb.IngestRequest{}
	if err := proto.Unmarshal(r.data.Materialize(), msg); err != nil {
		return nil, nil, err
	}
	if w := msg.GetWal(); w != nil {
		return &walChunk{startLSN: w.GetStartLsn(), data: [][]byte{w.GetData()}}, msg, nil
	}
	return nil, msg, nil
}

// parseWalChunk parses pieces (the concatenation is the message) as an
// IngestRequest holding a WalChunk and nothing else; the data pieces are
// appended to dst and alias pieces. It returns ok = false for anything else
// or anything unusual (the caller then decodes the message with protobuf,
// which gives the same result or the error): it never accepts a message
// protobuf would decode differently (FuzzParseWalChunk checks this).
func parseWalChunk(pieces, dst [][]byte) (walChunk, bool) {
	c := pieceCursor{pieces: pieces}
	tag, ok := c.varint()
	if !ok || tag != uint64(protowire.EncodeTag(2, protowire.BytesType)) {
		return walChunk{}, false
	}
	n, ok := c.varint()
	if !ok || n != uint64(c.remaining()) {
		return walChunk{}, false // not the only field: let protobuf merge
	}
	var wal walChunk
	var haveData bool
	for c.remaining() > 0 {
		tag, ok := c.varint()
		if !ok {
			return walChunk{}, false
		}
		num, typ := protowire.DecodeTag(tag)
		switch {
		case num == 1 && typ == protowire.VarintType:
			if wal.startLSN, ok = c.varint(); !ok {
				return walChunk{}, false
			}
		case num == 2 && typ == protowire.BytesType:
			if haveData {
				return walChunk{}, false // repeated: let protobuf decide
			}
			l, ok := c.varint()
			if !ok || l > uint64(c.remaining()) {
				return walChunk{}, false
			}
			wal.data = c.take(int(l), dst)
			haveData = true
		case num == 3 && typ == protowire.VarintType:
			if _, ok := c.varint(); !ok {
				return walChunk{}, false
			}
		case num == 4 && typ == protowire.BytesType:
			// sent_at is not used by the pageserver; a malformed one
			// goes to protobuf for its error.
			l, ok := c.varint()
			if !ok || l > uint64(c.remaining()) || !validTimestamp(c.take(int(l), nil)) {
				return walChunk{}, false
			}
		default:
			return walChunk{}, false
		}
	}
	return wal, true
}

// validTimestamp reports whether pieces decode as a Timestamp message.
func validTimestamp(pieces [][]byte) bool {
	var b []byte
	for _, p := range pieces {
		b = append(b, p...)
	}
	return proto.Unmarshal(b, &timestamppb.Timestamp{}) == nil
}

// pieceCursor reads a byte sequence given as pieces.
type pieceCursor struct {
	pieces [][]byte
	i, off int
}

func (c *pieceCursor) remaining() int {
	n := 0
	for j := c.i; j < len(c.pieces); j++ {
		n += len(c.pieces[j])
	}
	return n - c.off
}

func (c *pieceCursor) byte() (byte, bool) {
	for c.i < len(c.pieces) && c.off == len(c.pieces[c.i]) {
		c.i, c.off = c.i+1, 0
	}
	if c.i == len(c.pieces) {
		return 0, false
	}
	b := c.pieces[c.i][c.off]
	c.off++
	return b, true
}

// varint reads a protobuf varint (at most 10 bytes, canonical or not, as
// protowire accepts them).
func (c *pieceCursor) varint() (uint64, bool) {
	var buf [binaryMaxVarintLen]byte
	for k := range buf {
		b, ok := c.byte()
		if !ok {
			return 0, false
		}
		buf[k] = b
		if b < 0x80 {
			v, n := protowire.ConsumeVarint(buf[:k+1])
			return v, n > 0
		}
	}
	return 0, false
}

const binaryMaxVarintLen = 10

// take appends to dst the n next bytes as slices of the pieces. n must not
// exceed remaining.
func (c *pieceCursor) take(n int, dst [][]byte) [][]byte {
	for n > 0 {
		for c.off == len(c.pieces[c.i]) {
			c.i, c.off = c.i+1, 0
		}
		k := min(n, len(c.pieces[c.i])-c.off)
		dst = append(dst, c.pieces[c.i][c.off:c.off+k:c.off+k])
		c.off += k
		n -= k
	}
	return dst
}
