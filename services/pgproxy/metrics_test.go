package pgproxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/services/pgproxy/pagestream"
)

func TestMetricsExported(t *testing.T) {
	e := startEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pagestream.Connect(ctx, e.connString(e.token(auth.ScopeTenant, tenantA)), pagestream.V3, tenantA, timelineA)
	require.NoError(t, err)
	_, err = c.Do(&pagestream.Request{Tag: pagestream.TagGetPage, RequestLSN: 0x1000000, NotModifiedSince: 0x1000000, Rel: rel})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_ = e.runCommand(ctx, "garbage", "tenant_create")

	scrape := func() string {
		resp, err := http.Get("http://" + e.metrics + "/metrics")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return string(body)
	}
	// The pagestream command is counted when its connection has ended,
	// which the server learns asynchronously after Close.
	var body string
	require.Eventually(t, func() bool {
		body = scrape()
		return strings.Contains(body, "pgproxy_connections_active 0")
	}, 5*time.Second, 10*time.Millisecond)
	for _, want := range []string{
		"pgproxy_connections_total",
		"pgproxy_connections_active",
		`pgproxy_commands_total{command="pagestream",outcome="ok"} 1`,
		`pgproxy_pagestream_requests_total{outcome="ok",type="get_page"} 1`,
		`pgproxy_pagestream_request_seconds_count{type="get_page"} 1`,
		`pgproxy_upstream_seconds_count{rpc="GetPages"} 1`,
		"pgproxy_getpages_batch_blocks_count 1",
		"pgproxy_bytes_out_total",
		`pgproxy_auth_failures_total{reason="invalid_token"} 1`,
	} {
		require.Contains(t, body, want)
	}
}
