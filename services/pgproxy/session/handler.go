package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/lsn"
	pageserverv1 "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pgproxy/upstream"
	"github.com/stratadb/strata/services/pgproxy/wire"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxInFlight     = 128
	DefaultMaxBatch        = 32
	DefaultRequestTimeout  = 5 * time.Minute
	DefaultCommandTimeout  = 60 * time.Second
	defaultBackupChunkSize = 1 << 20
)

// Options configures New.
type Options struct {
	// Page and Management are the pageserver's clients (upstream.Client's).
	Page       pageserverv1.PageServiceClient
	Management pageserverv1.ManagementServiceClient
	// ServiceToken is sent to the pageserver when the client presented no
	// token (trust mode in front of a jwt pageserver). "" sends none.
	ServiceToken string
	// Metrics may be nil.
	Metrics *Metrics
	// MaxInFlight bounds the pagestream requests read but not yet answered
	// on one connection (pipeline depth); the reader stops reading beyond.
	MaxInFlight int
	// MaxBatch bounds the blocks folded into one GetPagesRequest.
	MaxBatch int
	// RequestTimeout bounds one pagestream unary call (Exists, Nblocks,
	// DbSize, SLRU); it must exceed the pageserver's wait_lsn_timeout.
	RequestTimeout time.Duration
	// CommandTimeout bounds a management command.
	CommandTimeout time.Duration
}

// Handler turns simple queries into pageserver calls; it implements
// wire.Handler. It is safe for concurrent use by many connections.
type Handler struct {
	opts Options
}

// New checks opts and returns a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Page == nil || opts.Management == nil {
		return nil, errors.New("session: Page and Management clients are required")
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	return &Handler{opts: opts}, nil
}

var _ wire.Handler = (*Handler)(nil)

// HandleQuery implements wire.Handler.
func (h *Handler) HandleQuery(ctx context.Context, c *wire.Conn, query string) error {
	cmd, err := ParseCommand(query)
	name := string(cmd.Kind)
	if err != nil {
		h.opts.Metrics.command("invalid", "syntax_error")
		return err
	}
	err = h.authorize(c, cmd)
	if err == nil {
		err = h.run(ctx, c, cmd)
	}
	h.opts.Metrics.command(name, outcome(err))
	return err
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, auth.ErrPermissionDenied), errors.Is(err, auth.ErrUnauthenticated):
		return "denied"
	default:
		return "error"
	}
}

// authorize applies design D5 before any upstream call: tenant commands
// need the tenant (or pageserverapi); tenant_list and tenant_create are
// global. The pageserver checks the forwarded token again.
func (h *Handler) authorize(c *wire.Conn, cmd Command) error {
	switch cmd.Kind {
	case KindSet:
		return nil
	case KindIdentifySystem:
		if cmd.TenantID == "" {
			return nil
		}
		return auth.Check(c.Claims, cmd.TenantID)
	case KindTenantList, KindTenantCreate:
		return auth.Check(c.Claims, "")
	default:
		return auth.Check(c.Claims, cmd.TenantID)
	}
}

