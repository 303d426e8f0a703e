package grpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxRecvMsgBytes      = 16 << 20
	DefaultMaxSendMsgBytes      = 16 << 20
	DefaultMaxConcurrentStreams = 1024
	DefaultShutdownTimeout      = 10 * time.Second
)

// Options configures New.
type Options struct {
	// Logger receives failed calls and recovered panics. Required.
	Logger *slog.Logger
	// Registry receives the gRPC server metrics. Required.
	Registry prometheus.Registerer
	// Auth authenticates calls. Required: use auth.ModeTrust explicitly
	// for an open server.
	Auth *auth.Authenticator

	MaxRecvMsgBytes      int
	MaxSendMsgBytes      int
	MaxConcurrentStreams uint32
	// ShutdownTimeout bounds the graceful stop in Serve before in-flight
	// calls are cancelled.
	ShutdownTimeout time.Duration
}

// Server is a gRPC server with its health service.
type Server struct {
	*grpc.Server
	Health *health.Server

	metrics         *grpcprom.ServerMetrics
	logger          *slog.Logger
	shutdownTimeout time.Duration
}

// New builds a server. Register services on it, then call Serve.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil || opts.Registry == nil || opts.Auth == nil {
		return nil, fmt.Errorf("grpcserver: Logger, Registry and Auth are required")
	}
	if opts.MaxRecvMsgBytes == 0 {
		opts.MaxRecvMsgBytes = DefaultMaxRecvMsgBytes
	}
	if opts.MaxSendMsgBytes == 0 {
		opts.MaxSendMsgBytes = DefaultMaxSendMsgBytes
	}
	if opts.MaxConcurrentStreams == 0 {
		opts.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}

	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5, 30}),
	))
	if err := opts.Registry.Register(metrics); err != nil {
		return nil, fmt.Errorf("grpcserver: registering metrics: %w", err)
	}

	logger := opts.Logger
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in gRPC handler", "panic", p, "stack", string(debug.Stack()))
		return status.Errorf(codes.Internal, "internal error (panic recovered; see server log)")
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(code codes.Code) logging.Level {
			switch code {
			case codes.OK, codes.Canceled, codes.NotFound, codes.AlreadyExists:
				return logging.LevelDebug
			case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
				return logging.LevelError
			default:
				return logging.LevelWarn
			}
		}),
	}
	slogger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})

	cdc, err := newCodec()
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer(
		grpc.ForceServerCodecV2(cdc),
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgBytes),
		grpc.MaxSendMsgSize(opts.MaxSendMsgBytes),
		grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams),
		// Large windows: GetPages streams many 8 KB pages (perf-limits.md §0).
		grpc.InitialWindowSize(1<<20),
		grpc.InitialConnWindowSize(4<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(
			metrics.UnaryServerInterceptor(),
			recovery.UnaryServerInterceptor(recoveryOpt),
			logging.UnaryServerInterceptor(slogger, logOpts...),
			opts.Auth.UnaryServerInterceptor(),
		),
		grpc.ChainStreamInterceptor(
			metrics.StreamServerInterceptor(),
			recovery.StreamServerInterceptor(recoveryOpt),
			logging.StreamServerInterceptor(slogger, logOpts...),
			opts.Auth.StreamServerInterceptor(),
		),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return &Server{Server: srv, Health: hs, metrics: metrics, logger: logger, shutdownTimeout: opts.ShutdownTimeout}, nil
}

// Serve serves on lis until ctx is cancelled. It marks every registered
// service SERVING first (metrics for each method start at zero), and on
// cancellation marks them NOT_SERVING, stops gracefully within the
// shutdown timeout, then stops hard. It returns nil after a shutdown caused
// by ctx, or the error that stopped serving.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.metrics.InitializeMetrics(s.Server)
	for name := range s.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)

	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(lis) }()
	s.logger.Info("gRPC server listening", "addr", lis.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("grpcserver: serving on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(s.shutdownTimeout):
		s.logger.Warn("graceful gRPC stop timed out; cancelling in-flight calls", "timeout", s.shutdownTimeout)
		s.Stop()
		<-stopped
	}
	<-errc
	return nil
}
