package session

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/pgtypes"
	pageserverv1 "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pgproxy/pagestream"
	"github.com/stratadb/strata/services/pgproxy/wire"
)

// pending is one request between being read and being answered. Exactly one
// goroutine completes it (sets resp or err, then closes done); the writer
// reads it only after done.
type pending struct {
	req   pagestream.Request
	start time.Time
	done  chan struct{}
	resp  pagestream.Response
	err   error
}

func (p *pending) fail(err error) {
	p.err = err
	close(p.done)
}

// batch is one GetPagesRequest in flight: the requests whose blocks it
// carries, in order.
type batch struct {
	id    uint64
	items []*pending
	sent  time.Time
}

// getPagesStream is one GetPages bidi stream with the batches sent on it
// and not yet answered. If the stream fails, every batch on it fails with
// the stream's error and the next GetPage opens a new stream: one failure
// does not end the compute's pagestream.
type getPagesStream struct {
	stream pageserverv1.PageService_GetPagesClient
	cancel context.CancelFunc

	mu       sync.Mutex
	inflight []*batch
	dead     error
}

// pipeline is the state of one pagestream session.
type pipeline struct {
	h       *Handler
	c       *wire.Conn
	version pagestream.Version
	ref     *pageserverv1.TimelineRef
	token   grpc.CallOption
}

// pagestream runs the pagestream sub-protocol until the client ends it
// (Terminate or CopyDone), the server shuts down, or the connection fails.
//
// Goroutines, all owned by one errgroup: the reader (decodes CopyData and
// queues requests in order), the dispatcher (folds consecutive GetPage
// requests of one relation and LSN into GetPagesRequests on a shared
// stream, and starts unary calls for the others), one receiver per GetPages
// stream, one goroutine per unary call, and the writer (answers in request
// order, flushing when no answer is ready). MaxInFlight bounds the queue.
func (h *Handler) pagestream(ctx context.Context, c *wire.Conn, cmd Command) error {
	c.Send(&pgproto3.CopyBothResponse{OverallFormat: 0})
	if err := c.Flush(); err != nil {
		return err
	}
	c.ClearReadDeadline()
	p := &pipeline{h: h, c: c, version: cmd.Version, token: h.token(c),
		ref: &pageserverv1.TimelineRef{TenantId: cmd.TenantID, TimelineId: cmd.TimelineID}}

	// Shutdown does not cancel the pipeline: the reader stops (its reads
	// are unblocked), the requests in flight are answered, then 57P01. The
	// wire server closes the connection after its ShutdownTimeout, which
	// fails the writer and cancels the rest.
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	ordered := make(chan *pending, h.opts.MaxInFlight)
	dispatch := make(chan *pending, h.opts.MaxInFlight)
	var endReason error
	g.Go(func() error {
		defer close(ordered)
		defer close(dispatch)
		var err error
		endReason, err = p.read(gctx, ordered, dispatch)
		return err
	})
	g.Go(func() error { return p.dispatch(gctx, g, dispatch) })
	g.Go(func() error {
		err := p.write(gctx, ordered)
		if err != nil {
			// Unblock the reader: the connection is unusable.
			c.Close()
		}
		return err
	})
	err := g.Wait()
	switch {
	case err != nil:
		c.MarkBroken()
		return err
	case errors.Is(endReason, errTerminate):
		c.MarkBroken() // close without a word, as the client asked
		return nil
	case endReason != nil:
		return endReason
	default:
		c.Send(&pgproto3.CopyDone{})
		c.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
		return nil
	}
}

var errTerminate = errors.New("session: client terminated the pagestream")

