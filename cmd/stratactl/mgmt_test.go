package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/localstack"
	bridgepb "github.com/stratadb/strata/proto/gen/strata/bridge/v1"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
)

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fakeStack struct {
	dir    string
	stack  *localstack.Stack
	ps     *fakePageserver
	bridge *fakeBridge
}

// newFakeStack inits a stack with the CLI and serves fakes of the
// pageserver and the bridge on its addresses, with its key.
func newFakeStack(t *testing.T) *fakeStack {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "stack")
	r := run(t, "", "init", "--dir", dir, "--walredo-extension", filepath.Join(dir, "none.so"))
	require.Equal(t, exitOK, r.code, r.stderr)
	stack, err := localstack.Open(dir)
	require.NoError(t, err)
	fs := &fakeStack{dir: dir, stack: stack, ps: newFakePageserver(), bridge: &fakeBridge{}}
	psAddrs, err := stack.Addrs("pageserver")
	require.NoError(t, err)
	serveFake(t, stack, psAddrs.ListenAddr, func(s *grpc.Server) {
		pb.RegisterManagementServiceServer(s, fs.ps)
		pb.RegisterPageServiceServer(s, fs.ps)
	})
	brAddrs, err := stack.Addrs("safekeeper-bridge")
	require.NoError(t, err)
	serveFake(t, stack, brAddrs.ListenAddr, func(s *grpc.Server) { bridgepb.RegisterBridgeServiceServer(s, fs.bridge) })
	return fs
}

// ctl runs a management command against the fake stack.
func (fs *fakeStack) ctl(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, "", append(args, "--stack-dir", fs.dir)...)
}

