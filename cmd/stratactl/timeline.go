package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/internal/config"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// timelineView is how a timeline is printed; LSNs are PostgreSQL's X/X
// strings so scripts can pass them back to --lsn.
type timelineView struct {
	TenantID            string `json:"tenant_id"`
	TimelineID          string `json:"timeline_id"`
	AncestorTimelineID  string `json:"ancestor_timeline_id,omitempty"`
	AncestorLSN         string `json:"ancestor_lsn,omitempty"`
	StartLSN            string `json:"start_lsn"`
	LastRecordLSN       string `json:"last_record_lsn"`
	PrevRecordLSN       string `json:"prev_record_lsn"`
	DiskConsistentLSN   string `json:"disk_consistent_lsn"`
	RemoteConsistentLSN string `json:"remote_consistent_lsn"`
	GCCutoffLSN         string `json:"gc_cutoff_lsn"`
	PGVersion           uint32 `json:"pg_version"`
	State               string `json:"state"`
	BrokenReason        string `json:"broken_reason,omitempty"`
	CreatedAt           string `json:"created_at,omitempty"`
	LayerFileCount      uint64 `json:"layer_file_count"`
	LayerFileBytes      uint64 `json:"layer_file_bytes"`
}

func newTimelineView(t *pb.TimelineInfo) timelineView {
	v := timelineView{
		TenantID: t.GetTenantId(), TimelineID: t.GetTimelineId(), AncestorTimelineID: t.GetAncestorTimelineId(),
		StartLSN: fmtLSN(t.GetStartLsn()), LastRecordLSN: fmtLSN(t.GetLastRecordLsn()), PrevRecordLSN: fmtLSN(t.GetPrevRecordLsn()),
		DiskConsistentLSN: fmtLSN(t.GetDiskConsistentLsn()), RemoteConsistentLSN: fmtLSN(t.GetRemoteConsistentLsn()),
		GCCutoffLSN: fmtLSN(t.GetGcCutoffLsn()), PGVersion: t.GetPgVersion(), State: t.GetState(),
		BrokenReason: t.GetBrokenReason(), CreatedAt: fmtTime(t.GetCreatedAt()),
		LayerFileCount: t.GetLayerFileCount(), LayerFileBytes: t.GetLayerFileBytes(),
	}
	if v.AncestorTimelineID != "" {
		v.AncestorLSN = fmtLSN(t.GetAncestorLsn())
	}
	return v
}

func (v timelineView) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "tenant_id:\t%s\ntimeline_id:\t%s\n", v.TenantID, v.TimelineID)
	if v.AncestorTimelineID != "" {
		fmt.Fprintf(tw, "ancestor:\t%s @ %s\n", v.AncestorTimelineID, v.AncestorLSN)
	} else {
		fmt.Fprintf(tw, "ancestor:\t-\n")
	}
	fmt.Fprintf(tw, "state:\t%s\n", v.State)
	if v.BrokenReason != "" {
		fmt.Fprintf(tw, "broken_reason:\t%s\n", v.BrokenReason)
	}
	fmt.Fprintf(tw, "start_lsn:\t%s\nlast_record_lsn:\t%s\nprev_record_lsn:\t%s\ndisk_consistent_lsn:\t%s\nremote_consistent_lsn:\t%s\ngc_cutoff_lsn:\t%s\n",
		v.StartLSN, v.LastRecordLSN, v.PrevRecordLSN, v.DiskConsistentLSN, v.RemoteConsistentLSN, v.GCCutoffLSN)
	fmt.Fprintf(tw, "pg_version:\t%d\nlayer_files:\t%d (%d bytes)\ncreated_at:\t%s\n", v.PGVersion, v.LayerFileCount, v.LayerFileBytes, orDash(v.CreatedAt))
	return tw.Flush()
}

type timelineFlags struct {
	connFlags
	tenant string
}

// timelineCall checks --tenant, then runs fn against the management API
// with a call context bounded by --timeout and the reference of timelineID
// ("" for calls about the tenant as a whole).
func (tf *timelineFlags) timelineCall(cmd *cobra.Command, timelineID string, fn func(ctx context.Context, c *conn, mc pb.ManagementServiceClient, ref *pb.TimelineRef) error) error {
	if err := checkID("tenant", tf.tenant, true); err != nil {
		return err
	}
	return managementCall(cmd, &tf.connFlags, func(c *conn, mc pb.ManagementServiceClient) error {
		ctx, cancel := tf.callCtx(cmd.Context())
		defer cancel()
		return fn(ctx, c, mc, &pb.TimelineRef{TenantId: tf.tenant, TimelineId: timelineID})
	})
}

