// Command walredo runs Strata's WAL-redo service. See docs/walredo.md and
// `walredo -h`.
package main

import (
	"context"

	"github.com/stratadb/strata/internal/service"
	"github.com/stratadb/strata/services/walredo"
)

func main() {
	cfg := walredo.DefaultConfig()
	service.Main("walredo", &cfg, func(ctx context.Context) error { return walredo.Run(ctx, cfg) })
}