func TestTenantCommands(t *testing.T) {
	fs := newFakeStack(t)

	r := fs.ctl(t, "tenant", "create", "--id", tenantA)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, tenantA+"\n", r.stdout)

	r = fs.ctl(t, "tenant", "create", "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var created tenantView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &created))
	require.True(t, auth.IsTenantID(created.TenantID), created.TenantID)
	require.Equal(t, "active", created.State)

	r = fs.ctl(t, "tenant", "list")
	require.Equal(t, exitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^TENANT_ID\s+STATE\s+TIMELINES\s+CREATED$`, lines[0])
	require.Contains(t, r.stdout, tenantA+"  active  0          2026-01-02T03:04:05Z")

	r = fs.ctl(t, "tenant", "list", "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var list []tenantView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	require.Len(t, list, 2)

	r = fs.ctl(t, "tenant", "show", tenantA)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "tenant_id:  "+tenantA+"\n")
	require.Contains(t, r.stdout, "created_at: 2026-01-02T03:04:05Z\n")

	r = fs.ctl(t, "tenant", "delete", tenantA)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "deleted tenant "+tenantA+"\n", r.stdout)

	r = fs.ctl(t, "tenant", "show", tenantA)
	require.Equal(t, exitNotFound, r.code, r.stderr)
	require.Contains(t, r.stderr, "not found: tenant "+tenantA+" not found")

	r = fs.ctl(t, "tenant", "create", "--id", created.TenantID)
	require.Equal(t, exitRuntime, r.code)
	require.Contains(t, r.stderr, "already exists")
}

func TestTimelineCommands(t *testing.T) {
	fs := newFakeStack(t)
	require.Equal(t, exitOK, fs.ctl(t, "tenant", "create", "--id", tenantA).code)

	const main, b1, b2, b11 = "11111111111111111111111111111111", "22222222222222222222222222222222", "33333333333333333333333333333333", "44444444444444444444444444444444"
	r := fs.ctl(t, "timeline", "create", "--tenant", tenantA, "--id", main)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "created timeline "+main+" (at 0/3000060)\n", r.stdout)

	r = fs.ctl(t, "timeline", "branch", "--tenant", tenantA, "--from", main, "--lsn", "0/1500000", "--id", b1)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "created timeline "+b1+" (branch of "+main+" at 0/1500000)\n", r.stdout)
	r = fs.ctl(t, "timeline", "branch", "--tenant", tenantA, "--from", b1, "--id", b11, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var v timelineView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.Equal(t, b1, v.AncestorTimelineID)
	require.Equal(t, "0/1500000", v.AncestorLSN, "latest is the ancestor's last_record_lsn")
	t.Setenv(envTenant, tenantA) // --tenant from the environment
	r = fs.ctl(t, "timeline", "branch", "--from", main, "--lsn", "latest", "--id", b2)
	require.Equal(t, exitOK, r.code, r.stderr)

	r = fs.ctl(t, "timeline", "list")
	require.Equal(t, exitOK, r.code, r.stderr)
	want := []string{
		`TIMELINE\s+BRANCH_POINT\s+LAST_RECORD_LSN\s+DISK_CONSISTENT_LSN\s+STATE`,
		main + `\s+-\s+0/3000060\s+0/2000000\s+active`,
		`├─ ` + b1 + `\s+0/1500000\s+0/1500000\s+0/1500000\s+active`,
		`│  └─ ` + b11 + `\s+0/1500000\s+`,
		`└─ ` + b2 + `\s+0/3000060\s+`,
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	require.Len(t, lines, len(want), r.stdout)
	for i, w := range want {
		require.Regexp(t, "^"+w, lines[i])
	}
	// Columns line up although the tree prefixes are multi-byte.
	require.Equal(t, strings.Index(lines[1], "-"), len([]rune(lines[2][:strings.Index(lines[2], "0/1500000")])), r.stdout)

	r = fs.ctl(t, "timeline", "list", "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var views []timelineView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &views))
	var order []string
	for _, v := range views {
		order = append(order, v.TimelineID)
	}
	require.Equal(t, []string{main, b1, b11, b2}, order, "depth-first tree order")
	require.Empty(t, views[0].AncestorLSN)

	r = fs.ctl(t, "timeline", "show", b1)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "ancestor:              "+main+" @ 0/1500000\n")
	require.Contains(t, r.stdout, "last_record_lsn:       0/1500000\n")

	r = fs.ctl(t, "timeline", "delete", b1)
	require.Equal(t, exitRuntime, r.code)
	require.Contains(t, r.stderr, "has branches")
	r = fs.ctl(t, "timeline", "delete", b11)
	require.Equal(t, exitOK, r.code, r.stderr)
	r = fs.ctl(t, "timeline", "show", b11)
	require.Equal(t, exitNotFound, r.code)

	r = fs.ctl(t, "timeline", "branch", "--from", main, "--lsn", "9/0")
	require.Equal(t, exitRuntime, r.code)
	require.Contains(t, r.stderr, "beyond the ancestor's last_record_lsn")
}

func TestManagementUsageErrors(t *testing.T) {
	fs := newFakeStack(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"show without id", []string{"tenant", "show"}, "takes one tenant id"},
		{"bad tenant id", []string{"tenant", "show", "XYZ"}, `--tenant "XYZ" is not an id`},
		{"list without tenant", []string{"timeline", "list"}, "--tenant is required"},
		{"branch without from", []string{"timeline", "branch", "--tenant", tenantA}, "--from is required"},
		{"branch bad lsn", []string{"timeline", "branch", "--tenant", tenantA, "--from", tenantA, "--lsn", "yesterday"}, `--lsn "yesterday"`},
		{"fullbackup without file", []string{"fullbackup", "--tenant", tenantA, "--timeline", tenantA}, "-o FILE.tar"},
		{"fullbackup two files", []string{"fullbackup", "--tenant", tenantA, "--timeline", tenantA, "-o", "a.tar", "--file", "b.tar"}, "give the tar file once"},
		{"boot without port", []string{"boot", "--tenant", tenantA, "--timeline", tenantA, "--dir", "x"}, "--port 0"},
		{"attach without primary", []string{"attach"}, "--primary is required"},
		{"attach empty env", []string{"attach", "--primary", "env:STRATA_TEST_SURELY_UNSET"}, "is empty or unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fs.ctl(t, tc.args...)
			require.Equal(t, exitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.want)
		})
	}
}

func TestLogsUnknownService(t *testing.T) {
	r := run(t, "", "logs", "postgres")
	require.Equal(t, exitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, `unknown service "postgres"`)
}

func TestManagementConnectionErrors(t *testing.T) {
	t.Run("no stack", func(t *testing.T) {
		r := run(t, "", "tenant", "list", "--stack-dir", filepath.Join(t.TempDir(), "nothing"))
		require.Equal(t, exitRuntime, r.code)
		require.Contains(t, r.stderr, "run `stratactl init`")
	})
	t.Run("stack not running", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "s")
		require.Equal(t, exitOK, run(t, "", "init", "--dir", dir, "--walredo-extension", "/x.so").code)
		r := run(t, "", "tenant", "list", "--stack-dir", dir, "--timeout", "5s")
		require.Equal(t, exitRuntime, r.code)
		require.Contains(t, r.stderr, "cannot reach the pageserver at 127.0.0.1:")
		require.Contains(t, r.stderr, "is the stack running? try `stratactl status`")
	})
	t.Run("bad token", func(t *testing.T) {
		fs := newFakeStack(t)
		other := t.TempDir()
		priv, _, err := auth.GenerateKeyPair(other)
		require.NoError(t, err)
		key, err := auth.LoadPrivateKey(priv)
		require.NoError(t, err)
		tok, err := auth.Issue(key, &auth.Claims{Scope: auth.ScopePageserverAPI})
		require.NoError(t, err)
		t.Setenv(envToken, tok)
		r := fs.ctl(t, "tenant", "list")
		require.Equal(t, exitRuntime, r.code)
		require.Contains(t, r.stderr, "the pageserver refused the token")
		require.NotContains(t, r.stderr, tok)
	})
	t.Run("tenant token", func(t *testing.T) {
		fs := newFakeStack(t)
		key, err := auth.LoadPrivateKey(fs.stack.PrivateKeyPath())
		require.NoError(t, err)
		tok, err := auth.Issue(key, &auth.Claims{Scope: auth.ScopeTenant, TenantID: tenantA})
		require.NoError(t, err)
		file := filepath.Join(t.TempDir(), "tok")
		require.NoError(t, os.WriteFile(file, []byte(tok), 0o600))
		t.Setenv(envTokenFile, file)
		r := fs.ctl(t, "tenant", "create")
		require.Equal(t, exitRuntime, r.code)
		require.Contains(t, r.stderr, "permission denied")
	})
	t.Run("explicit address", func(t *testing.T) {
		fs := newFakeStack(t)
		a, err := fs.stack.Addrs("pageserver")
		require.NoError(t, err)
		// --pageserver wins over the stack; the token still comes from it.
		r := fs.ctl(t, "tenant", "list", "--pageserver", a.ListenAddr)
		require.Equal(t, exitOK, r.code, r.stderr)
		r = fs.ctl(t, "tenant", "list", "--pageserver", "127.0.0.1:1", "--timeout", "3s")
		require.Equal(t, exitRuntime, r.code)
		require.Contains(t, r.stderr, "127.0.0.1:1")
	})
}

// tarOf builds a tar with the given files (and their parent directories).
func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "global/", Typeflag: tar.TypeDir, Mode: 0o700}))
	for name, body := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(body))}))
		_, err := tw.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func TestFullbackup(t *testing.T) {
	fs := newFakeStack(t)
	const tl = "11111111111111111111111111111111"
	require.Equal(t, exitOK, fs.ctl(t, "tenant", "create", "--id", tenantA).code)
	require.Equal(t, exitOK, fs.ctl(t, "timeline", "create", "--tenant", tenantA, "--id", tl).code)
	fs.ps.backup = tarOf(t, map[string]string{"PG_VERSION": "15\n", "global/big": strings.Repeat("x", 300<<10)})
	fs.ps.backupLSN = 0x16B3748

	out := filepath.Join(t.TempDir(), "backup.tar")
	r := fs.ctl(t, "fullbackup", "--tenant", tenantA, "--timeline", tl, "--lsn", "0/16B3748", "-o", out)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "wrote "+out)
	require.Contains(t, r.stdout, "at LSN 0/16B3748\n")
	require.Empty(t, r.stderr, "no progress bar when stderr is not a terminal")
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, fs.ps.backup, got)
	require.True(t, fs.ps.lastBackupReq.GetFull())
	require.Equal(t, uint64(0x16B3748), fs.ps.lastBackupReq.GetLsn())
	entries, err := os.ReadDir(filepath.Dir(out))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no partial file left behind")

	out2 := filepath.Join(t.TempDir(), "b.tar")
	r = fs.ctl(t, "fullbackup", "--tenant", tenantA, "--timeline", tl, "--file", out2, "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var v struct {
		File  string `json:"file"`
		Bytes int64  `json:"bytes"`
		LSN   string `json:"lsn"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.Equal(t, out2, v.File)
	require.Equal(t, int64(len(fs.ps.backup)), v.Bytes)
	require.Equal(t, uint64(0), fs.ps.lastBackupReq.GetLsn(), "no --lsn means latest")

	r = fs.ctl(t, "fullbackup", "--tenant", tenantA, "--timeline", tl, "-o", "-")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, string(fs.ps.backup), r.stdout)

	missing := filepath.Join(t.TempDir(), "m.tar")
	r = fs.ctl(t, "fullbackup", "--tenant", tenantA, "--timeline", strings.Repeat("9", 32), "-o", missing)
	require.Equal(t, exitNotFound, r.code, r.stderr)
	require.NoFileExists(t, missing)
}

