package pgproxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	pageserverv1 "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pgproxy/internal/fakeps"
	"github.com/stratadb/strata/services/pgproxy/pagestream"
)

var rel = pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}

func protoRel(r pgtypes.RelTag) *pageserverv1.RelTag {
	return &pageserverv1.RelTag{SpcOid: uint32(r.SpcNode), DbOid: uint32(r.DbNode), RelNumber: uint32(r.RelNode), ForkNumber: uint32(r.ForkNum)}
}

// expectation is a request and what its response must be.
type expectation struct {
	req   pagestream.Request
	check func(t *testing.T, resp pagestream.Response)
}

func okTag(t *testing.T, resp pagestream.Response, tag pagestream.ResponseTag) {
	t.Helper()
	require.Equal(t, tag, resp.Tag, "message: %s", resp.Message)
}

func errorContains(substr string) func(t *testing.T, resp pagestream.Response) {
	return func(t *testing.T, resp pagestream.Response) {
		t.Helper()
		require.Equal(t, pagestream.TagErrorResponse, resp.Tag)
		require.Contains(t, resp.Message, substr)
	}
}

// mixedRequests returns n requests of every kind, interleaved, with their
// expected answers from the fake's data model.
func mixedRequests(n int) []expectation {
	const at = lsn.LSN(0x1800000)
	var out []expectation
	base := pagestream.Request{RequestLSN: at, NotModifiedSince: at}
	for i := 0; i < n; i++ {
		blk := uint32(i % 1200) // some beyond the relation's end: zero pages
		r := base
		r.Tag, r.Rel, r.BlockNo = pagestream.TagGetPage, rel, blk
		out = append(out, expectation{r, func(t *testing.T, resp pagestream.Response) {
			okTag(t, resp, pagestream.TagGetPageResponse)
			require.Equal(t, fakeps.Page(protoRel(rel), blk), resp.Page)
		}})
		switch i % 8 {
		case 1:
			r := base
			r.Tag, r.Rel = pagestream.TagNblocks, rel
			out = append(out, expectation{r, func(t *testing.T, resp pagestream.Response) {
				okTag(t, resp, pagestream.TagNblocksResponse)
				require.Equal(t, uint32(fakeps.RelBlocks), resp.NBlocks)
			}})
		case 2:
			r := base
			r.Tag, r.Rel = pagestream.TagExists, pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: fakeps.MissingRel}
			out = append(out, expectation{r, func(t *testing.T, resp pagestream.Response) {
				okTag(t, resp, pagestream.TagExistsResponse)
				require.False(t, resp.Exists)
			}})
			r.Rel = rel
			out = append(out, expectation{r, func(t *testing.T, resp pagestream.Response) {
				okTag(t, resp, pagestream.TagExistsResponse)
				require.True(t, resp.Exists)
			}})
		case 3:
			r := base
			r.Tag, r.DbNode = pagestream.TagDbSize, 5
			out = append(out, expectation{r, func(t *testing.T, resp pagestream.Response) {
				okTag(t, resp, pagestream.TagDbSizeResponse)
				require.Equal(t, int64(fakeps.DbSizeBytes+5*8192), resp.DbSize)
			}})
		case 4:
			r := base
			seg := uint32(i)
			r.Tag, r.Kind, r.SegNo = pagestream.TagGetSlruSegment, pagestream.SlruMultiXactOffsets, seg
			out = append(out, expectation{r, func(t *testing.T, resp pagestream.Response) {
				okTag(t, resp, pagestream.TagGetSlruSegmentResponse)
				require.Equal(t, fakeps.SlruSegment(pageserverv1.SlruKind_SLRU_KIND_MULTIXACT_OFFSETS, seg), resp.Segment)
			}})
		case 5:
			// Per-request errors keep the stream open.
			r := base
			r.Tag, r.Rel, r.BlockNo = pagestream.TagGetPage, pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: fakeps.NotFoundRel}, 1
			out = append(out, expectation{r, errorContains("not found")})
			r = base
			r.Tag, r.Rel, r.RequestLSN, r.NotModifiedSince = pagestream.TagGetPage, rel, 0, 0
			out = append(out, expectation{r, errorContains("invalid LSN(0)")})
			r = base
			r.Tag, r.Rel, r.RequestLSN, r.NotModifiedSince = pagestream.TagNblocks, rel, lsn.LSN(0x9000000), lsn.LSN(0x9000000)
			out = append(out, expectation{r, errorContains("LSN timeout")})
			r = base
			r.Tag, r.Rel, r.NotModifiedSince = pagestream.TagGetPage, rel, at+1
			out = append(out, expectation{r, errorContains("less than not_modified_since")})
			r = base
			r.Tag, r.Rel, r.BlockNo, r.RequestLSN, r.NotModifiedSince = pagestream.TagGetPage, rel, 3, lsn.LSN(0x9000000), lsn.LSN(0x9000000)
			out = append(out, expectation{r, errorContains("LSN timeout")})
		case 6:
			r := base
			r.Tag, r.Rel = pagestream.TagNblocks, pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: fakeps.MissingRel, ForkNum: pgtypes.FSMForkNum}
			out = append(out, expectation{r, func(t *testing.T, resp pagestream.Response) {
				okTag(t, resp, pagestream.TagNblocksResponse)
				require.Zero(t, resp.NBlocks, "a missing FSM fork has 0 blocks")
			}})
		}
	}
	for i := range out {
		out[i].req.ReqID = uint64(1000 + i)
	}
	return out
}

