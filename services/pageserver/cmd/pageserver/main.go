// Command pageserver runs Strata's storage service. See docs/ and
// `pageserver -h`.
package main

import (
	"context"

	"github.com/stratadb/strata/internal/service"
	"github.com/stratadb/strata/services/pageserver"
)

func main() {
	cfg := pageserver.DefaultConfig()
	service.Main("pageserver", &cfg, func(ctx context.Context) error { return pageserver.Run(ctx, cfg) })
}
