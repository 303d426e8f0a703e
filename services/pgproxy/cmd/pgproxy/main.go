// Command pgproxy serves Neon's page_service protocol over the PostgreSQL
// wire protocol. See docs/ and `pgproxy -h`.
package main

import (
	"context"

	"github.com/stratadb/strata/internal/service"
	"github.com/stratadb/strata/services/pgproxy"
)

func main() {
	cfg := pgproxy.DefaultConfig()
	service.Main("pgproxy", &cfg, func(ctx context.Context) error { return pgproxy.Run(ctx, cfg) })
}
