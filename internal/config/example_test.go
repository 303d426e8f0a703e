package config_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stratadb/strata/internal/config"
)

// exampleConfig is the shape of a service config: toml tags, defaults from a
// constructor, flags bound to current values, Validate reporting everything.
type exampleConfig struct {
	ListenAddr  string          `toml:"listen_addr"`
	WaitTimeout config.Duration `toml:"wait_lsn_timeout"`
	CacheSize   config.ByteSize `toml:"page_cache_size"`
}

func defaultExampleConfig() exampleConfig {
	return exampleConfig{ListenAddr: "127.0.0.1:51051", WaitTimeout: config.Duration(60e9), CacheSize: 64 * config.MiB}
}

func (c *exampleConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "gRPC listen address")
	fs.Var(&c.WaitTimeout, "wait-lsn-timeout", "how long GetPage@LSN waits for WAL")
	fs.Var(&c.CacheSize, "page-cache-size", "page cache size")
}

func (c *exampleConfig) Validate() error {
	var p config.Problems
	if c.CacheSize < 8*config.KiB {
		p.Addf("page_cache_size", "must be at least 8KiB, got %s", c.CacheSize)
	}
	return p.Err()
}

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "pageserver.toml")
	toml := "listen_addr = \"127.0.0.1:6000\"\npage_cache_size = \"1GiB\"\n"
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	cfg := defaultExampleConfig()
	args := []string{"--config", path, "--page-cache-size", "512MiB"} // flags win
	if err := config.Load("pageserver", args, &cfg); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.ListenAddr, cfg.WaitTimeout, cfg.CacheSize)

	bad := defaultExampleConfig()
	fmt.Println(config.Load("pageserver", []string{"-page-cache-size=1KiB"}, &bad))
	// Output:
	// 127.0.0.1:6000 1m0s 512MiB
	// config: page_cache_size: must be at least 8KiB, got 1KiB
}