func (h *Handler) run(ctx context.Context, c *wire.Conn, cmd Command) error {
	switch cmd.Kind {
	case KindSet:
		c.Send(&pgproto3.CommandComplete{CommandTag: []byte("SET")})
		return nil
	case KindPagestream:
		return h.pagestream(ctx, c, cmd)
	case KindBasebackup, KindFullbackup:
		return h.backup(ctx, c, cmd)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.CommandTimeout)
	defer cancel()
	tok := h.token(c)
	switch cmd.Kind {
	case KindTenantList:
		start := time.Now()
		resp, err := h.opts.Management.ListTenants(ctx, &pageserverv1.ListTenantsRequest{}, tok)
		h.opts.Metrics.upstream("ListTenants", start)
		if err != nil {
			return upstreamError("list tenants", err)
		}
		rows := make([][]string, 0, len(resp.GetTenants()))
		for _, t := range resp.GetTenants() {
			rows = append(rows, tenantRow(t))
		}
		return sendRows(c, tenantColumns, rows)
	case KindTenantCreate:
		start := time.Now()
		resp, err := h.opts.Management.CreateTenant(ctx, &pageserverv1.CreateTenantRequest{TenantId: cmd.TenantID}, tok)
		h.opts.Metrics.upstream("CreateTenant", start)
		if err != nil {
			return upstreamError("create tenant", err)
		}
		return sendRows(c, tenantColumns, [][]string{tenantRow(resp.GetTenant())})
	case KindBranchCreate:
		start := time.Now()
		resp, err := h.opts.Management.CreateTimeline(ctx, &pageserverv1.CreateTimelineRequest{
			TenantId:   cmd.TenantID,
			TimelineId: cmd.NewTimelineID,
			Mode: &pageserverv1.CreateTimelineRequest_Branch_{Branch: &pageserverv1.CreateTimelineRequest_Branch{
				AncestorTimelineId: cmd.TimelineID, AncestorLsn: uint64(cmd.LSN),
			}},
		}, tok)
		h.opts.Metrics.upstream("CreateTimeline", start)
		if err != nil {
			return upstreamError("create branch", err)
		}
		return sendRows(c, timelineColumns, [][]string{timelineRow(resp.GetTimeline())})
	case KindTimelineList:
		start := time.Now()
		resp, err := h.opts.Management.ListTimelines(ctx, &pageserverv1.ListTimelinesRequest{TenantId: cmd.TenantID}, tok)
		h.opts.Metrics.upstream("ListTimelines", start)
		if err != nil {
			return upstreamError("list timelines", err)
		}
		rows := make([][]string, 0, len(resp.GetTimelines()))
		for _, t := range resp.GetTimelines() {
			rows = append(rows, timelineRow(t))
		}
		return sendRows(c, timelineColumns, rows)
	case KindIdentifySystem:
		return h.identifySystem(ctx, c, cmd, tok)
	}
	return fmt.Errorf("session: command %q has no executor", cmd.Kind)
}

// token returns the call option forwarding the client's token.
func (h *Handler) token(c *wire.Conn) grpc.CallOption {
	if c.Token != "" {
		return upstream.WithToken(c.Token)
	}
	return upstream.WithToken(h.opts.ServiceToken)
}

var tenantColumns = []string{"tenant_id", "state", "timelines", "created_at"}

func tenantRow(t *pageserverv1.TenantInfo) []string {
	state := t.GetState()
	if r := t.GetBrokenReason(); r != "" {
		state += ": " + r
	}
	created := ""
	if ts := t.GetCreatedAt(); ts != nil {
		created = ts.AsTime().UTC().Format(time.RFC3339)
	}
	return []string{t.GetTenantId(), state, strconv.FormatUint(uint64(t.GetTimelineCount()), 10), created}
}

var timelineColumns = []string{"tenant_id", "timeline_id", "ancestor_timeline_id", "ancestor_lsn", "last_record_lsn", "disk_consistent_lsn", "state"}

func timelineRow(t *pageserverv1.TimelineInfo) []string {
	ancestorLSN := ""
	if t.GetAncestorTimelineId() != "" {
		ancestorLSN = lsn.LSN(t.GetAncestorLsn()).String()
	}
	return []string{t.GetTenantId(), t.GetTimelineId(), t.GetAncestorTimelineId(), ancestorLSN,
		lsn.LSN(t.GetLastRecordLsn()).String(), lsn.LSN(t.GetDiskConsistentLsn()).String(), t.GetState()}
}

// identifySystem answers like PostgreSQL's IDENTIFY_SYSTEM (systemid,
// timeline, xlogpos, dbname) plus who the caller is. Without arguments it
// needs no permission (it says only what the caller's own token is); with a
// tenant and timeline, xlogpos is that timeline's last_record_lsn.
func (h *Handler) identifySystem(ctx context.Context, c *wire.Conn, cmd Command, tok grpc.CallOption) error {
	xlogpos := ""
	if cmd.TenantID != "" {
		start := time.Now()
		resp, err := h.opts.Management.GetTimeline(ctx, &pageserverv1.GetTimelineRequest{
			Timeline: &pageserverv1.TimelineRef{TenantId: cmd.TenantID, TimelineId: cmd.TimelineID}}, tok)
		h.opts.Metrics.upstream("GetTimeline", start)
		if err != nil {
			return upstreamError("get timeline", err)
		}
		xlogpos = lsn.LSN(resp.GetTimeline().GetLastRecordLsn()).String()
	}
	return sendRows(c, []string{"systemid", "timeline", "xlogpos", "dbname", "server", "scope", "tenant_id"},
		[][]string{{"", "1", xlogpos, "", wire.ServerVersion, string(c.Claims.Scope), c.Claims.TenantID}})
}

