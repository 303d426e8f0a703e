package pgproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stratadb/strata/internal/auth"
	pageserverv1 "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pgproxy/pagestream"
)

// BenchmarkGetPage compares, in one run, GetPage cache hits (the fake
// serves pages from memory) through pgproxy (pagestream v3 over the
// PostgreSQL protocol, then gRPC GetPages), directly on the fake's gRPC
// GetPages stream, and a raw gRPC bidi echo of an 8 KB payload (the
// transport ceiling). Each is run at pipeline depth 1 and 32, with 1 and 8
// connections (streams). Reported: pages/s and p50/p99 latency (µs) per
// request from send to response.
//
// Baseline (AMD EPYC, 2 shared cores with other builds running, 2026-11-29;
// full table in docs/pgproxy.md): conns=1/depth=32 pgproxy 35.4 k pages/s vs
// direct gRPC 49.9 k (71 %) vs echo 81.9 k; conns=1/depth=1 pgproxy p50
// 59 µs, p99 332 µs.
func BenchmarkGetPage(b *testing.B) {
	e := startEnv(b, envOptions{proxyMode: auth.ModeTrust, fakeMode: auth.ModeTrust})
	fakeAddr := e.fakeAddr
	echoAddr := startEcho(b)

	for _, conns := range []int{1, 8} {
		for _, depth := range []int{1, 32} {
			name := fmt.Sprintf("conns=%d/depth=%d", conns, depth)
			b.Run("pgproxy/"+name, func(b *testing.B) {
				runConns(b, conns, depth, func(ctx context.Context) (sender, error) {
					c, err := pagestream.Connect(ctx, e.connString(""), pagestream.V3, tenantA, timelineA)
					if err != nil {
						return nil, err
					}
					return &pagestreamSender{c: c}, nil
				})
			})
			b.Run("direct-grpc/"+name, func(b *testing.B) {
				conn := dialBench(b, fakeAddr)
				runConns(b, conns, depth, func(ctx context.Context) (sender, error) {
					s, err := pageserverv1.NewPageServiceClient(conn).GetPages(ctx)
					if err != nil {
						return nil, err
					}
					return &grpcSender{s: s}, nil
				})
			})
			b.Run("grpc-echo-8k/"+name, func(b *testing.B) {
				conn := dialBench(b, echoAddr)
				runConns(b, conns, depth, func(ctx context.Context) (sender, error) {
					s, err := conn.NewStream(ctx, &echoDesc.Streams[0], "/bench.Echo/Echo")
					if err != nil {
						return nil, err
					}
					return &echoSender{s: s, payload: make([]byte, 8192)}, nil
				})
			})
		}
	}
}

// sender is one pipelined stream of GetPage-like round trips.
type sender interface {
	send(i int) error
	recv() error
	close()
}

type pagestreamSender struct{ c *pagestream.Client }

func (s *pagestreamSender) send(i int) error {
	if err := s.c.Send(&pagestream.Request{Tag: pagestream.TagGetPage, ReqID: uint64(i), RequestLSN: 0x1000000, NotModifiedSince: 0x1000000,
		Rel: rel, BlockNo: uint32(i % 1000)}); err != nil {
		return err
	}
	return s.c.Flush()
}

func (s *pagestreamSender) recv() error {
	resp, err := s.c.Receive()
	if err == nil && resp.Tag != pagestream.TagGetPageResponse {
		err = fmt.Errorf("response %d: %s", resp.Tag, resp.Message)
	}
	return err
}

func (s *pagestreamSender) close() { _ = s.c.Close() }

type grpcSender struct {
	s pageserverv1.PageService_GetPagesClient
}

var benchRef = &pageserverv1.TimelineRef{TenantId: tenantA, TimelineId: timelineA}

func (s *grpcSender) send(i int) error {
	return s.s.Send(&pageserverv1.GetPagesRequest{RequestId: uint64(i), Timeline: benchRef,
		ReadLsn: &pageserverv1.ReadLsn{RequestLsn: 0x1000000, NotModifiedSinceLsn: 0x1000000}, Rel: protoRel(rel), BlockNumbers: []uint32{uint32(i % 1000)}})
}

func (s *grpcSender) recv() error {
	resp, err := s.s.Recv()
	if err == nil && resp.GetStatusCode() != pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK {
		err = fmt.Errorf("status %s: %s", resp.GetStatusCode(), resp.GetReason())
	}
	return err
}

func (s *grpcSender) close() { _ = s.s.CloseSend() }

type echoSender struct {
	s       grpc.ClientStream
	payload []byte
}

func (s *echoSender) send(int) error {
	return s.s.SendMsg(&wrapperspb.BytesValue{Value: s.payload[:40]})
}
func (s *echoSender) recv() error { return s.s.RecvMsg(&wrapperspb.BytesValue{}) }
func (s *echoSender) close()      { _ = s.s.CloseSend() }

// runConns splits b.N round trips over conns streams with at most depth in
// flight on each, and reports throughput and latency percentiles.
func runConns(b *testing.B, conns, depth int, open func(ctx context.Context) (sender, error)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	senders := make([]sender, conns)
	for i := range senders {
		s, err := open(ctx)
		if err != nil {
			b.Fatal(err)
		}
		senders[i] = s
		defer s.close()
	}
	latencies := make([][]time.Duration, conns)
	errs := make([]error, conns)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for ci, s := range senders {
		n := b.N / conns
		if ci < b.N%conns {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			latencies[ci], errs[ci] = pipeline(s, n, depth)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "pages/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}

// pipeline runs n round trips on s with at most depth outstanding.
func pipeline(s sender, n, depth int) ([]time.Duration, error) {
	sentAt := make([]time.Time, n)
	lat := make([]time.Duration, 0, n)
	tokens := make(chan struct{}, depth)
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			tokens <- struct{}{}
			sentAt[i] = time.Now()
			if err := s.send(i); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	for i := 0; i < n; i++ {
		if err := s.recv(); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(sentAt[i]))
		<-tokens
	}
	return lat, <-sendErr
}

func dialBench(b *testing.B, addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(4<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return conn
}

// echoDesc is a hand-written bidi service: each 40-byte request is
// answered with 8 KB (the shape of a GetPage), nothing else.
var echoDesc = grpc.ServiceDesc{
	ServiceName: "bench.Echo",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName: "Echo", ServerStreams: true, ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			page := &wrapperspb.BytesValue{Value: make([]byte, 8192)}
			for {
				var req wrapperspb.BytesValue
				if err := stream.RecvMsg(&req); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
				if err := stream.SendMsg(page); err != nil {
					return err
				}
			}
		},
	}},
}

func startEcho(b *testing.B) string {
	srv := grpc.NewServer(grpc.InitialWindowSize(1<<20), grpc.InitialConnWindowSize(4<<20))
	srv.RegisterService(&echoDesc, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	return lis.Addr().String()
}
