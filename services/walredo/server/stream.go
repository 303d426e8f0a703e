package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/lsn"
	walredov1 "github.com/stratadb/strata/proto/gen/strata/walredo/v1"
	"github.com/stratadb/strata/services/walredo/redo"
)

// MaxInFlightPerStream bounds the requests one ApplyStream runs at once.
// Past it the server stops reading the stream, so HTTP/2 flow control
// pushes back on the client instead of the server queueing without bound.
const MaxInFlightPerStream = 256

// streamCall is one request of an ApplyStream in flight.
type streamCall struct {
	cancel context.CancelFunc
}

// ApplyStream implements WalRedoService.ApplyStream: every request runs in
// its own goroutine (the pool serialises per child), answers are sent in
// completion order under one send lock (a gRPC stream allows one sender).
//
// The handler returns (ending the stream) when the client closes its side,
// when the transport fails, or after Drain; in every case it first waits
// for the requests it started, so no goroutine outlives the call.
func (s *Server) ApplyStream(stream walredov1.WalRedoService_ApplyStreamServer) error {
	if err := auth.AuthorizeScope(stream.Context(), auth.ScopePageserverAPI); err != nil {
		return err
	}
	ctx, cancelAll := context.WithCancel(stream.Context())
	defer cancelAll()

	st := &streamState{srv: s, stream: stream, calls: make(map[uint64]streamCall), slots: make(chan struct{}, MaxInFlightPerStream)}
	recvDone := make(chan error, 1)
	go func() { recvDone <- st.recvLoop(ctx) }()

	var err error
	select {
	case err = <-recvDone:
	case <-s.draining:
		// Let the running requests answer, then end the stream with
		// UNAVAILABLE/CLOSED so the client reconnects elsewhere or fails
		// cleanly. The receive goroutine starts nothing more and ends when
		// the stream does.
		st.mu.Lock()
		st.stopped = true
		st.mu.Unlock()
		st.wg.Wait()
		return statusError(fmt.Errorf("%w: walredo is shutting down", redo.ErrClosed))
	}
	if errors.Is(err, io.EOF) {
		st.wg.Wait() // the client half-closed: answer what is running
		return nil
	}
	cancelAll() // the client is gone: nobody reads the answers
	st.wg.Wait()
	return err
}

type streamState struct {
	srv    *Server
	stream walredov1.WalRedoService_ApplyStreamServer
	wg     sync.WaitGroup
	slots  chan struct{} // in-flight bound

	mu      sync.Mutex
	calls   map[uint64]streamCall
	stopped bool // set when draining: no new request starts

	sendMu sync.Mutex
	resp   walredov1.ApplyStreamResponse // reused under sendMu: Send marshals before it returns
}

// recvLoop reads requests until the stream ends. It returns io.EOF when the
// client half-closed, another error when the stream broke.
func (st *streamState) recvLoop(ctx context.Context) error {
	for {
		select {
		case st.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		req := new(walredov1.ApplyStreamRequest) // unmarshalling allocates its bytes anyway; the goroutine owns them
		if err := st.stream.RecvMsg(req); err != nil {
			<-st.slots
			return err
		}
		id := req.GetId()
		if req.GetCancel() {
			<-st.slots
			st.mu.Lock()
			if c, ok := st.calls[id]; ok {
				c.cancel()
			}
			st.mu.Unlock()
			continue
		}
		var callCtx context.Context
		var cancel context.CancelFunc
		if us := req.GetTimeoutMicros(); us > 0 {
			callCtx, cancel = context.WithTimeout(ctx, time.Duration(min(us, uint64(1<<62)/1000))*time.Microsecond)
		} else {
			callCtx, cancel = context.WithCancel(ctx)
		}
		st.mu.Lock()
		_, dup := st.calls[id]
		stopped := st.stopped
		if !dup && !stopped {
			st.calls[id] = streamCall{cancel: cancel}
			st.wg.Add(1)
		}
		st.mu.Unlock()
		if stopped {
			cancel()
			<-st.slots
			return redo.ErrClosed
		}
		if dup {
			cancel()
			<-st.slots
			st.send(id, nil, fmt.Errorf("%w: request id %d is already in flight on this stream", redo.ErrInvalidRequest, id))
			continue
		}
		go st.run(callCtx, cancel, id, req.GetApply())
	}
}

func (st *streamState) run(ctx context.Context, cancel context.CancelFunc, id uint64, req *walredov1.ApplyRequest) {
	defer st.wg.Done()
	defer func() { <-st.slots }()
	sc := st.srv.scratch.Get().(*scratch)
	err := st.srv.apply(ctx, req, sc)
	st.mu.Lock()
	delete(st.calls, id)
	st.mu.Unlock()
	cancel()
	if err != nil {
		st.send(id, nil, err)
	} else {
		st.send(id, sc.page, nil)
	}
	st.srv.putScratch(sc)
}

// send answers request id with page or err. A send error means the stream
// is broken; the receive loop sees the same and ends the call.
func (st *streamState) send(id uint64, page []byte, err error) {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	st.resp.Id = id
	st.resp.Page = page
	st.resp.Error = nil
	if err != nil {
		st.resp.Error = streamError(err)
	}
	_ = st.stream.Send(&st.resp)
	st.resp.Page = nil // drop the reference to the scratch page
}

// Drain makes every ApplyStream answer the requests it is running and then
// end with UNAVAILABLE (reason CLOSED), and new ones end at once, so a
// graceful gRPC stop does not wait for clients to close their streams.
// Call it when shutdown begins; it is idempotent.
func (s *Server) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// streamError is statusError for one request of a stream: the code,
// message and ErrorInfo fields a unary call would carry.
func streamError(err error) *walredov1.ApplyStreamError {
	st := status.Convert(statusError(err))
	out := &walredov1.ApplyStreamError{Code: uint32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != ErrorDomain {
			continue
		}
		out.Reason = info.GetReason()
		md := info.GetMetadata()
		out.Detail = md[MetaDetail]
		if text, ok := md[MetaRecordLSN]; ok {
			if at, perr := lsn.Parse(text); perr == nil {
				out.RecordLsn = uint64(at)
			}
		}
	}
	if out.Code == uint32(codes.OK) { // cannot happen for a non-nil err; never answer "ok" without a page
		out.Code = uint32(codes.Internal)
	}
	return out
}
