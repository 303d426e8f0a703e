package service

import (
	"context"
	"io"
	"net"

	"github.com/stratadb/strata/internal/grpcserver"
	"github.com/stratadb/strata/internal/metrics"
)

// GRPCService describes a service whose public face is one gRPC server.
type GRPCService struct {
	// Name is the service name used in logs ("pageserver").
	Name string
	// Common is the service's common config section.
	Common Common
	// ListenAddr is the gRPC address.
	ListenAddr string
	// LogOutput receives the logs (os.Stderr in production).
	LogOutput io.Writer
	// Register registers the service's adapters on the server and returns
	// the extra parts (background loops) the service runs beside it.
	Register func(ctx context.Context, kit *Kit, srv *grpcserver.Server) ([]Part, error)
}

// Run builds the kit, listens, registers the adapters and serves until ctx
// is cancelled or a part fails.
func (s GRPCService) Run(ctx context.Context) error {
	kit, err := Setup(s.Name, s.Common, s.LogOutput, metrics.NewRegistry)
	if err != nil {
		return err
	}
	srv, err := grpcserver.New(grpcserver.Options{Logger: kit.Logger, Registry: kit.Registry, Auth: kit.Auth})
	if err != nil {
		return err
	}
	var parts []Part
	if s.Register != nil {
		if parts, err = s.Register(ctx, kit, srv); err != nil {
			return err
		}
	}
	grpcLis, err := Listen(s.Name+" gRPC", s.ListenAddr)
	if err != nil {
		return err
	}
	var metricsLis net.Listener
	if s.Common.MetricsAddr != "" {
		if metricsLis, err = Listen(s.Name+" metrics", s.Common.MetricsAddr); err != nil {
			_ = grpcLis.Close()
			return err
		}
	}
	kit.Logger.Info("starting", "grpc_addr", grpcLis.Addr().String(), "metrics_addr", s.Common.MetricsAddr, "auth_mode", s.Common.AuthMode)
	parts = append(parts, GRPCPart(srv, grpcLis), MetricsPart(kit, metricsLis))
	err = RunParts(ctx, parts...)
	kit.Logger.Info("stopped", "err", err)
	return err
}
