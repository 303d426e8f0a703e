package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	bridgepb "github.com/stratadb/strata/proto/gen/strata/bridge/v1"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// attachView is attach's result.
type attachView struct {
	TenantID          string `json:"tenant_id"`
	TimelineID        string `json:"timeline_id"`
	TenantCreated     bool   `json:"tenant_created"`
	SlotName          string `json:"slot_name"`
	State             string `json:"state"`
	Error             string `json:"error,omitempty"`
	ReceivedLSN       string `json:"received_lsn"`
	LastRecordLSN     string `json:"last_record_lsn"`
	DiskConsistentLSN string `json:"disk_consistent_lsn"`
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// primaryConnString resolves --primary: "env:VAR" reads $VAR (so a password
// never appears on a command line), anything else is the connection string.
func primaryConnString(v string) (string, error) {
	if name, ok := strings.CutPrefix(v, "env:"); ok {
		if name == "" {
			return "", usageErrorf("--primary env: needs a variable name, e.g. env:PRIMARY_CONNSTRING")
		}
		s := os.Getenv(name)
		if s == "" {
			return "", usageErrorf("--primary %s: environment variable %s is empty or unset", v, name)
		}
		return s, nil
	}
	if v == "" {
		return "", usageErrorf("--primary is required: a libpq connection string or env:VAR")
	}
	return v, nil
}

func newAttachCmd() *cobra.Command {
	var (
		cf                        connFlags
		primary, tenant, timeline string
		slot                      string
		wait                      time.Duration
		noProgress                bool
	)
	cmd := &cobra.Command{
		Use:   "attach --primary CONNSTRING|env:VAR [--tenant T] [--timeline TL] [--slot NAME]",
		Short: "Import a running PostgreSQL 15 primary into a new timeline and stream its WAL from then on",
		Long: `attach asks the safekeeper-bridge to take a base backup of a running
PostgreSQL 15 primary, import it into a new timeline on the pageserver, and
stream the primary's WAL into it from then on through a physical
replication slot (BridgeService.Attach with import = true). Without
--tenant a new tenant is created first. It prints the tenant and timeline
ids.

--primary is a libpq connection string for a user with the REPLICATION
attribute, or env:VAR to read it from an environment variable: prefer
env:VAR when the string holds a password, since other users of the
machine can read command lines. While the import runs, its state is shown
on stderr when it is a terminal.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			connString, err := primaryConnString(primary)
			if err != nil {
				return err
			}
			if err := checkID("tenant", tenant, false); err != nil {
				return err
			}
			if err := checkID("timeline", timeline, false); err != nil {
				return err
			}
			view := attachView{TenantID: tenant, TimelineID: timeline}
			if view.TenantID == "" {
				err := managementCall(cmd, &cf, func(c *conn, mc pb.ManagementServiceClient) error {
					ctx, cancel := cf.callCtx(cmd.Context())
					defer cancel()
					resp, err := mc.CreateTenant(ctx, &pb.CreateTenantRequest{})
					if err != nil {
						return c.rpcError("create a tenant for the primary", err)
					}
					view.TenantID, view.TenantCreated = resp.GetTenant().GetTenantId(), true
					return nil
				})
				if err != nil {
					return err
				}
			}
			if view.TimelineID == "" {
				// Chosen here so the import can be watched while it runs.
				view.TimelineID = newID()
			}
			c, err := cf.dial("safekeeper-bridge", cf.bridge)
			if err != nil {
				return err
			}
			defer c.Close()
			client := bridgepb.NewBridgeServiceClient(c)

			// The import is a long unary call; watch its status beside it.
			watchCtx, stopWatch := context.WithCancel(cmd.Context())
			var wg sync.WaitGroup
			if !noProgress && isTerminal(cmd.ErrOrStderr()) {
				wg.Go(func() { watchAttach(watchCtx, client, view.TenantID, view.TimelineID, cmd.ErrOrStderr()) })
			}
			resp, err := client.Attach(cmd.Context(), &bridgepb.AttachRequest{
				TenantId: view.TenantID, TimelineId: view.TimelineID, PrimaryConninfo: connString, SlotName: slot, Import: true,
			})
			stopWatch()
			wg.Wait()
			if err != nil {
				err = c.rpcError("attach the primary", err)
				if view.TenantCreated {
					err = fmt.Errorf("%w (tenant %s was created for it; `stratactl tenant delete %s` removes it)", err, view.TenantID, view.TenantID)
				}
				return err
			}
			st := resp.GetStatus()
			// The import runs in the bridge after Attach returns: wait until
			// WAL streams (or the bridge reports an error).
			for deadline := time.Now().Add(wait); st.GetState() != "streaming" && wait > 0; {
				if st.GetError() != "" {
					return fmt.Errorf("attach: the bridge reports: %s (state %s); see `stratactl logs safekeeper-bridge`", st.GetError(), st.GetState())
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("attach: timeline %s is still %q after --wait %s; `stratactl logs safekeeper-bridge` shows progress", view.TimelineID, st.GetState(), wait)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
				callCtx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
				sresp, err := client.GetStatus(callCtx, &bridgepb.GetStatusRequest{TenantId: view.TenantID, TimelineId: view.TimelineID})
				cancel()
				if err != nil {
					return c.rpcError("attach: status of the import", err)
				}
				st = sresp.GetStatus()
			}
			if st.GetTimelineId() != "" {
				view.TimelineID = st.GetTimelineId()
			}
			view.SlotName, view.State, view.Error = st.GetSlotName(), st.GetState(), st.GetError()
			view.ReceivedLSN, view.LastRecordLSN, view.DiskConsistentLSN = fmtLSN(st.GetReceivedLsn()), fmtLSN(st.GetLastRecordLsn()), fmtLSN(st.GetDiskConsistentLsn())
			return printOutput(cmd, view, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "attached: tenant %s timeline %s\nslot:     %s\nstate:    %s (last_record_lsn %s)\nnext:     stratactl timeline list --tenant %s\n",
					view.TenantID, view.TimelineID, orDash(view.SlotName), view.State, view.LastRecordLSN, view.TenantID)
				return err
			})
		},
	}
	cf.register(cmd)
	cf.registerBridge(cmd)
	// Attach imports a whole database: no deadline by default.
	cmd.PersistentFlags().Lookup("timeout").DefValue = "0s"
	_ = cmd.PersistentFlags().Set("timeout", "0s")
	f := cmd.Flags()
	f.StringVar(&primary, "primary", "", "primary's libpq connection string, or env:VAR (required)")
	f.StringVar(&tenant, "tenant", "", "existing tenant id (default: create a tenant)")
	f.StringVar(&timeline, "timeline", "", "new timeline id (default: random)")
	f.StringVar(&slot, "slot", "", "physical replication slot (default: the bridge's strata_<timeline prefix>)")
	f.BoolVar(&noProgress, "no-progress", false, "no progress display even on a terminal")
	f.DurationVar(&wait, "wait", 10*time.Minute, "wait this long for the import to finish and WAL to stream (0: return at once)")
	return cmd
}

// watchAttach shows the bridge's view of an import in progress until ctx
// is cancelled. Errors (the timeline is not known yet) are shown as such.
func watchAttach(ctx context.Context, client bridgepb.BridgeServiceClient, tenant, timeline string, w io.Writer) {
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	drawn := false
	for {
		select {
		case <-ctx.Done():
			if drawn {
				fmt.Fprintln(w)
			}
			return
		case <-tick.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := client.GetStatus(callCtx, &bridgepb.GetStatusRequest{TenantId: tenant, TimelineId: timeline})
		cancel()
		state := "starting"
		if err == nil {
			st := resp.GetStatus()
			state = fmt.Sprintf("%s  received %s", st.GetState(), fmtLSN(st.GetReceivedLsn()))
		}
		fmt.Fprintf(w, "\rattaching: %-40s %s   ", state, time.Since(start).Round(time.Second))
		drawn = true
	}
}
