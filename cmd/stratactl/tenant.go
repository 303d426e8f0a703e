package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// tenantView is how a tenant is printed (JSON field names are stable).
type tenantView struct {
	TenantID      string `json:"tenant_id"`
	State         string `json:"state"`
	BrokenReason  string `json:"broken_reason,omitempty"`
	TimelineCount uint32 `json:"timeline_count"`
	CreatedAt     string `json:"created_at,omitempty"`
}

func newTenantView(t *pb.TenantInfo) tenantView {
	return tenantView{
		TenantID: t.GetTenantId(), State: t.GetState(), BrokenReason: t.GetBrokenReason(),
		TimelineCount: t.GetTimelineCount(), CreatedAt: fmtTime(t.GetCreatedAt()),
	}
}

func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newTenantCmd() *cobra.Command {
	var cf connFlags
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Create, list, show and delete tenants",
		Args:  noArgs,
	}
	cf.register(cmd)
	cmd.AddCommand(newTenantCreateCmd(&cf), newTenantListCmd(&cf), newTenantShowCmd(&cf), newTenantDeleteCmd(&cf))
	return cmd
}

// managementCall dials the pageserver and runs fn with a ManagementService
// client and a context bounded by --timeout.
func managementCall(cmd *cobra.Command, cf *connFlags, fn func(c *conn, mc pb.ManagementServiceClient) error) error {
	c, err := cf.dial("pageserver", cf.pageserver)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c, pb.NewManagementServiceClient(c))
}

func newTenantCreateCmd(cf *connFlags) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "create [--id TENANT_ID]",
		Short: "Create a tenant (a random id unless --id) and print its id",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkID("id", id, false); err != nil {
				return err
			}
			return managementCall(cmd, cf, func(c *conn, mc pb.ManagementServiceClient) error {
				ctx, cancel := cf.callCtx(cmd.Context())
				defer cancel()
				resp, err := mc.CreateTenant(ctx, &pb.CreateTenantRequest{TenantId: id})
				if err != nil {
					return c.rpcError("create tenant", err)
				}
				v := newTenantView(resp.GetTenant())
				return printOutput(cmd, v, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, v.TenantID)
					return err
				})
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "tenant id (32 lowercase hex); random when empty")
	return cmd
}

func newTenantListCmd(cf *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return managementCall(cmd, cf, func(c *conn, mc pb.ManagementServiceClient) error {
				ctx, cancel := cf.callCtx(cmd.Context())
				defer cancel()
				resp, err := mc.ListTenants(ctx, &pb.ListTenantsRequest{})
				if err != nil {
					return c.rpcError("list tenants", err)
				}
				views := make([]tenantView, 0, len(resp.GetTenants()))
				for _, t := range resp.GetTenants() {
					views = append(views, newTenantView(t))
				}
				return printOutput(cmd, views, func(w io.Writer) error {
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "TENANT_ID\tSTATE\tTIMELINES\tCREATED")
					for _, v := range views {
						fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", v.TenantID, v.State, v.TimelineCount, orDash(v.CreatedAt))
					}
					return tw.Flush()
				})
			})
		},
	}
}

// oneIDArg accepts exactly one id argument.
func oneIDArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageErrorf("%s takes one %s id, got %d arguments", cmd.CommandPath(), what, len(args))
		}
		return checkID(what, args[0], true)
	}
}

func newTenantShowCmd(cf *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show TENANT_ID",
		Short: "Show a tenant",
		Args:  oneIDArg("tenant"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return managementCall(cmd, cf, func(c *conn, mc pb.ManagementServiceClient) error {
				ctx, cancel := cf.callCtx(cmd.Context())
				defer cancel()
				resp, err := mc.GetTenant(ctx, &pb.GetTenantRequest{TenantId: args[0]})
				if err != nil {
					return c.rpcError("show tenant "+args[0], err)
				}
				v := newTenantView(resp.GetTenant())
				return printOutput(cmd, v, func(w io.Writer) error {
					tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
					fmt.Fprintf(tw, "tenant_id:\t%s\nstate:\t%s\n", v.TenantID, v.State)
					if v.BrokenReason != "" {
						fmt.Fprintf(tw, "broken_reason:\t%s\n", v.BrokenReason)
					}
					fmt.Fprintf(tw, "timelines:\t%d\ncreated_at:\t%s\n", v.TimelineCount, orDash(v.CreatedAt))
					return tw.Flush()
				})
			})
		},
	}
}

func newTenantDeleteCmd(cf *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete TENANT_ID",
		Short: "Delete a tenant and all its timelines' data",
		Args:  oneIDArg("tenant"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return managementCall(cmd, cf, func(c *conn, mc pb.ManagementServiceClient) error {
				ctx, cancel := cf.callCtx(cmd.Context())
				defer cancel()
				if _, err := mc.DeleteTenant(ctx, &pb.DeleteTenantRequest{TenantId: args[0]}); err != nil {
					return c.rpcError("delete tenant "+args[0], err)
				}
				v := struct {
					Deleted string `json:"deleted_tenant_id"`
				}{args[0]}
				return printOutput(cmd, v, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "deleted tenant %s\n", args[0])
					return err
				})
			})
		},
	}
}
