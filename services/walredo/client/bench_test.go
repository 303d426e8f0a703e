package client_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/redo"
	"github.com/stratadb/strata/services/walredo/server"
)

// Baseline, measured 2026-11-29 on this 2-vCPU VM shared with ~7 other
// engineers (load average 5.3), two runs of
// go test -run '^$' -bench . -benchtime=3000x -count=2 ./services/walredo/client/
// one child, the pool benchmark's crafted Heap/INSERT records; in-process
// and gRPC (loopback TCP, trust mode, the real grpcserver with its
// interceptors) in the same run, µs/op:
//
//	             in-process   gRPC        gRPC adds
//	records=0    28.5–29.8    219–245     ~190–215   (8 KB each way)
//	records=1    28.6–29.3    219–229     ~190–200
//	records=10   28.1–37.0    305–345     ~270–310
//	records=100  51.2–51.6    489–1412    ~440+ (noisy)
//	empty unary call (BenchmarkGRPCFloor): 78–104 µs, 193 allocs
//	parallel, 10 records: 1 child 15.6–23.4 k pages/s in-process, 5.7–8.3 k via gRPC;
//	2 children 27.7–31.3 k in-process, 5.0–5.4 k via gRPC
//
// Issue #4 target: gRPC adds ≤ 60 µs per request — NOT met on this machine:
// an empty unary call through the same server already costs 78–104 µs.
func BenchmarkApply(b *testing.B) {
	p := newPool(b, pool.Config{})
	c := clientFor(b, p)
	ctx := context.Background()
	base := make([]byte, pgtypes.BLCKSZ)
	require.NoError(b, p.Apply(ctx, &redo.Request{Tenant: tenant(50), Tag: heapTag, Records: heapChain(lsn.MustParse("0/1000000"), 1)}, base))
	for _, n := range []int{0, 1, 10, 100} {
		req := &redo.Request{Tenant: tenant(50), Tag: heapTag}
		if n == 0 {
			req.Base = base
		} else {
			req.Records = heapChain(lsn.MustParse("0/1000000"), n)
		}
		for _, via := range []struct {
			name string
			r    redo.Redoer
		}{{"inprocess", p}, {"grpc", c}} {
			b.Run(via.name+"/records="+strconv.Itoa(n), func(b *testing.B) {
				page := make([]byte, pgtypes.BLCKSZ)
				b.ReportAllocs()
				for b.Loop() {
					if err := via.r.Apply(ctx, req, page); err != nil {
						b.Fatal(err)
					}
				}
				if n > 0 {
					b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
				}
			})
		}
	}
}

// BenchmarkApplyParallel measures pages/s through gRPC with 1 and 2
// children of one tenant serving 10-record requests concurrently.
func BenchmarkApplyParallel(b *testing.B) {
	for _, children := range []int{1, 2} {
		for _, via := range []string{"inprocess", "grpc"} {
			b.Run(via+"/children="+strconv.Itoa(children), func(b *testing.B) {
				p := newPool(b, pool.Config{MaxChildren: children, MaxChildrenPerTenant: children})
				var r redo.Redoer = p
				if via == "grpc" {
					r = clientFor(b, p)
				}
				ctx := context.Background()
				req := &redo.Request{Tenant: tenant(51), Tag: heapTag, Records: heapChain(lsn.MustParse("0/1000000"), 10)}
				warm := make(chan error, children)
				for range children {
					go func() { warm <- p.Apply(ctx, req, make([]byte, pgtypes.BLCKSZ)) }()
				}
				for range children {
					require.NoError(b, <-warm)
				}
				b.SetParallelism(2) // 2×GOMAXPROCS callers keep every child busy across the network hop
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					page := make([]byte, pgtypes.BLCKSZ)
					for pb.Next() {
						if err := r.Apply(ctx, req, page); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
			})
		}
	}
}

func clientFor(b *testing.B, p *pool.Pool) redo.Redoer {
	return newClient(serve(b, p, nil, server.Options{}))
}

// BenchmarkGRPCFloor is the cost of an empty unary call (health Check)
// through the same grpcserver and connection type: the transport's floor,
// to tell what the walredo adapter adds from what gRPC itself costs here.
func BenchmarkGRPCFloor(b *testing.B) {
	conn := serve(b, failing{}, nil, server.Options{})
	hc := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
