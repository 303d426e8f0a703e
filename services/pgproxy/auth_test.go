package pgproxy

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/services/pgproxy/pagestream"
)

// pgCode returns the SQLSTATE of err ("" if it is not a server error).
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// runCommand runs one command of the matrix with password and returns the
// error (nil on success). Connection refusals come back as the connect
// error.
func (e *env) runCommand(ctx context.Context, password, command string) error {
	switch command {
	case "pagestream":
		c, err := pagestream.Connect(ctx, e.connString(password), pagestream.V3, tenantB, timelineB)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Do(&pagestream.Request{Tag: pagestream.TagDbSize, ReqID: 1, RequestLSN: 0x1000000, NotModifiedSince: 0x1000000, DbNode: 5})
		return err
	}
	pc, err := pgconn.Connect(ctx, e.connString(password))
	if err != nil {
		return err
	}
	defer pc.Close(ctx)
	switch command {
	case "fullbackup":
		_, err = pc.CopyTo(ctx, io.Discard, "fullbackup "+tenantB+" "+timelineB)
		return err
	case "tenant_create":
		_, err = pc.Exec(ctx, "tenant_create").ReadAll()
		return err
	case "branch_create":
		_, err = pc.Exec(ctx, "branch_create "+tenantB+" auto "+timelineB+" latest").ReadAll()
		return err
	}
	return errors.New("unknown command " + command)
}

// TestAuthMatrix: {credentials} × {pagestream, fullbackup, tenant_create,
// branch_create}, all naming tenant B. Refusals at connection are 28P01
// (who are you?); refusals of a command are 28000 (not allowed).
func TestAuthMatrix(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.fake.SetBackup(make([]byte, 1024))
	commands := []string{"pagestream", "fullbackup", "tenant_create", "branch_create"}
	const ok = ""
	rows := []struct {
		name     string
		password string
		want     [4]string // SQLSTATE per command, ok = success
	}{
		{"no password", "", [4]string{"28P01", "28P01", "28P01", "28P01"}},
		{"garbage", "not-a-jwt", [4]string{"28P01", "28P01", "28P01", "28P01"}},
		{"wrong key", wrongKeyToken(t), [4]string{"28P01", "28P01", "28P01", "28P01"}},
		{"expired", e.expiredToken(), [4]string{"28P01", "28P01", "28P01", "28P01"}},
		{"tenant A on B", e.token(auth.ScopeTenant, tenantA), [4]string{"28000", "28000", "28000", "28000"}},
		{"tenant B on B", e.token(auth.ScopeTenant, tenantB), [4]string{ok, ok, "28000", ok}},
		{"pageserverapi", e.token(auth.ScopePageserverAPI, ""), [4]string{ok, ok, ok, ok}},
		{"safekeeperdata", e.token(auth.ScopeSafekeeperData, ""), [4]string{"28000", "28000", "28000", "28000"}},
	}
	for _, row := range rows {
		for i, command := range commands {
			t.Run(row.name+"/"+command, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := e.runCommand(ctx, row.password, command)
				if row.want[i] == ok {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				require.Equal(t, row.want[i], pgCode(err), "error: %v", err)
			})
		}
	}
}

// TestTokenForwarded: pgproxy forwards the client's token, and the
// pageserver checks it again. With pgproxy in trust mode (every client is
// pageserverapi to pgproxy) and no service token, a jwt pageserver refuses
// the call, and the client sees 28P01 from upstream.
func TestTokenForwarded(t *testing.T) {
	e := startEnv(t, envOptions{proxyMode: auth.ModeTrust})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.runCommand(ctx, "", "tenant_create")
	require.Equal(t, "28P01", pgCode(err), "error: %v", err)
	require.ErrorContains(t, err, "pageserver")

	// A pageserver in trust mode accepts the same call.
	e2 := startEnv(t, envOptions{proxyMode: auth.ModeTrust, fakeMode: auth.ModeTrust})
	require.NoError(t, e2.runCommand(ctx, "", "tenant_create"))
}

// TestServiceToken: in trust mode pgproxy presents its own token, read
// from STRATA_PGPROXY_TOKEN, to a jwt pageserver.
func TestServiceToken(t *testing.T) {
	e := startEnv(t, envOptions{proxyMode: auth.ModeTrust, serviceScope: auth.ScopePageserverAPI})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.runCommand(ctx, "", "tenant_create"))
	require.NoError(t, e.runCommand(ctx, "", "pagestream"))
}