// read returns the reason the stream ended (errTerminate, nil for CopyDone,
// a shutdown error to report) or a fatal error.
func (p *pipeline) read(ctx context.Context, ordered, dispatch chan<- *pending) (end error, fatal error) {
	for {
		msg, err := p.c.Receive()
		if err != nil {
			if errors.Is(err, wire.ErrShutdown) {
				// Answer what is in flight, then 57P01.
				return err, nil
			}
			return nil, fmt.Errorf("session: pagestream read: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			req, err := pagestream.DecodeRequest(p.version, msg.Data)
			if err != nil {
				// Without a decodable request there is nothing to echo:
				// the stream is out of sync (Neon also ends it).
				we := &wire.Error{Code: wire.CodeProtocolViolation, Message: err.Error(), Err: err, Close: true}
				return we, nil
			}
			item := &pending{req: req, start: time.Now(), done: make(chan struct{})}
			select {
			case ordered <- item:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if verr := validate(&req); verr != nil {
				item.fail(verr)
				continue
			}
			select {
			case dispatch <- item:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case *pgproto3.CopyDone:
			return nil, nil
		case *pgproto3.Terminate:
			return errTerminate, nil
		default:
			return &wire.Error{Code: wire.CodeProtocolViolation, Message: fmt.Sprintf("unexpected message %T in pagestream", msg), Close: true}, nil
		}
	}
}

// validate applies Neon's request checks (neon-anchor.md §1.7) locally so
// malformed requests fail without a round trip; the pageserver checks
// again.
func validate(r *pagestream.Request) error {
	switch {
	case r.RequestLSN == 0:
		return errors.New("invalid LSN(0) in request")
	case r.RequestLSN < r.NotModifiedSince:
		return fmt.Errorf("invalid request: request_lsn %s is less than not_modified_since %s", r.RequestLSN, r.NotModifiedSince)
	case r.Tag == pagestream.TagGetSlruSegment && !r.Kind.Valid():
		return fmt.Errorf("invalid SLRU kind %d", r.Kind)
	case (r.Tag == pagestream.TagGetPage || r.Tag == pagestream.TagExists || r.Tag == pagestream.TagNblocks) && !r.Rel.ForkNum.Valid():
		return fmt.Errorf("invalid fork number %d", r.Rel.ForkNum)
	}
	return nil
}

func (p *pipeline) readLSN(r *pagestream.Request) *pageserverv1.ReadLsn {
	return &pageserverv1.ReadLsn{RequestLsn: uint64(r.RequestLSN), NotModifiedSinceLsn: uint64(r.NotModifiedSince)}
}

func relTag(t pgtypes.RelTag) *pageserverv1.RelTag {
	return &pageserverv1.RelTag{SpcOid: uint32(t.SpcNode), DbOid: uint32(t.DbNode), RelNumber: uint32(t.RelNode), ForkNumber: uint32(t.ForkNum)}
}

func (p *pipeline) dispatch(ctx context.Context, g *errgroup.Group, in <-chan *pending) error {
	var (
		gs     *getPagesStream
		nextID uint64
		held   *pending
	)
	defer func() {
		if gs != nil {
			_ = gs.stream.CloseSend()
		}
	}()
	maxBatch := p.h.opts.MaxBatch
	for {
		item := held
		held = nil
		if item == nil {
			var ok bool
			select {
			case item, ok = <-in:
				if !ok {
					return nil
				}
			case <-ctx.Done():
				return nil
			}
		}
		if item.req.Tag != pagestream.TagGetPage {
			g.Go(func() error { p.unary(ctx, item); return nil })
			continue
		}
		items := []*pending{item}
		// Fold what is already queued and compatible; never wait for more.
	fold:
		for len(items) < maxBatch {
			select {
			case next, ok := <-in:
				if !ok {
					break fold
				}
				if next.req.Tag == pagestream.TagGetPage && sameRelAndLSN(&next.req, &item.req) {
					items = append(items, next)
					continue
				}
				held = next
				break fold
			default:
				break fold
			}
		}
		if gs == nil || gs.failed() {
			if gs != nil {
				_ = gs.stream.CloseSend()
			}
			var err error
			if gs, err = p.openStream(ctx, g); err != nil {
				for _, it := range items {
					it.fail(upstreamError("GetPages", err))
				}
				gs = nil
				continue
			}
		}
		nextID++
		b := &batch{id: nextID, items: items, sent: time.Now()}
		req := &pageserverv1.GetPagesRequest{
			RequestId:    b.id,
			Timeline:     p.ref,
			ReadLsn:      p.readLSN(&item.req),
			Rel:          relTag(item.req.Rel),
			BlockNumbers: make([]uint32, len(items)),
			RequestClass: pageserverv1.RequestClass_REQUEST_CLASS_NORMAL,
		}
		for i, it := range items {
			req.BlockNumbers[i] = it.req.BlockNo
		}
		p.h.opts.Metrics.batchSize(len(items))
		if !gs.enqueue(b) {
			continue
		}
		if err := gs.stream.Send(req); err != nil {
			// The receiver sees the stream's real error and fails the
			// batches; cancelling guarantees its Recv returns.
			gs.cancel()
		}
	}
}

func sameRelAndLSN(a, b *pagestream.Request) bool {
	return a.Rel == b.Rel && a.RequestLSN == b.RequestLSN && a.NotModifiedSince == b.NotModifiedSince
}

func (p *pipeline) openStream(ctx context.Context, g *errgroup.Group) (*getPagesStream, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := p.h.opts.Page.GetPages(sctx, p.token)
	if err != nil {
		cancel()
		return nil, err
	}
	gs := &getPagesStream{stream: stream, cancel: cancel}
	g.Go(func() error { gs.receive(p.h.opts.Metrics); return nil })
	return gs, nil
}

// enqueue records b as sent; false (and b failed) when the stream died.
func (gs *getPagesStream) enqueue(b *batch) bool {
	gs.mu.Lock()
	dead := gs.dead
	if dead == nil {
		gs.inflight = append(gs.inflight, b)
	}
	gs.mu.Unlock()
	if dead != nil {
		for _, it := range b.items {
			it.fail(dead)
		}
		return false
	}
	return true
}

func (gs *getPagesStream) failed() bool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.dead != nil
}

// receive matches responses to batches in order until the stream ends; on
// a stream error every batch still in flight fails with it.
func (gs *getPagesStream) receive(m *Metrics) {
	defer gs.cancel()
	for {
		resp, err := gs.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("GetPages stream ended with requests in flight")
			}
			gs.die(upstreamError("GetPages", err))
			return
		}
		gs.mu.Lock()
		var b *batch
		if len(gs.inflight) > 0 {
			b = gs.inflight[0]
			gs.inflight[0] = nil
			gs.inflight = gs.inflight[1:]
		}
		gs.mu.Unlock()
		if b == nil || resp.GetRequestId() != b.id {
			err := fmt.Errorf("pageserver answered GetPages request %d out of order", resp.GetRequestId())
			if b != nil {
				for _, it := range b.items {
					it.fail(err)
				}
			}
			gs.die(err)
			return
		}
		m.upstream("GetPages", b.sent)
		complete(b, resp)
	}
}

