package upstream

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

func TestWithToken(t *testing.T) {
	require.Equal(t, grpc.EmptyCallOption{}, WithToken(""))
	opt, ok := WithToken("abc").(grpc.PerRPCCredsCallOption)
	require.True(t, ok)
	md, err := opt.Creds.GetRequestMetadata(context.Background())
	require.NoError(t, err)
	require.Equal(t, map[string]string{"authorization": "Bearer abc"}, md)
	require.False(t, opt.Creds.RequireTransportSecurity())
	require.NotContains(t, fmt.Sprint(opt.Creds), "abc")
}

func TestDial(t *testing.T) {
	c, err := Dial("127.0.0.1:1")
	require.NoError(t, err, "dialing is lazy")
	require.NotNil(t, c.Page)
	require.NotNil(t, c.Management)
	require.NoError(t, c.Close())
	_, err = Dial("dns:///%%%")
	require.ErrorIs(t, err, ErrDial)
}
