package config

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// Loadable is what a service's config struct (through a pointer) provides
// to Load.
type Loadable interface {
	// RegisterFlags binds the struct's fields to flags on fs, using the
	// fields' current values as defaults (they already hold the defaults
	// and the config file's values when Load calls it). It must not
	// register "config", which Load owns.
	RegisterFlags(fs *flag.FlagSet)
	// Validate reports every problem at once, typically through Problems.
	Validate() error
}

// configFlag is the flag naming the TOML file.
const configFlag = "config"

// Load runs the standard configuration sequence for the service name:
// cfg already holds the defaults; the TOML file named by -config/--config in
// args (if any) is decoded strictly into it; then flags registered by
// cfg.RegisterFlags are parsed from args and override the file; then
// cfg.Validate runs. args excludes the program name (os.Args[1:]).
//
// -h/-help prints usage to standard error and returns flag.ErrHelp. Flag
// errors are printed with usage by the flag package and returned wrapped.
// Positional arguments are refused.
func Load(name string, args []string, cfg Loadable) error {
	path, err := findConfigPath(args)
	if err != nil {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	if path != "" {
		if err := DecodeFile(path, cfg); err != nil {
			return err
		}
	}

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if fs.Lookup(configFlag) != nil {
		return fmt.Errorf("config: %s: RegisterFlags must not register -%s, Load owns it", name, configFlag)
	}
	fs.String(configFlag, path, "TOML config `file`; flags override its values")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return fmt.Errorf("config: %s: %w", name, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("config: %s: unexpected arguments %q", name, fs.Args())
	}
	return cfg.Validate()
}

// findConfigPath returns the value of -config/--config in args ("" when
// absent) before the flags are parsed, so that the file can be applied
// first and the flags override it. It scans every argument up to "--"
// because the values of other flags may precede -config; the flag package
// later rejects anything that is not a flag.
func findConfigPath(args []string) (string, error) {
	path := ""
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
		if !strings.HasPrefix(arg, "-") || name != configFlag {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag needs an argument: -%s", configFlag)
			}
			i++
			value = args[i]
		}
		path = value // the last one wins, as with the flag package
	}
	return path, nil
}