func (gs *getPagesStream) die(err error) {
	gs.mu.Lock()
	if gs.dead == nil {
		gs.dead = err
	}
	batches := gs.inflight
	gs.inflight = nil
	gs.mu.Unlock()
	for _, b := range batches {
		for _, it := range b.items {
			it.fail(err)
		}
	}
	gs.cancel()
}

func complete(b *batch, resp *pageserverv1.GetPagesResponse) {
	if code := resp.GetStatusCode(); code != pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK {
		err := fmt.Errorf("%s: %s", statusName(code), resp.GetReason())
		for _, it := range b.items {
			it.fail(err)
		}
		return
	}
	pages := resp.GetPages()
	for i, it := range b.items {
		switch {
		case i >= len(pages):
			it.fail(fmt.Errorf("pageserver returned %d pages for %d blocks", len(pages), len(b.items)))
		case pages[i].GetBlockNumber() != it.req.BlockNo || len(pages[i].GetImage()) != pagestream.PageSize:
			it.fail(fmt.Errorf("pageserver returned block %d with %d bytes for block %d", pages[i].GetBlockNumber(), len(pages[i].GetImage()), it.req.BlockNo))
		default:
			it.resp.Tag = pagestream.TagGetPageResponse
			it.resp.Page = pages[i].GetImage()
			close(it.done)
		}
	}
}

func statusName(code pageserverv1.GetPagesStatusCode) string {
	switch code {
	case pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_NOT_FOUND:
		return "not found"
	case pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INVALID_REQUEST:
		return "bad request"
	case pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INTERNAL_ERROR:
		return "internal error"
	case pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_SLOW_DOWN:
		return "slow down"
	case pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_LSN_TIMEOUT:
		return "LSN timeout"
	case pageserverv1.GetPagesStatusCode_GET_PAGES_STATUS_CODE_PERMISSION_DENIED:
		return "permission denied"
	default:
		return fmt.Sprintf("status %d", code)
	}
}

