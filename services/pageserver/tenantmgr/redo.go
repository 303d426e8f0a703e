package tenantmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/services/walredo/client"
	"github.com/stratadb/strata/services/walredo/pool"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/redo"
)

// Walredo modes.
const (
	// RedoModeProcess runs a pool of PostgreSQL children in this process.
	RedoModeProcess = "process"
	// RedoModeGRPC uses a walredo service.
	RedoModeGRPC = "grpc"
)

// RedoConfig chooses and configures the Redoer.
type RedoConfig struct {
	Mode string
	// Addr and Token: the walredo service (RedoModeGRPC). Token may be
	// empty for a service in trust mode.
	Addr  string
	Token string
	// Process mode: see services/walredo/process.Config and pool.Config.
	PGBinDir             string
	ExtensionPath        string
	WorkDir              string
	RunAsUser            string
	MaxChildren          int
	MaxChildrenPerTenant int
	RequestTimeout       time.Duration
	// WALLogHints must equal data_checksums || wal_log_hints of the
	// source clusters.
	WALLogHints bool
}

// NewRedoer builds the Redoer cfg selects; close releases it (children,
// connection) and must be called after the last Apply.
func NewRedoer(ctx context.Context, cfg RedoConfig, logger *slog.Logger, reg prometheus.Registerer) (r redo.Redoer, closeFn func() error, err error) {
	switch cfg.Mode {
	case RedoModeGRPC:
		opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, client.LoopbackDialOptions()...)
		if cfg.Token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerToken(cfg.Token, false)))
		}
		conn, err := grpc.NewClient(cfg.Addr, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("tenantmgr: walredo client for %s: %w", cfg.Addr, err)
		}
		return client.New(conn, client.WithSourceWALLogHints(cfg.WALLogHints)), conn.Close, nil
	case RedoModeProcess:
		tmpl, err := process.PrepareTemplate(ctx, process.Config{
			BinDir: cfg.PGBinDir, ExtensionPath: cfg.ExtensionPath, WorkDir: cfg.WorkDir,
			RunAsUser: cfg.RunAsUser, RequestTimeout: cfg.RequestTimeout, Logger: logger,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("tenantmgr: walredo template: %w", err)
		}
		p, err := pool.New(tmpl, pool.Config{
			MaxChildren: cfg.MaxChildren, MaxChildrenPerTenant: cfg.MaxChildrenPerTenant,
			WALLogHints: cfg.WALLogHints, Logger: logger, Registerer: reg,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("tenantmgr: walredo pool: %w", err)
		}
		return p, p.Close, nil
	default:
		return nil, nil, errors.New("tenantmgr: walredo mode must be " + RedoModeProcess + " or " + RedoModeGRPC)
	}
}
