package wire

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/stratadb/strata/internal/auth"
)

// FuzzStartup feeds arbitrary bytes to a server connection as the client's
// first bytes (start-up packet, SSL/GSS negotiation, password, queries) in
// both auth modes: the connection must end without panic or hang, and the
// server must not buffer more than its limits.
func FuzzStartup(f *testing.F) {
	enc := func(msgs ...pgproto3.FrontendMessage) []byte {
		var b []byte
		for _, m := range msgs {
			b, _ = m.Encode(b)
		}
		return b
	}
	startup := &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "u", "options": "-c neon.compute_mode=primary", "application_name": "1"}}
	f.Add(false, enc(&pgproto3.SSLRequest{}, startup, &pgproto3.Query{String: "echo x"}, &pgproto3.Terminate{}))
	f.Add(true, enc(&pgproto3.GSSEncRequest{}, startup, &pgproto3.PasswordMessage{Password: "x.y.z"}))
	f.Add(false, enc(startup, &pgproto3.Parse{Query: "q"}, &pgproto3.Sync{}))
	f.Add(false, enc(&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}))
	f.Add(false, []byte{0, 0, 0, 8, 4, 210, 22, 47})
	f.Add(true, []byte{0, 0, 39, 16, 0, 3, 0, 0})

	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	v, err := auth.NewVerifier([]ed25519.PublicKey{pub})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, jwt bool, in []byte) {
		mode := auth.ModeTrust
		if jwt {
			mode = auth.ModeJWT
		}
		srv, err := NewServer(Options{Mode: mode, Verifier: v, Handler: echoHandler{}, Logger: slog.New(slog.DiscardHandler),
			Limits: Limits{MaxMessageBytes: 4096, StartupTimeout: time.Second, IdleTimeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.serveConn(context.Background(), server)
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = client.Write(in)
		_ = client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("connection did not end")
		}
	})
}
