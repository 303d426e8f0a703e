package service

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/metrics"
)

// Listen opens a TCP listener with an error that names what it is for.
func Listen(what, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listening on %s: %w", what, addr, err)
	}
	return lis, nil
}

// Part is one long-running piece of a service: it runs until ctx is
// cancelled and returns nil then, or returns the error that stopped it.
type Part func(ctx context.Context) error

// GRPCPart serves srv on lis.
func GRPCPart(srv *grpcserver.Server, lis net.Listener) Part {
	return func(ctx context.Context) error { return srv.Serve(ctx, lis) }
}

// MetricsPart serves the kit's registry on lis; a nil lis disables it.
func MetricsPart(kit *Kit, lis net.Listener) Part {
	return func(ctx context.Context) error {
		if lis == nil {
			return nil
		}
		return metrics.Serve(ctx, lis, kit.Registry, kit.Logger)
	}
}

// RunParts runs every part until ctx is cancelled or one part fails; then it
// cancels the others, waits for all of them and returns the first error.
func RunParts(ctx context.Context, parts ...Part) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error { return p(ctx) })
	}
	return g.Wait()
}
