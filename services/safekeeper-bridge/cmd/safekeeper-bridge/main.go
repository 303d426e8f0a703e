// Command safekeeper-bridge relays WAL from a PostgreSQL 15 primary into the
// pageserver. See docs/ and `safekeeper-bridge -h`.
package main

import (
	"context"

	"github.com/stratadb/strata/internal/service"
	bridge "github.com/stratadb/strata/services/safekeeper-bridge"
)

func main() {
	cfg := bridge.DefaultConfig()
	service.Main("safekeeper-bridge", &cfg, func(ctx context.Context) error { return bridge.Run(ctx, cfg) })
}
