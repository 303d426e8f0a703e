package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/internal/localstack"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// backupFlags are fullbackup's and boot's shared flags.
type backupFlags struct {
	connFlags
	tenant, timeline, lsn string
	noProgress            bool
}

func (bf *backupFlags) register(cmd *cobra.Command) {
	bf.connFlags.register(cmd)
	f := cmd.Flags()
	f.StringVar(&bf.tenant, "tenant", os.Getenv(envTenant), "tenant id ($"+envTenant+")")
	f.StringVar(&bf.timeline, "timeline", "", "timeline id (required)")
	f.StringVar(&bf.lsn, "lsn", "latest", `LSN of the backup, like 0/16B3748, or "latest"`)
	f.BoolVar(&bf.noProgress, "no-progress", false, "no progress bar even on a terminal")
}

func (bf *backupFlags) check() (uint64, error) {
	if err := checkID("tenant", bf.tenant, true); err != nil {
		return 0, err
	}
	if err := checkID("timeline", bf.timeline, true); err != nil {
		return 0, err
	}
	return parseLSN("lsn", bf.lsn)
}

// streamFullbackup streams GetBaseBackup(full) of the timeline at l into w
// and returns the LSN the backup represents and the bytes written. The
// stream has no --timeout: a large database takes as long as it takes.
func (bf *backupFlags) streamFullbackup(cmd *cobra.Command, l uint64, w io.Writer) (uint64, int64, error) {
	c, err := bf.dial("pageserver", bf.pageserver)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	ctx := cmd.Context()
	stream, err := pb.NewPageServiceClient(c).GetBaseBackup(ctx, &pb.GetBaseBackupRequest{
		Timeline:    &pb.TimelineRef{TenantId: bf.tenant, TimelineId: bf.timeline},
		Lsn:         l,
		Full:        true,
		Compression: pb.BaseBackupCompression_BASE_BACKUP_COMPRESSION_NONE,
	})
	what := fmt.Sprintf("fullbackup of timeline %s at %s", bf.timeline, bf.lsn)
	if err != nil {
		return 0, 0, c.rpcError(what, err)
	}
	progress := newProgress(cmd.ErrOrStderr(), !bf.noProgress)
	defer progress.finish()
	var backupLSN uint64
	var total int64
	for first := true; ; first = false {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if first {
				return 0, 0, fmt.Errorf("%s: the pageserver sent no data", what)
			}
			return backupLSN, total, nil
		}
		if err != nil {
			return 0, total, c.rpcError(what, err)
		}
		if first {
			backupLSN = msg.GetLsn()
		}
		n, err := w.Write(msg.GetChunk())
		total += int64(n)
		progress.add(n)
		if err != nil {
			return 0, total, err
		}
	}
}

