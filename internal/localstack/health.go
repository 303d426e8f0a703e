package localstack

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// probeTimeout bounds one health probe.
const probeTimeout = time.Second

// probe returns nil when svc at addr is ready: gRPC health SERVING for the
// server as a whole (service ""), or an accepted TCP connection.
func probe(ctx context.Context, svc Service, addr string) error {
	if addr == "" {
		return fmt.Errorf("no listen_addr in its config")
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if svc.Health == HealthTCP {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("%s does not accept connections", addr)
		}
		return conn.Close()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("gRPC health check at %s: %v", addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("gRPC health at %s is %s", addr, resp.GetStatus())
	}
	return nil
}
