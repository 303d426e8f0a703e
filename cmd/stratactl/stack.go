package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/localstack"
)

// The local stack commands (init, start, stop, status, logs): the work is in
// internal/localstack; these map flags and print.

func addDirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "dir", defaultStackDir(), "stack directory ($"+envStackDir+")")
}

func openStack(dir string) (*localstack.Stack, error) {
	return localstack.Open(dir)
}

func newInitCmd() *cobra.Command {
	var opts localstack.InitOptions
	cmd := &cobra.Command{
		Use:   "init [--dir .strata]",
		Short: "Create a local stack: configs on free ports, a key pair and tokens",
		Long: `init creates a stack directory for the four services (walredo, pageserver,
safekeeper-bridge, pgproxy) on this machine, as Neon's neon_local does:
one TOML config per service listening on free loopback ports with
auth_mode jwt, an Ed25519 key pair, and one token per scope
(tokens/pageserverapi for management, tokens/safekeeperdata for the bridge),
all 0600. Then run "stratactl start".`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.BinDir == "" {
				// Only used to find the walredo extension next to the binaries.
				if p, err := localstack.FindBinary("walredo", ""); err == nil {
					opts.BinDir = dirOf(p)
				}
			}
			res, err := localstack.Init(opts)
			if err != nil {
				return err
			}
			if !res.ExtensionFound {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: the walredo extension %s does not exist yet; run `make build` (or pass --walredo-extension) before `stratactl start`\n", res.WalredoExtension)
			}
			type svcView struct {
				Name        string `json:"name"`
				ListenAddr  string `json:"listen_addr"`
				MetricsAddr string `json:"metrics_addr"`
				Config      string `json:"config"`
			}
			view := struct {
				Dir              string            `json:"dir"`
				Services         []svcView         `json:"services"`
				Tokens           map[string]string `json:"tokens"`
				PublicKey        string            `json:"public_key"`
				WalredoExtension string            `json:"walredo_extension"`
				ExtensionFound   bool              `json:"walredo_extension_found"`
			}{Dir: res.Stack.Dir, Tokens: map[string]string{}, PublicKey: res.Stack.PublicKeyPath(),
				WalredoExtension: res.WalredoExtension, ExtensionFound: res.ExtensionFound}
			for _, svc := range localstack.Services {
				a := res.Addrs[svc.Name]
				view.Services = append(view.Services, svcView{svc.Name, a.ListenAddr, a.MetricsAddr, res.Stack.ConfigPath(svc.Name)})
			}
			for _, sc := range []auth.Scope{auth.ScopePageserverAPI, auth.ScopeSafekeeperData} {
				view.Tokens[string(sc)] = res.Stack.TokenPath(sc)
			}
			return printOutput(cmd, view, func(w io.Writer) error {
				fmt.Fprintf(w, "initialized a Strata stack in %s\n", view.Dir)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SERVICE\tADDRESS\tMETRICS\tCONFIG")
				for _, s := range view.Services {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.ListenAddr, s.MetricsAddr, s.Config)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				_, err := fmt.Fprintf(w, "management token: %s\nnext: stratactl start --dir %s\n", view.Tokens[string(auth.ScopePageserverAPI)], opts.Dir)
				return err
			})
		},
	}
	addDirFlag(cmd, &opts.Dir)
	cmd.Flags().StringVar(&opts.BinDir, "bin-dir", "", "directory of the service binaries, to find the walredo extension (default: next to stratactl, then PATH)")
	cmd.Flags().StringVar(&opts.WalredoExtension, "walredo-extension", "", "path of strata_walredo.so (default: searched next to the binaries and in the source tree)")
	cmd.Flags().StringVar(&opts.PGBinDir, "pg-bin-dir", "", "PostgreSQL 15 bin directory for walredo (default: $STRATA_PG_BIN or pg_config --bindir)")
	return cmd
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "."
}