func newTimelineCmd() *cobra.Command {
	var tf timelineFlags
	cmd := &cobra.Command{
		Use:   "timeline",
		Short: "List, show, create, branch, compact, garbage-collect and delete a tenant's timelines",
		Args:  noArgs,
	}
	tf.register(cmd)
	cmd.PersistentFlags().StringVar(&tf.tenant, "tenant", os.Getenv(envTenant), "tenant id ($"+envTenant+")")
	cmd.AddCommand(newTimelineListCmd(&tf), newTimelineShowCmd(&tf), newTimelineCreateCmd(&tf),
		newTimelineBranchCmd(&tf), newTimelineDeleteCmd(&tf), newTimelineCompactCmd(&tf), newTimelineGCCmd(&tf))
	return cmd
}

// treeRow is one line of `timeline list`: a timeline and its tree prefix.
type treeRow struct {
	prefix string
	tl     timelineView
}

// timelineTree orders timelines depth-first under their ancestors (in the
// server's order among siblings) with box-drawing prefixes. A timeline
// whose ancestor is not in the list is shown as a root.
func timelineTree(views []timelineView) []treeRow {
	present := map[string]bool{}
	for _, v := range views {
		present[v.TimelineID] = true
	}
	children := map[string][]timelineView{}
	var roots []timelineView
	for _, v := range views {
		if v.AncestorTimelineID == "" || !present[v.AncestorTimelineID] {
			roots = append(roots, v)
		} else {
			children[v.AncestorTimelineID] = append(children[v.AncestorTimelineID], v)
		}
	}
	var rows []treeRow
	visited := map[string]bool{}
	var walk func(v timelineView, indent, branch string)
	walk = func(v timelineView, indent, branch string) {
		if visited[v.TimelineID] { // a cycle would be a server bug; never loop
			return
		}
		visited[v.TimelineID] = true
		rows = append(rows, treeRow{prefix: indent + branch, tl: v})
		kids := children[v.TimelineID]
		next := indent
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		for i, k := range kids {
			b := "├─ "
			if i == len(kids)-1 {
				b = "└─ "
			}
			walk(k, next, b)
		}
	}
	for _, r := range roots {
		walk(r, "", "")
	}
	return rows
}

func newTimelineListCmd(tf *timelineFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list --tenant TENANT_ID",
		Short: "List a tenant's timelines as a tree of branches with their branch points",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return tf.timelineCall(cmd, "", func(ctx context.Context, c *conn, mc pb.ManagementServiceClient, _ *pb.TimelineRef) error {
				resp, err := mc.ListTimelines(ctx, &pb.ListTimelinesRequest{TenantId: tf.tenant})
				if err != nil {
					return c.rpcError("list timelines of tenant "+tf.tenant, err)
				}
				views := make([]timelineView, 0, len(resp.GetTimelines()))
				for _, t := range resp.GetTimelines() {
					views = append(views, newTimelineView(t))
				}
				rows := timelineTree(views)
				ordered := make([]timelineView, len(rows))
				for i, r := range rows {
					ordered[i] = r.tl
				}
				return printOutput(cmd, ordered, func(w io.Writer) error {
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "TIMELINE\tBRANCH_POINT\tLAST_RECORD_LSN\tDISK_CONSISTENT_LSN\tSTATE")
					for _, r := range rows {
						fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\n", r.prefix, r.tl.TimelineID, orDash(r.tl.AncestorLSN),
							r.tl.LastRecordLSN, r.tl.DiskConsistentLSN, r.tl.State)
					}
					return tw.Flush()
				})
			})
		},
	}
}

func newTimelineShowCmd(tf *timelineFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show TIMELINE_ID --tenant TENANT_ID",
		Short: "Show a timeline with all its LSNs",
		Args:  oneIDArg("timeline"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tf.timelineCall(cmd, args[0], func(ctx context.Context, c *conn, mc pb.ManagementServiceClient, ref *pb.TimelineRef) error {
				resp, err := mc.GetTimeline(ctx, &pb.GetTimelineRequest{Timeline: ref})
				if err != nil {
					return c.rpcError("show timeline "+args[0], err)
				}
				v := newTimelineView(resp.GetTimeline())
				return printOutput(cmd, v, v.writeText)
			})
		},
	}
}

