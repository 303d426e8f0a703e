package upstream

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratadb/strata/internal/auth"
	pageserverv1 "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

// MaxRecvMsgBytes bounds one message from the pageserver: a GetPages
// response of a batch of pages or a 1 MiB backup chunk fit with room.
const MaxRecvMsgBytes = 16 << 20

// Client is the shared connection to the pageserver.
type Client struct {
	conn *grpc.ClientConn
	// Page and Management are the generated clients; pass WithToken's call
	// option to every call.
	Page       pageserverv1.PageServiceClient
	Management pageserverv1.ManagementServiceClient
}

// Dial creates the client for addr. The connection is established lazily,
// on the first call; an unreachable pageserver shows up as UNAVAILABLE
// errors on calls, not here. Extra dial options (tests, TLS) are appended.
func Dial(addr string, opts ...grpc.DialOption) (*Client, error) {
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Large windows: GetPages streams many 8 KB pages (perf-limits.md §0).
		grpc.WithInitialWindowSize(1 << 20),
		grpc.WithInitialConnWindowSize(4 << 20),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRecvMsgBytes)),
	}
	conn, err := grpc.NewClient(addr, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDial, addr, err)
	}
	return &Client{
		conn:       conn,
		Page:       pageserverv1.NewPageServiceClient(conn),
		Management: pageserverv1.NewManagementServiceClient(conn),
	}, nil
}

// Close closes the connection; calls in flight fail with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

// WithToken returns the call option that sends token as
// "authorization: Bearer <token>" on one call. An empty token sends no
// credentials (trust mode end to end). The connection to the pageserver is
// plaintext (loopback or a private network), so the credentials do not
// demand TLS.
func WithToken(token string) grpc.CallOption {
	if token == "" {
		return grpc.EmptyCallOption{}
	}
	return grpc.PerRPCCredentials(auth.BearerToken(token, false))
}
