package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/stratadb/strata/internal/auth"
)

// Defaults for Limits fields left zero.
const (
	DefaultMaxConnections  = 1000
	DefaultMaxMessageBytes = 1 << 20
	DefaultStartupTimeout  = 10 * time.Second
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultWriteTimeout    = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// ServerVersion is what pgproxy reports as server_version: psql and drivers
// parse it, and the tools that talk to pgproxy are PostgreSQL 15's.
const ServerVersion = "15.0 (Strata pgproxy)"

// Limits bounds what one client can make the server hold.
type Limits struct {
	MaxConnections  int
	MaxMessageBytes int
	StartupTimeout  time.Duration
	IdleTimeout     time.Duration
	WriteTimeout    time.Duration
	ShutdownTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.StartupTimeout <= 0 {
		l.StartupTimeout = DefaultStartupTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
	if l.ShutdownTimeout <= 0 {
		l.ShutdownTimeout = DefaultShutdownTimeout
	}
	return l
}

// Handler runs the simple queries of authenticated connections.
type Handler interface {
	// HandleQuery runs one query (already trimmed, never empty) and writes
	// its result through c (RowDescription/DataRow/CommandComplete, or a
	// Copy sub-protocol). It must not send ReadyForQuery. A returned error
	// is sent as an ErrorResponse (see AsError); if the error says Close,
	// or c.Broken() was set, the connection is closed afterwards. ctx is
	// cancelled when the server shuts down.
	HandleQuery(ctx context.Context, c *Conn, query string) error
}

// Options configures NewServer.
type Options struct {
	// Mode is auth.ModeTrust or auth.ModeJWT.
	Mode auth.Mode
	// Verifier checks passwords in ModeJWT.
	Verifier *auth.Verifier
	Handler  Handler
	Logger   *slog.Logger
	// Metrics may be nil (no metrics).
	Metrics *Metrics
	Limits  Limits
	// TLS, when set, answers SSLRequest with 'S' and requires TLS: a plain
	// StartupMessage is refused.
	TLS *tls.Config
}

// Server is the PostgreSQL-wire server.
type Server struct {
	opts   Options
	limits Limits
	served atomic.Bool

	mu    sync.Mutex
	conns map[*Conn]struct{}
	// rejecting bounds the goroutines answering refused connections.
	rejecting chan struct{}
}

const maxRejecting = 64

// NewServer checks opts and returns a server; call Serve.
func NewServer(opts Options) (*Server, error) {
	if opts.Handler == nil || opts.Logger == nil {
		return nil, errors.New("wire: Handler and Logger are required")
	}
	switch opts.Mode {
	case auth.ModeTrust:
	case auth.ModeJWT:
		if opts.Verifier == nil {
			return nil, errors.New("wire: auth mode jwt needs a Verifier")
		}
	default:
		return nil, fmt.Errorf("wire: unknown auth mode %q", opts.Mode)
	}
	return &Server{opts: opts, limits: opts.Limits.withDefaults(), conns: map[*Conn]struct{}{}, rejecting: make(chan struct{}, maxRejecting)}, nil
}

// Serve accepts connections on lis until ctx is cancelled, then shuts down
// as described in the package doc and returns nil; or it returns the
// accept error that stopped it. It closes lis.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if s.served.Swap(true) {
		return ErrServerClosed
	}
	var wg sync.WaitGroup
	// connCtx is cancelled at shutdown; conns outlive ctx by up to
	// ShutdownTimeout.
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()

	acceptErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		acceptErr <- s.acceptLoop(connCtx, lis, &wg)
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-acceptErr:
		acceptErr <- nil // for the drain below
	}
	_ = lis.Close()
	cancelConns()
	<-acceptErr

	// Give busy handlers ShutdownTimeout, then close what is left.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(s.limits.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.mu.Lock()
		for c := range s.conns {
			_ = c.netConn.Close()
		}
		s.mu.Unlock()
		<-done
	}
	if err != nil {
		return fmt.Errorf("wire: accepting on %s: %w", lis.Addr(), err)
	}
	return nil
}

func (s *Server) acceptLoop(ctx context.Context, lis net.Listener, wg *sync.WaitGroup) error {
	var active atomic.Int64
	for {
		nc, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		if int(active.Add(1)) > s.limits.MaxConnections {
			active.Add(-1)
			s.opts.Metrics.rejected("too_many_connections")
			s.reject(nc, wg)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer active.Add(-1)
			s.serveConn(ctx, nc)
		}()
	}
}