// createTimeline runs CreateTimeline and prints the result.
func createTimeline(cmd *cobra.Command, tf *timelineFlags, what string, req *pb.CreateTimelineRequest) error {
	return managementCall(cmd, &tf.connFlags, func(c *conn, mc pb.ManagementServiceClient) error {
		ctx, cancel := tf.callCtx(cmd.Context())
		defer cancel()
		resp, err := mc.CreateTimeline(ctx, req)
		if err != nil {
			return c.rpcError(what, err)
		}
		v := newTimelineView(resp.GetTimeline())
		return printOutput(cmd, v, func(w io.Writer) error {
			if v.AncestorTimelineID != "" {
				_, err := fmt.Fprintf(w, "created timeline %s (branch of %s at %s)\n", v.TimelineID, v.AncestorTimelineID, v.AncestorLSN)
				return err
			}
			_, err := fmt.Fprintf(w, "created timeline %s (at %s)\n", v.TimelineID, v.LastRecordLSN)
			return err
		})
	})
}

func newTimelineCreateCmd(tf *timelineFlags) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "create --tenant TENANT_ID [--id TIMELINE_ID]",
		Short: "Create an empty timeline bootstrapped by initdb",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkID("tenant", tf.tenant, true); err != nil {
				return err
			}
			if err := checkID("id", id, false); err != nil {
				return err
			}
			return createTimeline(cmd, tf, "create timeline", &pb.CreateTimelineRequest{
				TenantId: tf.tenant, TimelineId: id,
				Mode: &pb.CreateTimelineRequest_Bootstrap_{Bootstrap: &pb.CreateTimelineRequest_Bootstrap{}},
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "timeline id (32 lowercase hex); random when empty")
	return cmd
}

