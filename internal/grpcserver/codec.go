package grpcserver

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// RawReceiver is implemented by a message a streaming handler passes to
// RecvMsg to take the request's bytes as they arrived, before protobuf
// decoding: gRPC's receive buffers, without the copy into one contiguous
// buffer and the copy of a bytes field that decoding makes. SetRaw must Ref
// what it keeps and Free it when done with it. The pageserver's Ingest
// uses it for WAL chunks (up to 1 MiB each).
type RawReceiver interface {
	SetRaw(data mem.BufferSlice)
}

// codec is the server's codec: protobuf (gRPC's own codec, used for
// everything else), plus RawReceiver.
type codec struct {
	proto encoding.CodecV2
}

func newCodec() (codec, error) {
	c := encoding.GetCodecV2(proto.Name)
	if c == nil {
		return codec{}, fmt.Errorf("grpcserver: the %q codec is not registered", proto.Name)
	}
	return codec{proto: c}, nil
}

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(RawReceiver); ok {
		r.SetRaw(data)
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (c codec) Name() string { return c.proto.Name() }