// reject answers a connection over the limit. libpq reads an ErrorResponse
// in place of the SSLRequest answer or the authentication request (it was
// made for exactly this "too many connections" case). The client's
// start-up bytes are drained briefly before closing, because closing a
// socket with unread input resets the connection and the client would lose
// the message. At most maxRejecting rejections run at once; beyond that
// connections are just closed.
func (s *Server) reject(nc net.Conn, wg *sync.WaitGroup) {
	select {
	case s.rejecting <- struct{}{}:
	default:
		_ = nc.Close()
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-s.rejecting }()
		defer nc.Close()
		msg := &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: CodeTooManyConnections,
			Message: fmt.Sprintf("sorry, too many clients already (pgproxy max_connections = %d)", s.limits.MaxConnections)}
		buf, _ := msg.Encode(nil)
		_ = nc.SetDeadline(time.Now().Add(time.Second))
		if _, err := nc.Write(buf); err != nil {
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
	}()
}

func (s *Server) track(c *Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	m := s.opts.Metrics
	m.connOpened()
	defer m.connClosed()
	c := newConn(ctx, nc, s.limits, m)
	s.track(c, true)
	defer s.track(c, false)
	defer c.close()

	// Unblock reads when the server shuts down.
	stopWatch := context.AfterFunc(ctx, func() { _ = c.netConn.SetReadDeadline(time.Now()) })
	defer stopWatch()

	logger := s.opts.Logger.With("remote", nc.RemoteAddr().String())
	if err := s.startup(c); err != nil {
		s.sendFatal(c, err)
		if ctx.Err() == nil {
			logger.Debug("connection refused during start-up", "err", err)
		}
		return
	}
	logger = logger.With("application_name", c.AppName, "compute_mode", c.ComputeMode, "scope", string(c.Claims.Scope))
	logger.Debug("connection authenticated")
	c.logger = logger
	if err := s.queryLoop(ctx, c); err != nil {
		logger.Debug("connection ended", "err", err)
	}
}

// sendFatal sends err as a FATAL ErrorResponse (best effort).
func (s *Server) sendFatal(c *Conn, err error) {
	if errors.Is(err, errConnGone) {
		return
	}
	we := AsError(err)
	c.Send(errorResponse(we, "FATAL"))
	_ = c.Flush()
}

func errorResponse(we *Error, severity string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: we.Code, Message: we.Message, Hint: we.Hint}
}

// errConnGone marks errors after which nothing can be sent.
var errConnGone = errors.New("wire: connection gone")

func (s *Server) startup(c *Conn) error {
	if err := c.netConn.SetDeadline(time.Now().Add(s.limits.StartupTimeout)); err != nil {
		return fmt.Errorf("%w: %w", errConnGone, err)
	}
	if c.ctx.Err() != nil {
		return ErrShutdown
	}
	var startup *pgproto3.StartupMessage
	for tries := 0; startup == nil; tries++ {
		if tries >= 3 {
			return Errorf(CodeProtocolViolation, "too many start-up negotiation messages")
		}
		msg, err := c.backend.ReceiveStartupMessage()
		if err != nil {
			return fmt.Errorf("%w: reading start-up message: %w", errConnGone, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.SSLRequest:
			if err := s.negotiateTLS(c); err != nil {
				return err
			}
		case *pgproto3.GSSEncRequest:
			if _, err := c.netConn.Write([]byte{'N'}); err != nil {
				return fmt.Errorf("%w: %w", errConnGone, err)
			}
		case *pgproto3.CancelRequest:
			// Queries are not cancellable; PostgreSQL also closes silently.
			return fmt.Errorf("%w: cancel request ignored", errConnGone)
		case *pgproto3.StartupMessage:
			startup = msg
		default:
			return Errorf(CodeProtocolViolation, "unexpected start-up message %T", msg)
		}
	}
	if s.opts.TLS != nil && !c.tls {
		s.opts.Metrics.authFailure("no_tls")
		return &Error{Code: CodeInvalidAuthorization, Message: "must connect with TLS", Close: true, Hint: "use sslmode=require"}
	}
	if startup.ProtocolVersion != pgproto3.ProtocolVersion30 {
		return Errorf(CodeFeatureNotSupported, "protocol version %d.%d is not supported (only 3.0)", startup.ProtocolVersion>>16, startup.ProtocolVersion&0xffff)
	}
	c.Params = make(map[string]string, len(startup.Parameters))
	for k, v := range startup.Parameters {
		c.Params[k] = v
	}
	c.AppName = startup.Parameters["application_name"]
	if opts, ok := startup.Parameters["options"]; ok {
		parsed, err := ParseOptions(opts)
		if err != nil {
			return &Error{Code: CodeProtocolViolation, Message: err.Error(), Err: err, Close: true}
		}
		c.ComputeMode = parsed["neon.compute_mode"]
	}
	if err := s.authenticate(c); err != nil {
		return err
	}
	c.Send(&pgproto3.AuthenticationOk{})
	for _, p := range [][2]string{
		{"server_version", ServerVersion},
		{"client_encoding", "UTF8"},
		{"server_encoding", "UTF8"},
		{"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"},
		{"DateStyle", "ISO, MDY"},
	} {
		c.Send(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	if err := c.netConn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("%w: %w", errConnGone, err)
	}
	return nil
}

func (s *Server) negotiateTLS(c *Conn) error {
	if s.opts.TLS == nil || c.tls {
		if _, err := c.netConn.Write([]byte{'N'}); err != nil {
			return fmt.Errorf("%w: %w", errConnGone, err)
		}
		return nil
	}
	if _, err := c.netConn.Write([]byte{'S'}); err != nil {
		return fmt.Errorf("%w: %w", errConnGone, err)
	}
	tc := tls.Server(c.netConn, s.opts.TLS)
	if err := tc.HandshakeContext(c.ctx); err != nil {
		return fmt.Errorf("%w: TLS handshake: %w", errConnGone, err)
	}
	c.setTransport(tc)
	c.tls = true
	return nil
}

// authenticate sets c.Claims and c.Token.
func (s *Server) authenticate(c *Conn) error {
	if s.opts.Mode == auth.ModeTrust {
		// As auth.ModeTrust on gRPC: everyone acts as pageserverapi. A
		// password, if the client volunteers one, is never asked for.
		c.Claims = &auth.Claims{Scope: auth.ScopePageserverAPI}
		return nil
	}
	c.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%w: %w", errConnGone, err)
	}
	if err := c.backend.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return err
	}
	msg, err := c.backend.Receive()
	if err != nil {
		return fmt.Errorf("%w: waiting for the password: %w", errConnGone, err)
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		s.opts.Metrics.authFailure("protocol")
		return &Error{Code: CodeProtocolViolation, Message: fmt.Sprintf("expected a password message, got %T", msg), Close: true}
	}
	token := strings.TrimRight(pw.Password, "\x00")
	claims, err := s.opts.Verifier.Verify(token)
	if err != nil {
		s.opts.Metrics.authFailure(authFailureReason(token))
		return err
	}
	c.Claims = claims
	c.Token = token
	return nil
}