// unary runs a non-GetPage request and completes item.
func (p *pipeline) unary(ctx context.Context, item *pending) {
	ctx, cancel := context.WithTimeout(ctx, p.h.opts.RequestTimeout)
	defer cancel()
	r := &item.req
	start := time.Now()
	var err error
	var rpc string
	switch r.Tag {
	case pagestream.TagExists, pagestream.TagNblocks:
		rpc = "GetRelSize"
		// FSM and VM forks may be absent; Neon reports 0 blocks for them.
		allowMissing := r.Tag == pagestream.TagExists || r.Rel.ForkNum == pgtypes.FSMForkNum || r.Rel.ForkNum == pgtypes.VisibilityMapForkNum
		var resp *pageserverv1.GetRelSizeResponse
		resp, err = p.h.opts.Page.GetRelSize(ctx, &pageserverv1.GetRelSizeRequest{
			Timeline: p.ref, ReadLsn: p.readLSN(r), Rel: relTag(r.Rel), AllowMissing: allowMissing}, p.token)
		if err == nil {
			if r.Tag == pagestream.TagExists {
				item.resp.Tag, item.resp.Exists = pagestream.TagExistsResponse, !resp.GetMissing()
			} else {
				item.resp.Tag, item.resp.NBlocks = pagestream.TagNblocksResponse, resp.GetNumBlocks()
			}
		}
	case pagestream.TagDbSize:
		rpc = "GetDbSize"
		var resp *pageserverv1.GetDbSizeResponse
		resp, err = p.h.opts.Page.GetDbSize(ctx, &pageserverv1.GetDbSizeRequest{
			Timeline: p.ref, ReadLsn: p.readLSN(r), DbOid: uint32(r.DbNode)}, p.token)
		if err == nil {
			item.resp.Tag, item.resp.DbSize = pagestream.TagDbSizeResponse, int64(resp.GetNumBytes())
		}
	case pagestream.TagGetSlruSegment:
		rpc = "GetSlruSegment"
		var resp *pageserverv1.GetSlruSegmentResponse
		resp, err = p.h.opts.Page.GetSlruSegment(ctx, &pageserverv1.GetSlruSegmentRequest{
			Timeline: p.ref, ReadLsn: p.readLSN(r), Kind: pageserverv1.SlruKind(r.Kind) + 1, Segno: r.SegNo}, p.token)
		if err == nil {
			item.resp.Tag, item.resp.Segment = pagestream.TagGetSlruSegmentResponse, resp.GetSegment()
		}
	default:
		err = fmt.Errorf("unexpected request %s", r.Tag)
	}
	p.h.opts.Metrics.upstream(rpc, start)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			err = fmt.Errorf("%s: %s", st.Code(), st.Message())
		}
		item.fail(err)
		return
	}
	close(item.done)
}

// write answers requests in order. It flushes when the next answer is not
// ready yet (or the buffer is large), so a deep pipeline costs one write
// per burst and a shallow one is never delayed.
func (p *pipeline) write(ctx context.Context, ordered <-chan *pending) error {
	buf := make([]byte, 0, 64<<10)
	const flushAt = 256 << 10
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := p.c.WriteRaw(buf)
		buf = buf[:0]
		return err
	}
	for item := range ordered {
		select {
		case <-item.done:
		default:
			if err := flush(); err != nil {
				return err
			}
			select {
			case <-item.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		resp := &item.resp
		ok := item.err == nil
		if !ok {
			resp.Tag = pagestream.TagErrorResponse
			resp.Message = item.err.Error()
		}
		resp.Req = item.req
		var err error
		if buf, err = appendCopyData(buf, p.version, resp); err != nil {
			// A payload of the wrong size from upstream: answer with an
			// error so the compute is not handed a frame it would misparse.
			ok = false
			resp.Tag, resp.Message = pagestream.TagErrorResponse, err.Error()
			if buf, err = appendCopyData(buf, p.version, resp); err != nil {
				return err
			}
		}
		p.h.opts.Metrics.request(item.req.Tag.String(), ok, item.start)
		if len(buf) >= flushAt || len(ordered) == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// appendCopyData appends a CopyData frame holding resp.
func appendCopyData(buf []byte, v pagestream.Version, resp *pagestream.Response) ([]byte, error) {
	start := len(buf)
	buf = append(buf, 'd', 0, 0, 0, 0)
	out, err := pagestream.AppendResponse(buf, v, resp)
	if err != nil {
		return buf[:start], err
	}
	binary.BigEndian.PutUint32(out[start+1:], uint32(len(out)-start-1))
	return out, nil
}
