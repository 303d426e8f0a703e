package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	walredov1 "github.com/stratadb/strata/proto/gen/strata/walredo/v1"
	"github.com/stratadb/strata/services/walredo/redo"
	"github.com/stratadb/strata/services/walredo/server"
)

// stream is one ApplyStream and the calls waiting for answers on it. Its
// receive goroutine (recvLoop) is its owner: it ends when the stream ends,
// which happens on transport failure, server shutdown, Client.Close or the
// connection's Close.
type stream struct {
	rpc    walredov1.WalRedoService_ApplyStreamClient
	cancel context.CancelFunc

	sendMu sync.Mutex // one sender at a time (gRPC streams allow one)

	mu      sync.Mutex
	pending map[uint64]*call
	err     error         // why the stream ended; set once, before done closes
	retry   bool          // the end was UNAVAILABLE (transport, server restart)
	done    chan struct{} // closed when recvLoop has failed every pending call
}

// call is one request waiting on a stream. recvLoop completes it exactly
// once, after removing it from pending; whoever removes it from pending
// owns the right to complete (or abandon) it.
type call struct {
	page []byte // the caller's result buffer, written only by recvLoop
	err  error
	// lost: the stream ended under the call (no verdict on the request
	// itself); retry: the end was UNAVAILABLE, worth one more try.
	lost, retry bool
	done        chan struct{}
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// message is the reusable request message: gRPC marshals in Send, so it
// can be reused as soon as Send returns.
type message struct {
	req     walredov1.ApplyStreamRequest
	apply   walredov1.ApplyRequest
	tag     walredov1.BufferTag
	records []walredov1.WalRecord
	ptrs    []*walredov1.WalRecord
}

var messagePool = sync.Pool{New: func() any { return new(message) }}

// streamFor returns the client's live stream, opening one if there is none
// or the last one ended.
func (c *Client) streamFor() (*stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: client is closed", redo.ErrClosed)
	}
	if s := c.stream; s != nil {
		select {
		case <-s.done:
		default:
			return s, nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	rpc, err := c.rpc.ApplyStream(ctx)
	if err != nil {
		cancel()
		return nil, fromStatus(context.Background(), err)
	}
	s := &stream{rpc: rpc, cancel: cancel, pending: make(map[uint64]*call), done: make(chan struct{})}
	c.stream = s
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		s.recvLoop()
	}()
	return s, nil
}

// applyStream runs one request on the client's stream. retry reports that
// the request was lost with a stream that ended UNAVAILABLE.
func (c *Client) applyStream(ctx context.Context, req *redo.Request, page []byte) (retry bool, err error) {
	s, err := c.streamFor()
	if err != nil {
		return false, err
	}
	cl := callPool.Get().(*call)
	cl.page, cl.err, cl.lost, cl.retry = page, nil, false, false
	id := c.nextID.Add(1)

	s.mu.Lock()
	if s.err != nil {
		err, retry := s.err, s.retry
		s.mu.Unlock()
		c.putCall(cl)
		return retry, err
	}
	s.pending[id] = cl
	s.mu.Unlock()

	m := messagePool.Get().(*message)
	c.fill(ctx, m, id, req)
	s.sendMu.Lock()
	err = s.rpc.Send(&m.req)
	s.sendMu.Unlock()
	m.reset()
	messagePool.Put(m)
	if err != nil {
		// Send fails only when the stream has ended; recvLoop learns why
		// and fails every pending call, ours included.
		<-s.done
	}

	select {
	case <-cl.done:
	case <-ctx.Done():
		s.mu.Lock()
		_, mine := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		if !mine {
			<-cl.done // recvLoop is completing it: wait so page is not written after we return
			break
		}
		// A caller who cancelled tells the server to stop working on it
		// (best effort: a broken stream is being replaced anyway). An
		// expired deadline needs no message: the request carried it, so
		// the server's own deadline stops the work. The call is abandoned
		// rather than pooled: nothing writes it any more.
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancelMsg := messagePool.Get().(*message)
			cancelMsg.req.Id, cancelMsg.req.Cancel = id, true
			s.sendMu.Lock()
			_ = s.rpc.Send(&cancelMsg.req)
			s.sendMu.Unlock()
			cancelMsg.reset()
			messagePool.Put(cancelMsg)
		}
		return false, fmt.Errorf("walredo client: %w", ctx.Err())
	}
	err, lost, retry := cl.err, cl.lost, cl.retry
	c.putCall(cl)
	if lost && ctx.Err() != nil {
		// The caller's own context error wins, as in fromStatus.
		return false, fmt.Errorf("walredo client: %w (%v)", ctx.Err(), err)
	}
	return retry, err
}

func (c *Client) putCall(cl *call) {
	cl.page, cl.err, cl.lost, cl.retry = nil, nil, false, false
	callPool.Put(cl)
}

