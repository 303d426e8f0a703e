package server

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// split cuts b into pieces at the given cut points (taken modulo len(b)).
func split(b []byte, cuts []byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	var pieces [][]byte
	for _, c := range cuts {
		at := int(c) % len(b)
		pieces = append(pieces, b[:at])
		b = b[at:]
	}
	return append(pieces, b)
}

func walRequest(t testing.TB, start uint64, data []byte, sentAt bool) []byte {
	t.Helper()
	chunk := &pb.WalChunk{StartLsn: start, Data: data, SenderFlushLsn: start + uint64(len(data))}
	if sentAt {
		chunk.SentAt = timestamppb.New(time.Unix(1_700_000_000, 123))
	}
	b, err := proto.Marshal(&pb.IngestRequest{Message: &pb.IngestRequest_Wal{Wal: chunk}})
	require.NoError(t, err)
	return b
}

// TestParseWalChunkFastPath: the chunks the bridge sends parse without
// protobuf, from any split into receive buffers, and the WAL pieces alias
// those buffers (no copy).
func TestParseWalChunkFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 1, 100, 16 << 10, 1 << 20} {
		for _, sentAt := range []bool{false, true} {
			msg := walRequest(t, 0x1_0000_0028, data[:n], sentAt)
			cuts := make([]byte, r.IntN(70))
			for i := range cuts {
				cuts[i] = byte(r.Uint32())
			}
			for _, pieces := range [][][]byte{{msg}, split(msg, cuts), chunked(msg, 16<<10)} {
				wal, ok := parseWalChunk(pieces, nil)
				require.True(t, ok, "%d bytes, sent_at %v, %d pieces", n, sentAt, len(pieces))
				require.Equal(t, uint64(0x1_0000_0028), wal.startLSN)
				require.Equal(t, data[:n], bytes.Join(wal.data, nil))
				for _, p := range wal.data {
					if len(p) > 0 {
						require.True(t, aliases(p, pieces), "WAL piece is not in a receive buffer")
					}
				}
			}
		}
	}
}

func chunked(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func aliases(p []byte, pieces [][]byte) bool {
	for _, q := range pieces {
		if sameArray(p, q) {
			return true
		}
	}
	return false
}

// sameArray reports whether p lies inside q.
func sameArray(p, q []byte) bool {
	for i := range q {
		if &q[i] == &p[0] {
			return i+len(p) <= len(q)
		}
	}
	return false
}

// TestRawRequestFallsBackToProtobuf: other messages and unusual encodings
// of a WAL chunk go through protobuf, with its result or its error.
func TestRawRequestFallsBackToProtobuf(t *testing.T) {
	decode := func(b []byte) (*walChunk, *pb.IngestRequest, error) {
		r := &rawIngestRequest{}
		r.SetRaw(mem.BufferSlice{mem.SliceBuffer(b)})
		defer r.free()
		wal, m, err := r.decode()
		if wal != nil {
			wal = &walChunk{startLSN: wal.startLSN, data: [][]byte{bytes.Join(wal.data, nil)}}
		}
		return wal, m, err
	}
	keep, err := proto.Marshal(&pb.IngestRequest{Message: &pb.IngestRequest_Keepalive{Keepalive: &pb.IngestKeepalive{ReplyRequested: true}}})
	require.NoError(t, err)
	wal, m, err := decode(keep)
	require.NoError(t, err)
	require.Nil(t, wal)
	require.True(t, m.GetKeepalive().GetReplyRequested())

	// Two data fields: protobuf's last-one-wins, through the fallback.
	twice := append(walRequest(t, 5, []byte("first"), false), walRequest(t, 9, []byte("second"), false)...)
	wal, m, err = decode(twice)
	require.NoError(t, err)
	require.NotNil(t, m)
	require.Equal(t, uint64(9), wal.startLSN)
	require.Equal(t, []byte("second"), wal.data[0])

	// Truncated: protobuf's error.
	full := walRequest(t, 5, []byte("some wal bytes"), true)
	_, _, err = decode(full[:len(full)-3])
	require.Error(t, err)
}

// FuzzParseWalChunk: whatever parseWalChunk accepts, protobuf decodes to
// the same WAL chunk.
func FuzzParseWalChunk(f *testing.F) {
	f.Add(walRequest(f, 42, []byte("wal"), true), []byte{3, 9})
	f.Add(walRequest(f, 1<<40, bytes.Repeat([]byte{7}, 300), false), []byte{200})
	f.Add(append(walRequest(f, 1, []byte("a"), false), walRequest(f, 2, []byte("b"), true)...), []byte{})
	keep, _ := proto.Marshal(&pb.IngestRequest{Message: &pb.IngestRequest_Keepalive{Keepalive: &pb.IngestKeepalive{}}})
	f.Add(keep, []byte{1})
	f.Fuzz(func(t *testing.T, msg, cuts []byte) {
		wal, ok := parseWalChunk(split(msg, cuts), nil)
		if !ok {
			return
		}
		var m pb.IngestRequest
		require.NoError(t, proto.Unmarshal(msg, &m), "parseWalChunk accepted what protobuf rejects")
		require.NotNil(t, m.GetWal(), "parseWalChunk accepted a message that holds no WAL chunk")
		require.Equal(t, m.GetWal().GetStartLsn(), wal.startLSN)
		require.True(t, bytes.Equal(m.GetWal().GetData(), bytes.Join(wal.data, nil)))
	})
}