// drive sends every request with at most depth in flight and checks the
// responses, in order.
func drive(t *testing.T, c *pagestream.Client, reqs []expectation, depth int) {
	t.Helper()
	sent := 0
	for got := 0; got < len(reqs); got++ {
		for sent < len(reqs) && sent-got < depth {
			require.NoError(t, c.Send(&reqs[sent].req))
			sent++
		}
		require.NoError(t, c.Flush())
		resp, err := c.Receive()
		require.NoError(t, err)
		if c.Version() == pagestream.V3 {
			want := reqs[got].req
			if resp.Tag == pagestream.TagErrorResponse {
				want = pagestream.Request{ReqID: want.ReqID, RequestLSN: want.RequestLSN, NotModifiedSince: want.NotModifiedSince}
			}
			require.Equal(t, want, resp.Req, "V3 echo of request %d", got)
		}
		reqs[got].check(t, resp)
	}
}

func TestPagestreamPipelined(t *testing.T) {
	e := startEnv(t, envOptions{})
	token := e.token(auth.ScopeTenant, tenantA)
	for _, v := range []pagestream.Version{pagestream.V2, pagestream.V3} {
		for _, depth := range []int{1, 32, 200} {
			t.Run(fmt.Sprintf("v%d/depth%d", v, depth), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c, err := pagestream.Connect(ctx, e.connString(token), v, tenantA, timelineA)
				require.NoError(t, err)
				defer c.Close()
				before := e.fake.GetPagesRequests.Load()
				reqs := mixedRequests(300)
				drive(t, c, reqs, depth)
				if depth > 1 {
					// Consecutive GetPages were folded into fewer GetPages requests.
					t.Logf("GetPages requests upstream: %d", e.fake.GetPagesRequests.Load()-before)
				}
			})
		}
	}
}

// TestPagestreamBatching: a burst of GetPage requests for one relation and
// LSN travels in fewer GetPagesRequests than requests.
func TestPagestreamBatching(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.fake.SetGetPagesDelay(2 * time.Millisecond) // let requests queue up
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pagestream.Connect(ctx, e.connString(e.token(auth.ScopeTenant, tenantA)), pagestream.V3, tenantA, timelineA)
	require.NoError(t, err)
	defer c.Close()
	var reqs []expectation
	for i := 0; i < 256; i++ {
		blk := uint32(i)
		reqs = append(reqs, expectation{
			pagestream.Request{Tag: pagestream.TagGetPage, ReqID: uint64(i), RequestLSN: 0x1000000, NotModifiedSince: 0x1000000, Rel: rel, BlockNo: blk},
			func(t *testing.T, resp pagestream.Response) {
				okTag(t, resp, pagestream.TagGetPageResponse)
				require.Equal(t, fakeps.Page(protoRel(rel), blk), resp.Page)
			}})
	}
	drive(t, c, reqs, 128)
	require.Equal(t, int64(256), e.fake.GetPagesBlocks.Load())
	require.Less(t, e.fake.GetPagesRequests.Load(), int64(256/2), "GetPage requests were not batched")
}