func newStartCmd() *cobra.Command {
	var (
		dir  string
		opts localstack.StartOptions
	)
	cmd := &cobra.Command{
		Use:   "start [--dir .strata] [--bin-dir DIR]",
		Short: "Start the stack's services in the background and wait until they are healthy",
		Long: `start runs each service of the stack that is not running yet as a background
process (walredo, pageserver, safekeeper-bridge, pgproxy, in that order),
with its pid file in <dir>/run and its log in <dir>/logs, and waits until it
is healthy (gRPC health SERVING; for pgproxy, its PostgreSQL port accepting
connections). Binaries are taken from --bin-dir, else next to stratactl,
else PATH ("make build" puts them in ./bin). A service that does not come
up is stopped again and its log's last lines are printed; the others keep
running.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openStack(dir)
			if err != nil {
				return err
			}
			statuses, err := s.Start(cmd.Context(), opts)
			if perr := printStatuses(cmd, statuses); perr != nil {
				return perr
			}
			if err != nil {
				return fmt.Errorf("%w\n(`stratactl status --dir %s` shows what is running; `stratactl logs <service>` shows why one is not)", err, dir)
			}
			return nil
		},
	}
	addDirFlag(cmd, &dir)
	cmd.Flags().StringVar(&opts.BinDir, "bin-dir", "", "directory of the service binaries (default: next to stratactl, then PATH)")
	cmd.Flags().DurationVar(&opts.ReadyTimeout, "timeout", 30*time.Second, "how long to wait for each service to become healthy")
	return cmd
}

func newStopCmd() *cobra.Command {
	var (
		dir   string
		grace time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stop [--dir .strata]",
		Short: "Stop the stack's services",
		Long: `stop sends SIGTERM to each running service (in reverse start order), waits
up to --grace for it to exit, then kills its process group. Stale pid files
(a service that was killed) are removed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openStack(dir)
			if err != nil {
				return err
			}
			statuses, err := s.Stop(cmd.Context(), grace)
			if perr := printStatuses(cmd, statuses); perr != nil {
				return perr
			}
			return err
		},
	}
	addDirFlag(cmd, &dir)
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "time to wait after SIGTERM before SIGKILL")
	return cmd
}

func newStatusCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "status [--dir .strata]",
		Short: "Show each service's address, pid and state; exit 1 when one is down",
		Long: `status shows, for each service of the stack, its state, pid, address,
metrics address and log file. States: running (process alive and healthy),
unhealthy (alive but its health check fails), stopped (not started), dead
(its pid file names a process that is gone: killed or crashed).
The exit code is 0 only when every service is running.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openStack(dir)
			if err != nil {
				return err
			}
			statuses := s.Status(cmd.Context())
			if err := printStatuses(cmd, statuses); err != nil {
				return err
			}
			var down []string
			for _, st := range statuses {
				if !st.Up() {
					down = append(down, st.Name+" ("+string(st.State)+")")
				}
			}
			if len(down) > 0 {
				return fmt.Errorf("%d of %d services are not running: %s; `stratactl start --dir %s` starts them, `stratactl logs <service> --dir %s` shows why they stopped",
					len(down), len(statuses), strings.Join(down, ", "), dir, dir)
			}
			return nil
		},
	}
	addDirFlag(cmd, &dir)
	return cmd
}

func printStatuses(cmd *cobra.Command, statuses []localstack.ServiceStatus) error {
	return printOutput(cmd, statuses, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tSTATE\tPID\tADDRESS\tMETRICS\tDETAIL")
		for _, st := range statuses {
			pid := "-"
			if st.PID > 0 {
				pid = fmt.Sprint(st.PID)
			}
			detail := st.Detail
			if i := strings.IndexByte(detail, '\n'); i >= 0 {
				detail = detail[:i]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, st.State, pid, st.ListenAddr, st.MetricsAddr, detail)
		}
		return tw.Flush()
	})
}

func newLogsCmd() *cobra.Command {
	var (
		dir    string
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs SERVICE [-f] [--dir .strata]",
		Short: "Print a service's log file (-f: keep following it)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("%s takes one service name, got %d arguments", cmd.CommandPath(), len(args))
			}
			if _, err := localstack.LookupService(args[0]); err != nil {
				return usageError{err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStack(dir)
			if err != nil {
				return err
			}
			return s.Logs(cmd.Context(), args[0], cmd.OutOrStdout(), follow)
		},
	}
	addDirFlag(cmd, &dir)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what is appended until interrupted")
	return cmd
}