func authFailureReason(token string) string {
	if token == "" {
		return "no_password"
	}
	return "invalid_token"
}

func (s *Server) queryLoop(ctx context.Context, c *Conn) error {
	c.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := c.Flush(); err != nil {
		return err
	}
	skipToSync := false
	for {
		c.ArmIdleDeadline()
		msg, err := c.backend.Receive()
		if err != nil {
			if ctx.Err() != nil {
				s.sendFatal(c, ErrShutdown)
				return ErrShutdown
			}
			var tooBig *pgproto3.ExceededMaxBodyLenErr
			if errors.As(err, &tooBig) {
				s.sendFatal(c, &Error{Code: CodeProgramLimitExceeded, Message: fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen)})
				return err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.sendFatal(c, &Error{Code: CodeAdminShutdown, Message: fmt.Sprintf("terminating connection: idle for more than %s", s.limits.IdleTimeout)})
			}
			return err
		}
		_ = c.netConn.SetReadDeadline(time.Time{})
		switch msg := msg.(type) {
		case *pgproto3.Query:
			if skipToSync {
				continue
			}
			if err := s.runQuery(ctx, c, msg.String); err != nil {
				return err
			}
		case *pgproto3.Terminate:
			return nil
		case *pgproto3.Sync:
			skipToSync = false
			c.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if err := c.Flush(); err != nil {
				return err
			}
		case *pgproto3.Flush:
			if err := c.Flush(); err != nil {
				return err
			}
		case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close:
			if !skipToSync {
				skipToSync = true
				c.Send(errorResponse(Errorf(CodeFeatureNotSupported, "pgproxy supports only the simple query protocol"), "ERROR"))
			}
		default:
			s.sendFatal(c, Errorf(CodeProtocolViolation, "unexpected message %T outside of a command", msg))
			return fmt.Errorf("wire: unexpected message %T", msg)
		}
	}
}

// runQuery runs one simple query and sends ReadyForQuery; an error return
// means the connection must close.
func (s *Server) runQuery(ctx context.Context, c *Conn, query string) error {
	query = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(query), ";"))
	if query == "" {
		c.Send(&pgproto3.EmptyQueryResponse{})
	} else if err := s.opts.Handler.HandleQuery(ctx, c, query); err != nil {
		we := AsError(err)
		if we.Code == CodeInternal || we.Code == CodeConnectionFailure {
			c.logger.Warn("command failed", "query", truncate(query), "err", err)
		}
		if errors.Is(err, auth.ErrPermissionDenied) || errors.Is(err, auth.ErrUnauthenticated) {
			s.opts.Metrics.authFailure("denied")
		}
		if c.broken.Load() {
			return err
		}
		sev := "ERROR"
		if we.Close {
			sev = "FATAL"
		}
		c.Send(errorResponse(we, sev))
		if we.Close {
			_ = c.Flush()
			return err
		}
	}
	if c.broken.Load() {
		return errors.New("wire: handler left the connection unusable")
	}
	c.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return c.Flush()
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
