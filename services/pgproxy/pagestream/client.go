package pagestream

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Client is a compute-side pagestream client: it connects with libpq
// conventions (pgconn; the JWT as password), sends `pagestream_vN <tenant>
// <timeline>` and then exchanges requests and responses in CopyData. It is
// what a Neon compute does, for tests, benchmarks and tools.
//
// Pipelining: Send queues requests (Flush writes them) while Receive reads
// responses in request order. One goroutine may Send/Flush while another
// Receives; Do is for callers that want one request at a time.
type Client struct {
	conn    net.Conn
	fe      *pgproto3.Frontend
	version Version

	sendMu sync.Mutex
	recvMu sync.Mutex
	buf    []byte
}

// Connect opens a pagestream of version v on tenant/timeline through the
// server named by connString (a libpq connection string or URL).
func Connect(ctx context.Context, connString string, v Version, tenant, timeline string) (*Client, error) {
	if !v.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedVersion, v)
	}
	pc, err := pgconn.Connect(ctx, connString)
	if err != nil {
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		_ = pc.Close(ctx)
		return nil, err
	}
	c := &Client{conn: hc.Conn, fe: hc.Frontend, version: v}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
	}
	c.fe.Send(&pgproto3.Query{String: fmt.Sprintf("pagestream_v%d %s %s", v, tenant, timeline)})
	if err := c.fe.Flush(); err != nil {
		_ = c.conn.Close()
		return nil, err
	}
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			_ = c.conn.Close()
			return nil, err
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyBothResponse:
			_ = c.conn.SetDeadline(time.Time{})
			return c, nil
		case *pgproto3.ErrorResponse:
			_ = c.conn.Close()
			return nil, pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			_ = c.conn.Close()
			return nil, fmt.Errorf("pagestream: unexpected %T before CopyBothResponse", msg)
		}
	}
}

// Version returns the protocol version of the stream.
func (c *Client) Version() Version { return c.version }

// Send queues r; Flush writes queued requests.
func (c *Client) Send(r *Request) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	var err error
	c.buf, err = AppendRequest(c.buf[:0], c.version, r)
	if err != nil {
		return err
	}
	c.fe.Send(&pgproto3.CopyData{Data: c.buf})
	return nil
}

// Flush writes the queued requests.
func (c *Client) Flush() error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.fe.Flush()
}

// Receive reads the next response. Payloads (Page, Segment) are copied, so
// they stay valid. A pagestream Error response is returned as a Response
// with Tag TagErrorResponse and a nil error; a libpq ErrorResponse (the
// server ended the stream) is returned as a *pgconn.PgError.
func (c *Client) Receive() (Response, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			return Response{}, err
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			resp, err := DecodeResponse(c.version, msg.Data)
			if err != nil {
				return resp, err
			}
			if resp.Page != nil {
				resp.Page = append([]byte(nil), resp.Page...)
			}
			if resp.Segment != nil {
				resp.Segment = append([]byte(nil), resp.Segment...)
			}
			return resp, nil
		case *pgproto3.ErrorResponse:
			return Response{}, pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return Response{}, fmt.Errorf("pagestream: unexpected %T in the stream", msg)
		}
	}
}

// Do sends r and waits for its response; a pagestream Error response
// becomes an error wrapping ErrServer. Not for use concurrently with
// Send/Receive by others.
func (c *Client) Do(r *Request) (Response, error) {
	if err := c.Send(r); err != nil {
		return Response{}, err
	}
	if err := c.Flush(); err != nil {
		return Response{}, err
	}
	resp, err := c.Receive()
	if err != nil {
		return resp, err
	}
	if resp.Tag == TagErrorResponse {
		return resp, fmt.Errorf("%w: %s", ErrServer, resp.Message)
	}
	return resp, nil
}

// Close sends Terminate and closes the connection.
func (c *Client) Close() error {
	c.sendMu.Lock()
	c.fe.Send(&pgproto3.Terminate{})
	_ = c.fe.Flush()
	c.sendMu.Unlock()
	return c.conn.Close()
}
