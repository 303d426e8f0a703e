package wire

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoHandler answers "echo X" with one row X, "fail CODE" with an error,
// "block" by waiting for shutdown, "close" with a Close error.
type echoHandler struct{}

func (echoHandler) HandleQuery(ctx context.Context, c *Conn, q string) error {
	switch {
	case strings.HasPrefix(q, "echo "):
		c.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("v"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}})
		c.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(q[5:])}})
		c.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
		return nil
	case strings.HasPrefix(q, "fail "):
		return Errorf(q[5:], "failed as asked")
	case q == "whoami":
		c.Send(&pgproto3.CommandComplete{CommandTag: []byte(string(c.Claims.Scope) + " " + c.ComputeMode + " " + c.AppName)})
		return nil
	case q == "denied":
		return auth.Check(c.Claims, "")
	case q == "block":
		<-ctx.Done()
		return ErrShutdown
	}
	return errors.New("unknown")
}

type testServer struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
	priv   ed25519.PrivateKey
}

func startServer(t *testing.T, mode auth.Mode, limits Limits) *testServer {
	return startServerTLS(t, mode, limits, nil)
}

func startServerTLS(t *testing.T, mode auth.Mode, limits Limits, tlsConfig *tls.Config) *testServer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	v, err := auth.NewVerifier([]ed25519.PublicKey{pub})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	require.NoError(t, err)
	srv, err := NewServer(Options{Mode: mode, Verifier: v, Handler: echoHandler{}, Logger: slog.New(slog.DiscardHandler), Metrics: m, Limits: limits, TLS: tlsConfig})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{addr: lis.Addr().String(), cancel: cancel, done: make(chan error, 1), reg: reg, priv: priv}
	go func() { ts.done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok {
			require.NoError(t, err)
			close(ts.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

type client struct {
	t    *testing.T
	conn net.Conn
	fe   *pgproto3.Frontend
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
}

func (c *client) send(msgs ...pgproto3.FrontendMessage) {
	c.t.Helper()
	for _, m := range msgs {
		c.fe.Send(m)
	}
	require.NoError(c.t, c.fe.Flush())
}

func (c *client) recv() pgproto3.BackendMessage {
	c.t.Helper()
	m, err := c.fe.Receive()
	require.NoError(c.t, err)
	return m
}

// recvUntil reads until a message of type T and returns it.
func recvUntil[T pgproto3.BackendMessage](c *client) T {
	c.t.Helper()
	for {
		m := c.recv()
		if v, ok := m.(T); ok {
			return v
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			var zero T
			if _, want := any(zero).(*pgproto3.ErrorResponse); !want {
				c.t.Fatalf("unexpected error %s: %s", e.Code, e.Message)
			}
		}
	}
}

func (c *client) startup(params map[string]string) {
	c.t.Helper()
	if params == nil {
		params = map[string]string{"user": "u", "database": "d"}
	}
	c.send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params})
}

func (c *client) login(password string) {
	c.t.Helper()
	c.startup(nil)
	if password != "" {
		_ = recvUntil[*pgproto3.AuthenticationCleartextPassword](c)
		c.send(&pgproto3.PasswordMessage{Password: password})
	}
	_ = recvUntil[*pgproto3.ReadyForQuery](c)
}

func (c *client) expectClosed() {
	c.t.Helper()
	_, err := io.ReadAll(c.conn)
	require.NoError(c.t, err)
}

func TestStartupAndQueries(t *testing.T) {
	ts := startServer(t, auth.ModeTrust, Limits{})
	c := dial(t, ts.addr)
	// SSLRequest and GSSENCRequest are answered 'N'.
	for _, req := range []pgproto3.FrontendMessage{&pgproto3.SSLRequest{}, &pgproto3.GSSEncRequest{}} {
		buf, err := req.Encode(nil)
		require.NoError(t, err)
		_, err = c.conn.Write(buf)
		require.NoError(t, err)
		one := make([]byte, 1)
		_, err = io.ReadFull(c.conn, one)
		require.NoError(t, err)
		require.Equal(t, byte('N'), one[0])
	}
	c.startup(map[string]string{"user": "u", "application_name": "4242", "options": "-c neon.compute_mode=replica"})
	require.IsType(t, &pgproto3.AuthenticationOk{}, c.recv())
	params := map[string]string{}
	for {
		m := c.recv()
		if ps, ok := m.(*pgproto3.ParameterStatus); ok {
			params[ps.Name] = ps.Value
			continue
		}
		require.IsType(t, &pgproto3.ReadyForQuery{}, m)
		break
	}
	require.Equal(t, "UTF8", params["client_encoding"])
	require.Equal(t, "on", params["integer_datetimes"])
	require.Contains(t, params["server_version"], "15")

	c.send(&pgproto3.Query{String: "echo hi;"})
	require.IsType(t, &pgproto3.RowDescription{}, c.recv())
	require.Equal(t, [][]byte{[]byte("hi")}, c.recv().(*pgproto3.DataRow).Values)
	require.IsType(t, &pgproto3.CommandComplete{}, c.recv())
	require.IsType(t, &pgproto3.ReadyForQuery{}, c.recv())

	c.send(&pgproto3.Query{String: "whoami"})
	require.Equal(t, "pageserverapi replica 4242", string(c.recv().(*pgproto3.CommandComplete).CommandTag))
	require.IsType(t, &pgproto3.ReadyForQuery{}, c.recv())

	for _, code := range []string{CodeSyntaxError, CodeInternal} {
		c.send(&pgproto3.Query{String: "fail " + code})
		e := c.recv().(*pgproto3.ErrorResponse)
		require.Equal(t, code, e.Code)
		require.Equal(t, "ERROR", e.Severity)
		require.IsType(t, &pgproto3.ReadyForQuery{}, c.recv())
	}

	c.send(&pgproto3.Query{String: "  ;"})
	require.IsType(t, &pgproto3.EmptyQueryResponse{}, c.recv())
	require.IsType(t, &pgproto3.ReadyForQuery{}, c.recv())

	// The extended protocol is refused once per Sync.
	c.send(&pgproto3.Parse{Query: "echo x"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	require.Equal(t, CodeFeatureNotSupported, c.recv().(*pgproto3.ErrorResponse).Code)
	require.IsType(t, &pgproto3.ReadyForQuery{}, c.recv())

	c.send(&pgproto3.Terminate{})
	c.expectClosed()
}

func TestJWTAuth(t *testing.T) {
	ts := startServer(t, auth.ModeJWT, Limits{})
	tenant := strings.Repeat("ab", 16)
	tok, err := auth.Issue(ts.priv, &auth.Claims{Scope: auth.ScopeTenant, TenantID: tenant})
	require.NoError(t, err)

	c := dial(t, ts.addr)
	c.login(tok + "\x00")
	c.send(&pgproto3.Query{String: "whoami"})
	require.Equal(t, "tenant  ", string(c.recv().(*pgproto3.CommandComplete).CommandTag))
	require.IsType(t, &pgproto3.ReadyForQuery{}, c.recv())
	c.send(&pgproto3.Query{String: "denied"})
	e := c.recv().(*pgproto3.ErrorResponse)
	require.Equal(t, CodeInvalidAuthorization, e.Code)
	require.IsType(t, &pgproto3.ReadyForQuery{}, c.recv(), "a denied command does not close the connection")

	for _, pw := range []string{"", "garbage", tok[:len(tok)-2]} {
		c := dial(t, ts.addr)
		c.startup(nil)
		_ = recvUntil[*pgproto3.AuthenticationCleartextPassword](c)
		c.send(&pgproto3.PasswordMessage{Password: pw})
		e := recvUntil[*pgproto3.ErrorResponse](c)
		require.Equal(t, CodeInvalidPassword, e.Code)
		require.Equal(t, "FATAL", e.Severity)
		require.NotContains(t, e.Message, tok)
		c.expectClosed()
	}
	// Three refused passwords and one denied command.
	require.Equal(t, 4.0, counterSum(t, ts.reg, "pgproxy_auth_failures_total"))
}

// counterSum sums a counter family from reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func TestLimits(t *testing.T) {
	t.Run("max connections", func(t *testing.T) {
		ts := startServer(t, auth.ModeTrust, Limits{MaxConnections: 1})
		c1 := dial(t, ts.addr)
		c1.login("")
		c2 := dial(t, ts.addr)
		c2.startup(nil)
		e := recvUntil[*pgproto3.ErrorResponse](c2)
		require.Equal(t, CodeTooManyConnections, e.Code)
		c2.expectClosed()
	})
	t.Run("max message size", func(t *testing.T) {
		ts := startServer(t, auth.ModeTrust, Limits{MaxMessageBytes: 1024})
		c := dial(t, ts.addr)
		c.login("")
		c.send(&pgproto3.Query{String: "echo " + strings.Repeat("x", 2000)})
		e := recvUntil[*pgproto3.ErrorResponse](c)
		require.Equal(t, CodeProgramLimitExceeded, e.Code)
		c.expectClosed()
	})
	t.Run("idle timeout", func(t *testing.T) {
		ts := startServer(t, auth.ModeTrust, Limits{IdleTimeout: 100 * time.Millisecond})
		c := dial(t, ts.addr)
		c.login("")
		e := recvUntil[*pgproto3.ErrorResponse](c)
		require.Contains(t, e.Message, "idle")
		c.expectClosed()
	})
	t.Run("startup timeout", func(t *testing.T) {
		ts := startServer(t, auth.ModeTrust, Limits{StartupTimeout: 100 * time.Millisecond})
		c := dial(t, ts.addr)
		start := time.Now()
		c.expectClosed()
		require.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("huge startup packet", func(t *testing.T) {
		ts := startServer(t, auth.ModeTrust, Limits{})
		c := dial(t, ts.addr)
		_, err := c.conn.Write(binary.BigEndian.AppendUint32(nil, 1<<30))
		require.NoError(t, err)
		c.expectClosed()
	})
}

func TestGracefulShutdown(t *testing.T) {
	ts := startServer(t, auth.ModeTrust, Limits{ShutdownTimeout: 200 * time.Millisecond})
	idle := dial(t, ts.addr)
	idle.login("")
	busy := dial(t, ts.addr)
	busy.login("")
	busy.send(&pgproto3.Query{String: "block"})
	time.Sleep(50 * time.Millisecond) // let the query start
	ts.stop(t)
	for _, c := range []*client{idle, busy} {
		e := recvUntil[*pgproto3.ErrorResponse](c)
		require.Equal(t, CodeAdminShutdown, e.Code)
		c.expectClosed()
	}
	// New connections are refused.
	_, err := net.DialTimeout("tcp", ts.addr, time.Second)
	require.Error(t, err)
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
		err  bool
	}{
		{"-c neon.compute_mode=primary", map[string]string{"neon.compute_mode": "primary"}, false},
		{"-cneon.compute_mode=static  -c a=b", map[string]string{"neon.compute_mode": "static", "a": "b"}, false},
		{`--search-path=x\ y`, map[string]string{"search_path": "x y"}, false},
		{"", map[string]string{}, false},
		{"-c", nil, true},
		{"-c novalue", nil, true},
		{"-x", nil, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseOptions(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add("-c neon.compute_mode=primary")
	f.Add(`-c a=\ b -cx=y --z=1`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseOptions(s)
		if err == nil && len(m) > 64 {
			t.Fatalf("%d settings accepted", len(m))
		}
	})
}

func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgproxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, priv)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}}, pool
}

func TestTLS(t *testing.T) {
	serverConf, pool := selfSigned(t)
	ts := startServerTLS(t, auth.ModeTrust, Limits{}, serverConf)

	// SSLRequest → 'S', handshake, then the normal start-up inside TLS.
	c := dial(t, ts.addr)
	buf, err := (&pgproto3.SSLRequest{}).Encode(nil)
	require.NoError(t, err)
	_, err = c.conn.Write(buf)
	require.NoError(t, err)
	one := make([]byte, 1)
	_, err = io.ReadFull(c.conn, one)
	require.NoError(t, err)
	require.Equal(t, byte('S'), one[0])
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	require.NoError(t, tc.Handshake())
	c.conn, c.fe = tc, pgproto3.NewFrontend(tc, tc)
	c.login("")
	c.send(&pgproto3.Query{String: "echo secure"})
	require.Equal(t, [][]byte{[]byte("secure")}, recvUntil[*pgproto3.DataRow](c).Values)

	// Plaintext start-up is refused.
	p := dial(t, ts.addr)
	p.startup(nil)
	e := recvUntil[*pgproto3.ErrorResponse](p)
	require.Equal(t, CodeInvalidAuthorization, e.Code)
	require.Contains(t, e.Message, "TLS")
}