func newFullbackupCmd() *cobra.Command {
	var (
		bf  backupFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "fullbackup --tenant T --timeline TL [--lsn LSN] -o FILE.tar",
		Short: "Write a timeline at an LSN as a tar that vanilla PostgreSQL 15 boots from",
		Long: `fullbackup asks the pageserver for a full backup (GetBaseBackup with
full=true) of a timeline at an LSN: a tar of a complete data directory with
every relation materialized at that LSN and a shutdown checkpoint after it,
which a vanilla PostgreSQL 15 starts from (design D11). The tar is written
to a temporary file beside FILE and renamed when complete; "-o -" writes to
stdout. A progress bar (bytes and rate) is shown on stderr when it is a
terminal.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := bf.check()
			if err != nil {
				return err
			}
			if out == "" {
				return usageErrorf("-o FILE.tar (or --file) is required (\"-\" for stdout)")
			}
			var w io.Writer = cmd.OutOrStdout()
			var tmp *os.File
			if out != "-" {
				if tmp, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-*"); err != nil {
					return err
				}
				defer func() {
					if tmp != nil {
						_ = tmp.Close()
						_ = os.Remove(tmp.Name())
					}
				}()
				w = tmp
			}
			backupLSN, n, err := bf.streamFullbackup(cmd, l, w)
			if err != nil {
				return err
			}
			if tmp == nil {
				return nil // the tar went to stdout; nothing else may follow it
			}
			if err := tmp.Sync(); err != nil {
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			tmp = nil
			v := struct {
				File  string `json:"file"`
				Bytes int64  `json:"bytes"`
				LSN   string `json:"lsn"`
			}{out, n, fmtLSN(backupLSN)}
			return printOutput(cmd, v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "wrote %s (%s) of timeline %s at LSN %s\n", out, humanBytes(n), bf.timeline, v.LSN)
				return err
			})
		},
	}
	bf.register(cmd)
	cmd.Flags().StringVarP(&out, "file", "f", "", `tar file to write ("-": stdout); "-o FILE.tar" works too`)
	// The root's -o is --output (text|json). On fullbackup, "-o FILE.tar"
	// (the spelling users expect) names the file: any --output value that
	// is not a format is taken as --file.
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		v, err := cmd.Flags().GetString(outputFlag)
		if err != nil || v == outputText || v == outputJSON {
			return nil
		}
		if out != "" {
			return usageErrorf("give the tar file once: -o %s and --file %s", v, out)
		}
		out = v
		return cmd.Flags().Set(outputFlag, outputText)
	}
	return cmd
}

func newBootCmd() *cobra.Command {
	var (
		bf       backupFlags
		dir      string
		port     int
		pgBinDir string
	)
	cmd := &cobra.Command{
		Use:   "boot --tenant T --timeline TL [--lsn LSN] --port P --dir D",
		Short: "Fullbackup a timeline into D and start a vanilla PostgreSQL 15 on it",
		Long: `boot turns a timeline at an LSN into a running database in one command:
it streams a fullbackup into the empty directory --dir, then starts a
vanilla PostgreSQL 15 on it (pg_ctl from pg_config --bindir, or
--pg-bin-dir) listening on 127.0.0.1:--port, and prints the connection
string and how to stop it. The server keeps running after boot returns.

When run as root, PostgreSQL (which refuses root) runs as the system user
strata-pg, created if missing; then --dir must be reachable by that user
(e.g. under /tmp).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := bf.check()
			if err != nil {
				return err
			}
			if dir == "" {
				return usageErrorf("--dir is required: an empty or new directory for the data directory")
			}
			if port <= 0 || port > 65535 {
				return usageErrorf("--port %d: want a TCP port in 1..65535", port)
			}
			// The tar is extracted as it arrives: no temporary copy.
			pr, pw := io.Pipe()
			untarDone := make(chan error, 1)
			go func() {
				_, err := localstack.Untar(pr, dir)
				_ = pr.CloseWithError(err) // unblock the writer if untar stopped early
				untarDone <- err
			}()
			backupLSN, _, err := bf.streamFullbackup(cmd, l, pw)
			_ = pw.CloseWithError(err)
			if uerr := <-untarDone; err == nil {
				err = uerr
			}
			if err != nil {
				return err
			}
			res, err := localstack.BootPostgres(cmd.Context(), localstack.BootOptions{DataDir: dir, Port: port, PGBinDir: pgBinDir})
			if err != nil {
				return err
			}
			v := struct {
				*localstack.BootResult
				TenantID   string `json:"tenant_id"`
				TimelineID string `json:"timeline_id"`
				LSN        string `json:"lsn"`
			}{res, bf.tenant, bf.timeline, fmtLSN(backupLSN)}
			return printOutput(cmd, v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "booted timeline %s at LSN %s: PostgreSQL on 127.0.0.1:%d, data directory %s\nconnect: psql \"%s\"\nlog:     %s\nstop:    %s\n",
					bf.timeline, v.LSN, port, res.DataDir, res.ConnString, res.LogFile, res.StopCommand)
				return err
			})
		},
	}
	bf.register(cmd)
	cmd.Flags().StringVar(&dir, "dir", "", "new data directory (required; must be empty or absent)")
	cmd.Flags().IntVar(&port, "port", 0, "TCP port for PostgreSQL on 127.0.0.1 (required)")
	cmd.Flags().StringVar(&pgBinDir, "pg-bin-dir", "", "PostgreSQL 15 bin directory (default: $STRATA_PG_BIN or pg_config --bindir)")
	return cmd
}

// progress draws "12.3 MiB  4.5 MiB/s  3s" on a terminal, at most every
// 200 ms; it is silent when w is not a terminal or it is disabled.
type progress struct {
	w       io.Writer
	on      bool
	start   time.Time
	last    time.Time
	total   int64
	started bool
}

func newProgress(w io.Writer, enabled bool) *progress {
	return &progress{w: w, on: enabled && isTerminal(w), start: time.Now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) add(n int) {
	p.total += int64(n)
	if !p.on {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		p.draw(now)
	}
}

func (p *progress) draw(now time.Time) {
	elapsed := now.Sub(p.start)
	rate := float64(p.total) / max(elapsed.Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r%10s  %10s/s  %s   ", humanBytes(p.total), humanBytes(int64(rate)), elapsed.Round(time.Second))
	p.started = true
}

func (p *progress) finish() {
	if p.on && p.started {
		p.draw(time.Now())
		fmt.Fprintln(p.w)
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
