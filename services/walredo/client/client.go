package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	walredov1 "github.com/stratadb/strata/proto/gen/strata/walredo/v1"
	"github.com/stratadb/strata/services/walredo/redo"
	"github.com/stratadb/strata/services/walredo/server"
)

// Option configures a Client.
type Option func(*Client)

// WithSourceWALLogHints declares that the source cluster has data checksums
// or wal_log_hints on. The server refuses requests whose setting differs
// from its children's (ErrInvalidRequest).
func WithSourceWALLogHints(on bool) Option { return func(c *Client) { c.walLogHints = on } }

// WithUnary makes Apply use one unary call per request instead of the
// shared ApplyStream (for servers without ApplyStream, and benchmarks).
func WithUnary() Option { return func(c *Client) { c.unary = true } }

// Client is a redo.Redoer backed by a remote WalRedoService.
type Client struct {
	rpc         walredov1.WalRedoServiceClient
	walLogHints bool
	unary       bool

	nextID atomic.Uint64  // request ids on streams; never reused by this client
	wg     sync.WaitGroup // receive goroutines of streams

	mu     sync.Mutex
	stream *stream // the current ApplyStream, opened on first use; nil or ended → reopened
	closed bool
}

var _ redo.Redoer = (*Client)(nil)

// New returns a client over conn.
func New(conn *grpc.ClientConn, opts ...Option) *Client {
	c := &Client{rpc: walredov1.NewWalRedoServiceClient(conn)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Close ends the client's stream and waits for its receive goroutine. It
// does not close the connection (closing the connection ends the stream
// too). Apply after Close fails with redo.ErrClosed; Mask keeps working.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.stream != nil {
		c.stream.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// Apply implements redo.Redoer. Invalid requests are refused locally,
// without a round trip. It runs on the client's ApplyStream (unless
// WithUnary); a request lost because the stream ended UNAVAILABLE is
// retried once on a new stream (redo has no side effects), other failures
// are returned as they are.
func (c *Client) Apply(ctx context.Context, req *redo.Request, page []byte) error {
	if err := req.Validate(page); err != nil {
		return err
	}
	if c.unary {
		return c.applyUnary(ctx, req, page)
	}
	retry, err := c.applyStream(ctx, req, page)
	if retry && ctx.Err() == nil {
		_, err = c.applyStream(ctx, req, page)
	}
	return err
}

func (c *Client) applyUnary(ctx context.Context, req *redo.Request, page []byte) error {
	records := make([]walredov1.WalRecord, len(req.Records))
	ptrs := make([]*walredov1.WalRecord, len(req.Records))
	for i, r := range req.Records {
		records[i].StartLsn = uint64(r.Start)
		records[i].EndLsn = uint64(r.End)
		records[i].Data = r.Raw
		ptrs[i] = &records[i]
	}
	resp, err := c.rpc.Apply(ctx, &walredov1.ApplyRequest{
		TenantId: req.Tenant.String(),
		Tag: &walredov1.BufferTag{
			SpcOid:      uint32(req.Tag.Rel.SpcNode),
			DbOid:       uint32(req.Tag.Rel.DbNode),
			RelNumber:   uint32(req.Tag.Rel.RelNode),
			ForkNumber:  uint32(req.Tag.Rel.ForkNum),
			BlockNumber: req.Tag.BlockNum,
		},
		BaseImage:         req.Base,
		Records:           ptrs,
		SourceWalLogHints: c.walLogHints,
	})
	if err != nil {
		return fromStatus(ctx, err)
	}
	if len(resp.GetPage()) != pgtypes.BLCKSZ {
		return fmt.Errorf("%w: server returned a page of %d bytes", ErrProtocol, len(resp.GetPage()))
	}
	copy(page, resp.GetPage())
	return nil
}

// Mask applies rmgr rmid's rm_mask to page into out (both BLCKSZ bytes).
// The tenant is not sent: the server masks on a child of its own.
func (c *Client) Mask(ctx context.Context, _ ids.TenantID, rmid uint8, blkno uint32, page, out []byte) error {
	if len(page) != pgtypes.BLCKSZ || len(out) != pgtypes.BLCKSZ {
		return fmt.Errorf("%w: page buffers must be %d bytes", redo.ErrInvalidRequest, pgtypes.BLCKSZ)
	}
	resp, err := c.rpc.Mask(ctx, &walredov1.MaskRequest{RmgrId: uint32(rmid), BlockNumber: blkno, Page: page})
	if err != nil {
		return fromStatus(ctx, err)
	}
	if len(resp.GetPage()) != pgtypes.BLCKSZ {
		return fmt.Errorf("%w: server returned a page of %d bytes", ErrProtocol, len(resp.GetPage()))
	}
	copy(out, resp.GetPage())
	return nil
}

// fromStatus turns a gRPC error back into the redo sentinels. The ErrorInfo
// reason decides; without one (a proxy, an older server, a transport
// failure) the status error is returned wrapped as is, except that the
// caller's own context error wins so errors.Is(err, context.Canceled) holds.
func fromStatus(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("walredo client: %w (%v)", ctxErr, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("walredo client: %w", err)
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == server.ErrorDomain {
			info = ei
			break
		}
	}
	if info == nil {
		switch st.Code() {
		case codes.Canceled:
			return fmt.Errorf("walredo server: %w: %s", context.Canceled, st.Message())
		case codes.DeadlineExceeded:
			return fmt.Errorf("walredo server: %w: %s", context.DeadlineExceeded, st.Message())
		}
		return fmt.Errorf("walredo server: %w", err)
	}
	var kind error
	switch info.GetReason() {
	case server.ReasonInvalidRequest:
		return fmt.Errorf("%w (from walredo server): %s", redo.ErrInvalidRequest, st.Message())
	case server.ReasonTimeout:
		return fmt.Errorf("%w (from walredo server): %s", redo.ErrTimeout, st.Message())
	case server.ReasonClosed:
		return fmt.Errorf("%w (from walredo server): %s", redo.ErrClosed, st.Message())
	case server.ReasonRecordFailed:
		kind = redo.ErrRecordFailed
	case server.ReasonChildCrashed:
		kind = redo.ErrChildCrashed
	default:
		return fmt.Errorf("walredo server: %w", err)
	}
	md := info.GetMetadata()
	recErr := &redo.RecordError{Kind: kind, Msg: md[server.MetaDetail]}
	if text, ok := md[server.MetaRecordLSN]; ok {
		// A malformed LSN keeps the kind (what callers branch on) and
		// says so in the message rather than failing the mapping.
		if at, perr := lsn.Parse(text); perr == nil {
			recErr.LSN = at
		} else {
			recErr.Msg += fmt.Sprintf(" (server sent unparsable record_lsn %q)", text)
		}
	}
	if recErr.Msg == "" {
		recErr.Msg = st.Message()
	}
	return recErr
}