func TestPagestreamProtocolErrors(t *testing.T) {
	e := startEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	token := e.token(auth.ScopeTenant, tenantA)

	// Unknown timeline: the stream opens (tenant is allowed), the request fails.
	c, err := pagestream.Connect(ctx, e.connString(token), pagestream.V2, tenantA, timelineB)
	require.NoError(t, err)
	_, err = c.Do(&pagestream.Request{Tag: pagestream.TagGetPage, RequestLSN: 0x1000000, NotModifiedSince: 0x1000000, Rel: rel})
	require.ErrorIs(t, err, pagestream.ErrServer)
	require.ErrorContains(t, err, "not found")
	// ...and the stream still works.
	resp, err := c.Do(&pagestream.Request{Tag: pagestream.TagDbSize, RequestLSN: 0x1000000, NotModifiedSince: 0x1000000, DbNode: 1})
	require.NoError(t, err)
	require.Equal(t, pagestream.TagDbSizeResponse, resp.Tag)
	require.NoError(t, c.Close())

	// Bad syntax of the command itself.
	_, err = pagestream.Connect(ctx, e.connString(token), pagestream.V3, tenantA, "nope")
	require.Equal(t, "42601", pgCode(err), "error: %v", err)
}

// TestPagestreamUpstreamStreamFailure: a GetPages stream that fails
// mid-flight fails only the requests on it (pagestream Error messages);
// the next GetPage opens a new stream and the compute's stream stays open.
func TestPagestreamUpstreamStreamFailure(t *testing.T) {
	e := startEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pagestream.Connect(ctx, e.connString(e.token(auth.ScopeTenant, tenantA)), pagestream.V3, tenantA, timelineA)
	require.NoError(t, err)
	defer c.Close()
	get := func(relNode pgtypes.Oid, blk uint32) (pagestream.Response, error) {
		return c.Do(&pagestream.Request{Tag: pagestream.TagGetPage, ReqID: uint64(blk), RequestLSN: 0x1000000, NotModifiedSince: 0x1000000,
			Rel: pgtypes.RelTag{SpcNode: 1663, DbNode: 5, RelNode: relNode}, BlockNo: blk})
	}
	_, err = get(16384, 1)
	require.NoError(t, err)
	_, err = get(fakeps.BreakRel, 2)
	require.ErrorIs(t, err, pagestream.ErrServer)
	require.ErrorContains(t, err, "broken on purpose")
	resp, err := get(16384, 3)
	require.NoError(t, err)
	require.Equal(t, fakeps.Page(protoRel(rel), 3), resp.Page)
}

// TestPagestreamShutdown: at shutdown the requests in flight are answered,
// then the stream ends with 57P01.
func TestPagestreamShutdown(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.fake.SetGetPagesDelay(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pagestream.Connect(ctx, e.connString(e.token(auth.ScopeTenant, tenantA)), pagestream.V3, tenantA, timelineA)
	require.NoError(t, err)
	defer c.Close()
	for i := 0; i < 4; i++ {
		require.NoError(t, c.Send(&pagestream.Request{Tag: pagestream.TagGetPage, ReqID: uint64(i), RequestLSN: 0x1000000, NotModifiedSince: 0x1000000, Rel: rel, BlockNo: uint32(i)}))
	}
	require.NoError(t, c.Flush())
	time.Sleep(20 * time.Millisecond)
	e.stop()
	for i := 0; i < 4; i++ {
		resp, err := c.Receive()
		require.NoError(t, err, "response %d", i)
		require.Equal(t, pagestream.TagGetPageResponse, resp.Tag, resp.Message)
		require.Equal(t, uint64(i), resp.Req.ReqID)
	}
	_, err = c.Receive()
	require.Equal(t, "57P01", pgCode(err), "error: %v", err)
}