// fill sets m to request req under id. The caller's deadline travels as a
// relative timeout so the server stops work the caller no longer awaits.
func (c *Client) fill(ctx context.Context, m *message, id uint64, req *redo.Request) {
	m.tag = walredov1.BufferTag{
		SpcOid:      uint32(req.Tag.Rel.SpcNode),
		DbOid:       uint32(req.Tag.Rel.DbNode),
		RelNumber:   uint32(req.Tag.Rel.RelNode),
		ForkNumber:  uint32(req.Tag.Rel.ForkNum),
		BlockNumber: req.Tag.BlockNum,
	}
	if cap(m.records) < len(req.Records) {
		m.records = make([]walredov1.WalRecord, len(req.Records))
		m.ptrs = make([]*walredov1.WalRecord, len(req.Records))
	}
	m.records, m.ptrs = m.records[:len(req.Records)], m.ptrs[:len(req.Records)]
	for i, r := range req.Records {
		m.records[i].StartLsn = uint64(r.Start)
		m.records[i].EndLsn = uint64(r.End)
		m.records[i].Data = r.Raw
		m.ptrs[i] = &m.records[i]
	}
	m.apply.TenantId = req.Tenant.String()
	m.apply.Tag = &m.tag
	m.apply.BaseImage = req.Base
	m.apply.Records = m.ptrs
	m.apply.SourceWalLogHints = c.walLogHints
	m.req.Id = id
	m.req.Apply = &m.apply
	m.req.TimeoutMicros = 0
	if deadline, ok := ctx.Deadline(); ok {
		m.req.TimeoutMicros = uint64(max(time.Until(deadline).Microseconds(), 1))
	}
}

// reset drops every reference to a caller's bytes before pooling.
func (m *message) reset() {
	for i := range m.records {
		m.records[i].Data = nil
	}
	m.apply.BaseImage = nil
	m.apply.Records = nil
	m.req = walredov1.ApplyStreamRequest{}
}

// recvLoop delivers answers to their calls until the stream ends, then
// fails every call still pending with the reason.
func (s *stream) recvLoop() {
	var resp walredov1.ApplyStreamResponse
	for {
		resp.Reset()
		if err := s.rpc.RecvMsg(&resp); err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		cl, ok := s.pending[resp.GetId()]
		delete(s.pending, resp.GetId())
		s.mu.Unlock()
		if !ok {
			continue // its caller gave up
		}
		if e := resp.GetError(); e != nil {
			cl.err = fromStreamError(e)
		} else if len(resp.GetPage()) != pgtypes.BLCKSZ {
			cl.err = fmt.Errorf("%w: server returned a page of %d bytes", ErrProtocol, len(resp.GetPage()))
		} else {
			copy(cl.page, resp.GetPage())
		}
		cl.done <- struct{}{}
	}
}

func (s *stream) fail(recvErr error) {
	var err error
	retry := false
	if errors.Is(recvErr, io.EOF) {
		// The server ended the stream with OK, which the contract does
		// not allow while requests are pending.
		err = fmt.Errorf("%w: server ended the stream", ErrProtocol)
	} else {
		err = fromStatus(context.Background(), recvErr)
		retry = status.Code(recvErr) == codes.Unavailable
	}
	s.cancel()
	s.mu.Lock()
	s.err, s.retry = err, retry
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, cl := range pending {
		cl.err, cl.lost, cl.retry = err, true, retry
		cl.done <- struct{}{}
	}
	close(s.done)
}

// fromStreamError is fromStatus for one answer of a stream.
func fromStreamError(e *walredov1.ApplyStreamError) error {
	var kind error
	switch e.GetReason() {
	case server.ReasonInvalidRequest:
		return fmt.Errorf("%w (from walredo server): %s", redo.ErrInvalidRequest, e.GetMessage())
	case server.ReasonTimeout:
		return fmt.Errorf("%w (from walredo server): %s", redo.ErrTimeout, e.GetMessage())
	case server.ReasonClosed:
		return fmt.Errorf("%w (from walredo server): %s", redo.ErrClosed, e.GetMessage())
	case server.ReasonRecordFailed:
		kind = redo.ErrRecordFailed
	case server.ReasonChildCrashed:
		kind = redo.ErrChildCrashed
	default:
		switch codes.Code(e.GetCode()) {
		case codes.Canceled:
			return fmt.Errorf("walredo server: %w: %s", context.Canceled, e.GetMessage())
		case codes.DeadlineExceeded:
			return fmt.Errorf("walredo server: %w: %s", context.DeadlineExceeded, e.GetMessage())
		}
		// As fromStatus: the status itself, wrapped, so status.Code of
		// the unwrapped error is the code.
		return fmt.Errorf("walredo server: %w", status.Error(codes.Code(e.GetCode()), e.GetMessage()))
	}
	recErr := &redo.RecordError{Kind: kind, Msg: e.GetDetail(), LSN: lsn.LSN(e.GetRecordLsn())}
	if recErr.Msg == "" {
		recErr.Msg = e.GetMessage()
	}
	return recErr
}