// sendRows sends a text result set; "" is sent as NULL.
func sendRows(c *wire.Conn, columns []string, rows [][]string) error {
	desc := &pgproto3.RowDescription{Fields: make([]pgproto3.FieldDescription, len(columns))}
	for i, name := range columns {
		desc.Fields[i] = pgproto3.FieldDescription{Name: []byte(name), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}
	}
	c.Send(desc)
	for _, r := range rows {
		values := make([][]byte, len(r))
		for i, v := range r {
			if v != "" {
				values[i] = []byte(v)
			}
		}
		c.Send(&pgproto3.DataRow{Values: values})
	}
	c.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT " + strconv.Itoa(len(rows)))})
	return nil
}

// backup streams GetBaseBackup as CopyOut. CopyOutResponse is sent only
// after the first chunk arrived, so refusals (permission, unknown
// timeline, bad LSN) reach the client as plain errors.
func (h *Handler) backup(ctx context.Context, c *wire.Conn, cmd Command) error {
	req := &pageserverv1.GetBaseBackupRequest{
		Timeline:    &pageserverv1.TimelineRef{TenantId: cmd.TenantID, TimelineId: cmd.TimelineID},
		Lsn:         uint64(cmd.LSN),
		PrevLsn:     uint64(cmd.PrevLSN),
		Full:        cmd.Kind == KindFullbackup,
		Compression: pageserverv1.BaseBackupCompression_BASE_BACKUP_COMPRESSION_NONE,
	}
	if cmd.Gzip {
		req.Compression = pageserverv1.BaseBackupCompression_BASE_BACKUP_COMPRESSION_GZIP
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	stream, err := h.opts.Page.GetBaseBackup(ctx, req, h.token(c))
	if err != nil {
		return upstreamError(string(cmd.Kind), err)
	}
	started := false
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// After CopyOutResponse an ErrorResponse ends the copy (libpq
			// reports it); before, it is a plain error.
			return upstreamError(string(cmd.Kind), err)
		}
		if !started {
			started = true
			h.opts.Metrics.upstream("GetBaseBackup", start)
			c.Send(&pgproto3.CopyOutResponse{OverallFormat: 1})
		}
		if len(resp.GetChunk()) == 0 {
			continue
		}
		c.Send(&pgproto3.CopyData{Data: resp.GetChunk()})
		if err := c.Flush(); err != nil {
			return err
		}
	}
	if !started {
		c.Send(&pgproto3.CopyOutResponse{OverallFormat: 1})
	}
	c.Send(&pgproto3.CopyDone{})
	c.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	return nil
}

// upstreamError maps a pageserver gRPC error to what the client sees.
func upstreamError(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return &wire.Error{Code: wire.CodeInternal, Message: fmt.Sprintf("%s: %v", what, err), Err: err}
	}
	msg := fmt.Sprintf("%s: pageserver: %s", what, st.Message())
	switch st.Code() {
	case codes.Unauthenticated:
		return &wire.Error{Code: wire.CodeInvalidPassword, Message: msg, Err: fmt.Errorf("%w: %s", auth.ErrUnauthenticated, st.Message()),
			Hint: "the pageserver refused the token pgproxy forwarded; check that both use the same public keys"}
	case codes.PermissionDenied:
		return &wire.Error{Code: wire.CodeInvalidAuthorization, Message: msg, Err: fmt.Errorf("%w: %s", auth.ErrPermissionDenied, st.Message())}
	case codes.InvalidArgument, codes.OutOfRange:
		return &wire.Error{Code: "22023", Message: msg, Err: err}
	case codes.NotFound:
		return &wire.Error{Code: "42704", Message: msg, Err: err}
	case codes.AlreadyExists:
		return &wire.Error{Code: "42710", Message: msg, Err: err}
	case codes.Unavailable:
		return &wire.Error{Code: wire.CodeConnectionFailure, Message: msg, Err: err, Close: true,
			Hint: "the pageserver is unreachable or restarting; reconnect and retry"}
	case codes.DeadlineExceeded:
		return &wire.Error{Code: "57014", Message: msg, Err: err, Hint: "the pageserver did not answer in time; retry"}
	default:
		return &wire.Error{Code: wire.CodeInternal, Message: msg, Err: err}
	}
}
