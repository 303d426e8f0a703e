package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Process exit codes, documented in the root help text.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	// exitNotFound: the tenant, timeline or LSN named does not exist.
	exitNotFound = 3
)

// Values of --output.
const (
	outputText = "text"
	outputJSON = "json"
)

const outputFlag = "output"

// newRootCmd builds the whole command tree. Adding a command is one line in
// the AddCommand list.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "stratactl",
		Short: "Control a Strata deployment",
		Long: `stratactl controls a Strata deployment: a local stack of the four
services (init, start, stop, status, logs), tenants, timelines, branches,
fullbackups and booting them, attaching a primary, and tokens.

Management commands find the pageserver's address and a token in the stack
directory (--stack-dir, default $STRATA_DIR or .strata); --pageserver and
STRATA_TOKEN or STRATA_TOKEN_FILE override them. See docs/cli.md.

Secrets such as tokens are never accepted as command-line arguments, which
other users of the machine can read; they come from stdin or files.

Exit codes:
  0  success
  1  runtime error (the command ran and failed, e.g. an invalid token)
  2  usage error (unknown command or flag, missing or invalid argument)
  3  not found (the tenant, timeline or LSN named does not exist)`,
		SilenceUsage:  true, // execute prints a short hint instead
		SilenceErrors: true, // execute prints errors once, with a prefix
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			_, err := outputFormat(cmd)
			return err
		},
	}
	root.PersistentFlags().StringP(outputFlag, "o", outputText, "output format: text or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(
		newVersionCmd(),
		newTokenCmd(),
		newWaldumpCmd(),
		newInitCmd(),
		newStartCmd(),
		newStopCmd(),
		newStatusCmd(),
		newLogsCmd(),
		newTenantCmd(),
		newTimelineCmd(),
		newFullbackupCmd(),
		newBootCmd(),
		newAttachCmd(),
	)
	return root
}

// execute runs root with args and returns the process exit code: exitOK,
// exitRuntime for errors returned by a command's RunE, exitUsage for
// everything cobra rejects before running a command (unknown command or
// flag, argument count, missing required flag) and for usageError.
func execute(ctx context.Context, root *cobra.Command, args []string) int {
	markRuntimeErrors(root)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	stderr := root.ErrOrStderr()
	fmt.Fprintf(stderr, "stratactl: %v\n", err)
	var runtime runtimeError
	if errors.As(err, &runtime) {
		if isNotFound(err) {
			return exitNotFound
		}
		return exitRuntime
	}
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}

// usageError marks an error as the caller's mistake (exit code 2). Commands
// return it for invalid flag values that cobra cannot check itself.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// runtimeError marks an error returned by a command's RunE (exit code 1).
type runtimeError struct{ err error }

func (e runtimeError) Error() string { return e.err.Error() }
func (e runtimeError) Unwrap() error { return e.err }

// markRuntimeErrors wraps every RunE in the tree so its errors are
// runtimeErrors unless they already are usageErrors. Doing it here, not in
// each command, lets new commands follow the exit-code contract for free.
func markRuntimeErrors(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			err := run(c, args)
			var usage usageError
			var runtime runtimeError
			if err == nil || errors.As(err, &usage) || errors.As(err, &runtime) {
				return err
			}
			return runtimeError{err}
		}
	}
	for _, sub := range cmd.Commands() {
		markRuntimeErrors(sub)
	}
}

// outputFormat returns the validated --output value of cmd.
func outputFormat(cmd *cobra.Command) (string, error) {
	format, err := cmd.Flags().GetString(outputFlag)
	if err != nil {
		// Only if a command was built outside newRootCmd.
		return outputText, nil
	}
	switch format {
	case outputText, outputJSON:
		return format, nil
	default:
		return "", usageErrorf("invalid --output %q: want %q or %q", format, outputText, outputJSON)
	}
}

// printOutput writes v as indented JSON when --output is json, and calls
// text otherwise. Commands describe their result once as a struct with
// json tags and once as text.
func printOutput(cmd *cobra.Command, v any, text func(w io.Writer) error) error {
	format, err := outputFormat(cmd)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if format == outputJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text(w)
}

// noArgs is cobra.NoArgs with an exit-code-2 error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %d", cmd.CommandPath(), len(args))
	}
	return nil
}