func TestAttach(t *testing.T) {
	fs := newFakeStack(t)
	t.Setenv("PRIMARY_CONN", "host=127.0.0.1 port=5432 user=replicator password=secret")
	r := fs.ctl(t, "attach", "--primary", "env:PRIMARY_CONN", "-o", "json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var v attachView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.True(t, v.TenantCreated)
	require.True(t, auth.IsTenantID(v.TenantID))
	require.True(t, auth.IsTenantID(v.TimelineID))
	require.Equal(t, "streaming", v.State)
	require.Equal(t, "0/3000100", v.LastRecordLSN)
	require.Len(t, fs.bridge.attaches, 1)
	req := fs.bridge.attaches[0]
	require.True(t, req.GetImport())
	require.Equal(t, "host=127.0.0.1 port=5432 user=replicator password=secret", req.GetPrimaryConninfo())
	require.Equal(t, v.TenantID, req.GetTenantId())
	require.NotNil(t, fs.ps.tenants[v.TenantID], "the tenant was created on the pageserver")

	r = fs.ctl(t, "attach", "--primary", "host=h", "--tenant", tenantA, "--slot", "myslot")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "attached: tenant "+tenantA+" timeline ")
	require.Equal(t, "myslot", fs.bridge.attaches[1].GetSlotName())
	require.Nil(t, fs.ps.tenants[tenantA], "an existing tenant is not created")
}
