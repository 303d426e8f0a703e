package wire

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/stratadb/strata/internal/auth"
)

// Conn is one authenticated client connection as a Handler sees it.
type Conn struct {
	// Claims are the verified token's claims (synthetic pageserverapi
	// claims in trust mode). Never nil inside a Handler.
	Claims *auth.Claims
	// Token is the client's JWT, forwarded to the pageserver ("" in trust
	// mode).
	Token string
	// Params are the StartupMessage parameters.
	Params map[string]string
	// AppName is application_name (a compute sets its backend PID).
	AppName string
	// ComputeMode is neon.compute_mode from options (primary, replica,
	// static), "" when absent.
	ComputeMode string

	ctx     context.Context
	netConn net.Conn
	out     *countingWriter
	backend *pgproto3.Backend
	limits  Limits
	metrics *Metrics
	logger  *slog.Logger
	tls     bool
	broken  atomic.Bool
	// pending is set while Send has buffered bytes Flush has not written;
	// Send and Flush are called from one goroutine at a time.
	pending bool
}

func newConn(ctx context.Context, nc net.Conn, limits Limits, m *Metrics) *Conn {
	c := &Conn{ctx: ctx, limits: limits, metrics: m, logger: slog.New(slog.DiscardHandler)}
	c.setTransport(nc)
	return c
}

func (c *Conn) setTransport(nc net.Conn) {
	c.netConn = nc
	c.out = &countingWriter{conn: nc, metrics: c.metrics}
	c.backend = pgproto3.NewBackend(nc, c.out)
	c.backend.SetMaxBodyLen(c.limits.MaxMessageBytes)
}

func (c *Conn) close() { _ = c.netConn.Close() }

// Send buffers a message; Flush writes the buffer.
func (c *Conn) Send(msg pgproto3.BackendMessage) {
	c.backend.Send(msg)
	c.pending = true
}

// Flush writes buffered messages within WriteTimeout.
func (c *Conn) Flush() error {
	if !c.pending {
		return nil
	}
	c.pending = false
	if err := c.netConn.SetWriteDeadline(time.Now().Add(c.limits.WriteTimeout)); err != nil {
		return err
	}
	if err := c.backend.Flush(); err != nil {
		c.broken.Store(true)
		return fmt.Errorf("wire: writing to client: %w", err)
	}
	return nil
}

// WriteRaw flushes buffered messages, then writes b, which must hold whole
// protocol messages (the pagestream hot path builds CopyData frames itself
// to avoid a copy).
func (c *Conn) WriteRaw(b []byte) error {
	if err := c.Flush(); err != nil {
		return err
	}
	if err := c.netConn.SetWriteDeadline(time.Now().Add(c.limits.WriteTimeout)); err != nil {
		return err
	}
	if _, err := c.out.Write(b); err != nil {
		c.broken.Store(true)
		return fmt.Errorf("wire: writing to client: %w", err)
	}
	return nil
}

// Receive reads the next frontend message; it is valid until the next
// Receive. It fails when the server shuts down (reads are unblocked), when a
// message exceeds MaxMessageBytes, or when the connection fails. Only one
// goroutine may Receive at a time.
func (c *Conn) Receive() (pgproto3.FrontendMessage, error) {
	msg, err := c.backend.Receive()
	if err != nil {
		if c.ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ErrShutdown, err)
		}
		return nil, err
	}
	return msg, nil
}

// ArmIdleDeadline makes the next reads fail after IdleTimeout without
// input, or immediately when the server is shutting down.
func (c *Conn) ArmIdleDeadline() { c.armReadDeadline(time.Now().Add(c.limits.IdleTimeout)) }

// ClearReadDeadline lets reads block indefinitely (until shutdown). A
// pagestream compute legitimately keeps its connection idle for long.
func (c *Conn) ClearReadDeadline() { c.armReadDeadline(time.Time{}) }

func (c *Conn) armReadDeadline(t time.Time) {
	_ = c.netConn.SetReadDeadline(t)
	// The shutdown watcher may have fired just before: keep its effect.
	if c.ctx.Err() != nil {
		_ = c.netConn.SetReadDeadline(time.Now())
	}
}

// MarkBroken tells the server the protocol state is unknown (for example a
// sub-protocol ended mid-stream): it closes the connection after the
// handler returns instead of sending ReadyForQuery.
func (c *Conn) MarkBroken() { c.broken.Store(true) }

// Close closes the underlying connection immediately (for a handler that
// must abort: unblocks its own reads and writes).
func (c *Conn) Close() { c.close() }

type countingWriter struct {
	conn    net.Conn
	metrics *Metrics
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.conn.Write(b)
	w.metrics.bytesOut(n)
	return n, err
}

// ParseOptions parses the StartupMessage "options" parameter as PostgreSQL
// does for `-c name=value` settings: arguments are separated by whitespace,
// a backslash escapes the next character; `-c name=value`, `-cname=value`
// and `--name=value` set name. Other arguments are an error. Only
// neon.compute_mode is used, but every setting is parsed so a malformed
// options string is refused rather than half-read.
func ParseOptions(s string) (map[string]string, error) {
	const maxOptions = 64
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inArg = true
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(ch)
			inArg = true
		}
		if len(args) > 2*maxOptions {
			return nil, fmt.Errorf("wire: options: more than %d settings", maxOptions)
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var kv string
		switch {
		case a == "-c":
			if i+1 >= len(args) {
				return nil, fmt.Errorf("wire: options: -c without a setting")
			}
			i++
			kv = args[i]
		case strings.HasPrefix(a, "-c"):
			kv = a[2:]
		case strings.HasPrefix(a, "--"):
			kv = a[2:]
		default:
			return nil, fmt.Errorf("wire: options: unsupported argument %q (want -c name=value)", truncate(a))
		}
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("wire: options: %q is not name=value", truncate(kv))
		}
		out[strings.ReplaceAll(name, "-", "_")] = value
	}
	return out, nil
}
