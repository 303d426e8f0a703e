package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgwal/waldump"
)

// newWaldumpCmd is `stratactl waldump`: pg_waldump's reading of WAL files,
// with --compat printing pg_waldump's exact lines minus the descriptions.
// The work is in internal/pgwal/waldump; this only maps flags.
func newWaldumpCmd() *cobra.Command {
	var (
		cfg             waldump.Config
		start, end      string
		timeline        uint32
		compat, details bool
	)
	cmd := &cobra.Command{
		Use:   "waldump [STARTSEG [ENDSEG]]",
		Short: "Print the records of PostgreSQL 15 WAL segment files",
		Long: `waldump reads PostgreSQL 15 WAL segment files and prints one line per record,
like pg_waldump. STARTSEG and ENDSEG name segment files (their directory is
searched as pg_waldump does: --path, the file's own directory, ".", "pg_wal",
"$PGDATA/pg_wal"); without them --start is required and --path (or the
default search) names the directory.

With --compat the output equals pg_waldump's after removing each record's
description ("desc: ..."): rmgr, lengths, xid, LSNs and block references
are printed exactly as pg_waldump prints them. See docs/waldump.md.

It exits with status 1 at the end of valid WAL before --end (or the end of
ENDSEG), printing pg_waldump's message, as pg_waldump does.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 2 {
				return usageErrorf("%s takes at most 2 segment files, got %d", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if start != "" {
				if cfg.Start, err = lsn.Parse(start); err != nil {
					return usageErrorf("invalid --start: %w", err)
				}
			}
			if end != "" {
				if cfg.End, err = lsn.Parse(end); err != nil {
					return usageErrorf("invalid --end: %w", err)
				}
			}
			if cfg.Limit < 0 {
				return usageErrorf("invalid --limit %d: must be 0 or more", cfg.Limit)
			}
			cfg.Files, cfg.Timeline, cfg.Compat, cfg.BkpDetails = args, timeline, compat, details
			err = waldump.Run(cmd.Context(), cfg, cmd.OutOrStdout())
			if errors.Is(err, waldump.ErrUsage) {
				return usageError{err}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&start, "start", "s", "", "start reading at WAL location RECPTR (X/X)")
	f.StringVarP(&end, "end", "e", "", "stop reading at WAL location RECPTR (X/X)")
	f.IntVarP(&cfg.Limit, "limit", "n", 0, "number of records to display (0: all)")
	f.StringVarP(&cfg.Path, "path", "p", "", "directory in which to find WAL segment files")
	f.Uint32VarP(&timeline, "timeline", "t", 1, "timeline from which to read WAL records (when no file is named)")
	f.BoolVarP(&details, "bkp-details", "b", false, "output detailed information about full-page images")
	f.BoolVarP(&cfg.Quiet, "quiet", "q", false, "do not print any output, except for errors")
	f.BoolVar(&compat, "compat", false, "print pg_waldump's lines without record descriptions")
	return cmd
}
