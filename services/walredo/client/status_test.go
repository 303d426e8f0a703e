package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/walredo/client"
	"github.com/stratadb/strata/services/walredo/redo"
	"github.com/stratadb/strata/services/walredo/server"
)

// failing is a Backend that returns err from every call.
type failing struct{ err error }

func (f failing) Apply(context.Context, *redo.Request, []byte) error { return f.err }
func (f failing) Mask(context.Context, ids.TenantID, uint8, uint32, []byte, []byte) error {
	return f.err
}

// TestErrorsCrossTheWire checks the whole mapping: backend error → status
// code (server/status.go) → redo sentinel (client), wrapped errors included.
func TestErrorsCrossTheWire(t *testing.T) {
	at := lsn.MustParse("0/16B3F28")
	cases := []struct {
		name    string
		err     error
		code    codes.Code
		is      error
		lsn     lsn.LSN // expected RecordError LSN; 0 for none
		wantMsg string
	}{
		{"invalid", fmt.Errorf("%w: bad fork", redo.ErrInvalidRequest), codes.InvalidArgument, redo.ErrInvalidRequest, 0, "bad fork"},
		{"record failed", &redo.RecordError{LSN: at, Msg: "incorrect resource manager data checksum", Kind: redo.ErrRecordFailed}, codes.InvalidArgument, redo.ErrRecordFailed, at, "0/16B3F28"},
		{"record failed wrapped", fmt.Errorf("tenant x: %w", &redo.RecordError{LSN: at, Msg: "boom", Kind: redo.ErrRecordFailed}), codes.InvalidArgument, redo.ErrRecordFailed, at, "boom"},
		{"crash with lsn", &redo.RecordError{LSN: at, Msg: "PANIC", Kind: redo.ErrChildCrashed}, codes.Internal, redo.ErrChildCrashed, at, "PANIC"},
		{"crash without lsn", &redo.RecordError{Msg: "killed", Kind: redo.ErrChildCrashed}, codes.Internal, redo.ErrChildCrashed, 0, "killed"},
		{"timeout", fmt.Errorf("%w: child killed", redo.ErrTimeout), codes.DeadlineExceeded, redo.ErrTimeout, 0, "child killed"},
		{"closed", redo.ErrClosed, codes.Unavailable, redo.ErrClosed, 0, "closed"},
		{"canceled", fmt.Errorf("request canceled: %w", context.Canceled), codes.Canceled, context.Canceled, 0, "canceled"},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, context.DeadlineExceeded, 0, "deadline"},
		{"other", errors.New("disk on fire"), codes.Internal, nil, 0, "disk on fire"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := serve(t, failing{tc.err}, nil, server.Options{})
			c := client.New(conn)
			req := &redo.Request{Tenant: tenant(9), Tag: heapTag, Records: heapChain(lsn.MustParse("0/1000000"), 1)}
			err := c.Apply(context.Background(), req, make([]byte, pgtypes.BLCKSZ))
			require.Error(t, err)
			// Stream and unary map alike, to the same text.
			unaryErr := client.New(conn, client.WithUnary()).Apply(context.Background(), req, make([]byte, pgtypes.BLCKSZ))
			require.Equal(t, unaryErr.Error(), err.Error())
			require.NoError(t, c.Close())
			require.Contains(t, err.Error(), tc.wantMsg)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			for _, other := range []error{redo.ErrInvalidRequest, redo.ErrRecordFailed, redo.ErrChildCrashed, redo.ErrTimeout, redo.ErrClosed} {
				if other != tc.is {
					require.NotErrorIs(t, err, other)
				}
			}
			var re *redo.RecordError
			if errors.As(err, &re) {
				require.Equal(t, tc.lsn, re.LSN)
			} else {
				require.Zero(t, tc.lsn)
			}
			// The code as a generic gRPC client sees it.
			_, rawErr := rawClient(conn).Apply(context.Background(), rawRequest(req))
			require.Equal(t, tc.code, status.Code(rawErr))
			// Mask maps the same way.
			merr := c.Mask(context.Background(), tenant(9), 10, 0, make([]byte, pgtypes.BLCKSZ), make([]byte, pgtypes.BLCKSZ))
			if tc.is != nil {
				require.ErrorIs(t, merr, tc.is)
			}
		})
	}
}

func TestCallerCancellationWins(t *testing.T) {
	c := client.New(serve(t, failing{context.Canceled}, nil, server.Options{}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Apply(ctx, &redo.Request{Tenant: tenant(9), Tag: heapTag}, make([]byte, pgtypes.BLCKSZ))
	require.ErrorIs(t, err, context.Canceled)
}

func TestClientValidatesLocally(t *testing.T) {
	c := client.New(serve(t, failing{errors.New("must not be called")}, nil, server.Options{}))
	err := c.Apply(context.Background(), &redo.Request{Tenant: tenant(9), Tag: heapTag, Base: make([]byte, 5)}, make([]byte, pgtypes.BLCKSZ))
	require.ErrorIs(t, err, redo.ErrInvalidRequest)
	require.NotContains(t, err.Error(), "must not be called")
}