func newTimelineBranchCmd(tf *timelineFlags) *cobra.Command {
	var id, from, at string
	cmd := &cobra.Command{
		Use:   "branch --tenant TENANT_ID --from TIMELINE_ID [--lsn LSN|latest] [--id TIMELINE_ID]",
		Short: "Create a branch of a timeline at an LSN (metadata only, instant)",
		Long: `branch creates a new timeline that shares its ancestor's history up to --lsn
(PostgreSQL's X/X form, e.g. 0/16B3748; "latest", the default, is the
ancestor's last_record_lsn). It copies no data. The LSN must be at or above
the ancestor's gc_cutoff_lsn.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkID("tenant", tf.tenant, true); err != nil {
				return err
			}
			if err := checkID("from", from, true); err != nil {
				return err
			}
			if err := checkID("id", id, false); err != nil {
				return err
			}
			l, err := parseLSN("lsn", at)
			if err != nil {
				return err
			}
			return createTimeline(cmd, tf, "branch timeline "+from, &pb.CreateTimelineRequest{
				TenantId: tf.tenant, TimelineId: id,
				Mode: &pb.CreateTimelineRequest_Branch_{Branch: &pb.CreateTimelineRequest_Branch{AncestorTimelineId: from, AncestorLsn: l}},
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "ancestor timeline id (required)")
	cmd.Flags().StringVar(&at, "lsn", "latest", `branch point: an LSN like 0/16B3748, or "latest"`)
	cmd.Flags().StringVar(&id, "id", "", "new timeline id (32 lowercase hex); random when empty")
	return cmd
}

func newTimelineDeleteCmd(tf *timelineFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete TIMELINE_ID --tenant TENANT_ID",
		Short: "Delete a timeline (refused while branches depend on it)",
		Args:  oneIDArg("timeline"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tf.timelineCall(cmd, args[0], func(ctx context.Context, c *conn, mc pb.ManagementServiceClient, ref *pb.TimelineRef) error {
				_, err := mc.DeleteTimeline(ctx, &pb.DeleteTimelineRequest{Timeline: ref})
				if err != nil {
					return c.rpcError("delete timeline "+args[0], err)
				}
				v := struct {
					TenantID string `json:"tenant_id"`
					Deleted  string `json:"deleted_timeline_id"`
				}{tf.tenant, args[0]}
				return printOutput(cmd, v, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "deleted timeline %s\n", args[0])
					return err
				})
			})
		},
	}
}

func newTimelineCompactCmd(tf *timelineFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "compact TIMELINE_ID --tenant TENANT_ID",
		Short: "Flush a timeline and write image layers of its whole keyspace at disk_consistent_lsn",
		Long: `Flush a timeline and write image layers of its whole keyspace at disk_consistent_lsn.

Reads (GetPage, basebackup, fullbackup) at or above that LSN then start from the
image instead of replaying every delta below it. The pageserver does this in the
background once image_creation_threshold delta layers lie above the newest image;
this command runs it now and waits for it (raise --timeout for large timelines).
History is only added, never removed.`,
		Args: oneIDArg("timeline"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tf.timelineCall(cmd, args[0], func(ctx context.Context, c *conn, mc pb.ManagementServiceClient, ref *pb.TimelineRef) error {
				resp, err := mc.Compact(ctx, &pb.CompactRequest{Timeline: ref})
				if err != nil {
					return c.rpcError("compact timeline "+args[0], err)
				}
				v := struct {
					TenantID      string `json:"tenant_id"`
					TimelineID    string `json:"timeline_id"`
					ImageLSN      string `json:"image_lsn"`
					LayersCreated uint64 `json:"layers_created"`
					ImageKeys     uint64 `json:"image_keys"`
					ImageBytes    uint64 `json:"image_bytes"`
					SkippedReason string `json:"skipped_reason,omitempty"`
					DurationMS    uint64 `json:"duration_ms"`
				}{tf.tenant, args[0], fmtLSN(resp.GetImageLsn()), resp.GetLayersCreated(), resp.GetImageKeys(), resp.GetImageBytes(),
					resp.GetSkippedReason(), resp.GetDurationMs()}
				return printOutput(cmd, v, func(w io.Writer) error {
					if v.SkippedReason != "" {
						_, err := fmt.Fprintf(w, "nothing to do at %s: %s\n", v.ImageLSN, v.SkippedReason)
						return err
					}
					_, err := fmt.Fprintf(w, "created %d image layer(s) at %s: %d keys, %d bytes in %d ms\n",
						v.LayersCreated, v.ImageLSN, v.ImageKeys, v.ImageBytes, v.DurationMS)
					return err
				})
			})
		},
	}
}

func newTimelineGCCmd(tf *timelineFlags) *cobra.Command {
	var horizon string
	cmd := &cobra.Command{
		Use:   "gc TIMELINE_ID --tenant TENANT_ID [--horizon 64MiB]",
		Short: "Garbage-collect a timeline's history older than the horizon (irreversible)",
		Long: `Garbage-collect a timeline's history older than the horizon.

The timeline's gc_cutoff_lsn rises to last_record_lsn minus the horizon (at most
disk_consistent_lsn; it never goes down), then the layer files that no read at or
above the cutoff needs are deleted: those below an image layer that covers them
(see "timeline compact"). Branch points of the timeline's branches stay readable.
Reads, fullbackups and new branch points below the cutoff are refused afterwards:
this is irreversible. Without --horizon the pageserver's gc_horizon applies.`,
		Args: oneIDArg("timeline"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var h uint64
			if horizon != "" {
				b, err := config.ParseByteSize(horizon)
				if err != nil {
					return usageErrorf("--horizon: %v", err)
				}
				if b == 0 {
					return usageErrorf("--horizon: must be positive (omit it for the pageserver's gc_horizon)")
				}
				h = b.Bytes()
			}
			return tf.timelineCall(cmd, args[0], func(ctx context.Context, c *conn, mc pb.ManagementServiceClient, ref *pb.TimelineRef) error {
				resp, err := mc.RunGc(ctx, &pb.RunGcRequest{Timeline: ref, GcHorizonBytes: h})
				if err != nil {
					return c.rpcError("gc timeline "+args[0], err)
				}
				v := struct {
					TenantID      string `json:"tenant_id"`
					TimelineID    string `json:"timeline_id"`
					GCCutoffLSN   string `json:"gc_cutoff_lsn"`
					LayersRemoved uint64 `json:"layers_removed"`
					BytesRemoved  uint64 `json:"bytes_removed"`
					LayersKept    uint64 `json:"layers_kept"`
					DurationMS    uint64 `json:"duration_ms"`
				}{tf.tenant, args[0], fmtLSN(resp.GetGcCutoffLsn()), resp.GetLayersRemoved(), resp.GetBytesRemoved(), resp.GetLayersKept(), resp.GetDurationMs()}
				return printOutput(cmd, v, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "gc_cutoff_lsn %s: removed %d layer file(s) (%d bytes), %d kept, in %d ms\n",
						v.GCCutoffLSN, v.LayersRemoved, v.BytesRemoved, v.LayersKept, v.DurationMS)
					return err
				})
			})
		},
	}
	cmd.Flags().StringVar(&horizon, "horizon", "", `WAL history to keep below last_record_lsn, e.g. "64MiB" (default: the pageserver's gc_horizon)`)
	return cmd
}
