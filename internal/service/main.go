package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stratadb/strata/internal/config"
)

// Main is the body of every service's main(): load the config (defaults in
// cfg, then the TOML file named by --config, then flags), run until SIGINT
// or SIGTERM, and exit with 0 (clean stop), 1 (runtime error) or 2 (bad
// configuration or usage).
func Main(name string, cfg config.Loadable, run func(ctx context.Context) error) {
	if err := config.Load(name, os.Args[1:], cfg); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		stop()
		os.Exit(1)
	}
}
