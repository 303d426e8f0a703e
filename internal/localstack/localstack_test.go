package localstack

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/config"
	"github.com/stratadb/strata/internal/pgtypes"
	"github.com/stratadb/strata/services/pageserver"
	"github.com/stratadb/strata/services/pgproxy"
	bridge "github.com/stratadb/strata/services/safekeeper-bridge"
	"github.com/stratadb/strata/services/walredo"
)

func TestInitWritesValidConfigs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stack")
	ext := filepath.Join(t.TempDir(), "strata_walredo.so")
	require.NoError(t, os.WriteFile(ext, nil, 0o644))
	res, err := Init(InitOptions{Dir: dir, WalredoExtension: ext, PGBinDir: "/usr/lib/postgresql/15/bin"})
	require.NoError(t, err)
	require.True(t, res.ExtensionFound)
	s := res.Stack

	// Each service decodes its file strictly (unknown keys are errors) on
	// top of its defaults, and validates.
	type loadable interface{ Validate() error }
	psCfg, wrCfg, brCfg, pxCfg := pageserver.DefaultConfig(), walredo.DefaultConfig(), bridge.DefaultConfig(), pgproxy.DefaultConfig()
	cfgs := map[string]loadable{"pageserver": &psCfg, "walredo": &wrCfg, "safekeeper-bridge": &brCfg, "pgproxy": &pxCfg}
	require.Len(t, cfgs, len(Services))
	for name, cfg := range cfgs {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, config.DecodeFile(s.ConfigPath(name), cfg))
			require.NoError(t, cfg.Validate())
			fi, err := os.Stat(s.ConfigPath(name))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		})
	}
	for _, c := range []struct{ mode, key string }{
		{psCfg.AuthMode, psCfg.AuthPublicKeyPath}, {wrCfg.AuthMode, wrCfg.AuthPublicKeyPath},
		{brCfg.AuthMode, brCfg.AuthPublicKeyPath}, {pxCfg.AuthMode, pxCfg.AuthPublicKeyPath},
	} {
		require.Equal(t, "jwt", c.mode)
		require.Equal(t, s.PublicKeyPath(), c.key)
	}
	require.Equal(t, psCfg.ListenAddr, brCfg.PageserverAddr)
	require.Equal(t, psCfg.ListenAddr, pxCfg.PageserverAddr)
	require.Equal(t, ext, wrCfg.ExtensionPath)
	require.Equal(t, "/usr/lib/postgresql/15/bin", wrCfg.PGBinDir)
	require.Equal(t, s.DataDir("pageserver"), psCfg.WorkDir)
	require.Equal(t, "grpc", psCfg.WalredoMode)
	require.Equal(t, wrCfg.ListenAddr, psCfg.WalredoAddr)
	require.Equal(t, ext, psCfg.WalredoExtensionPath)
	require.Equal(t, s.DataDir("safekeeper-bridge"), brCfg.SpoolDir)

	// Eight distinct loopback ports, none a default.
	seen := map[string]bool{}
	for _, svc := range Services {
		a, err := s.Addrs(svc.Name)
		require.NoError(t, err)
		require.Equal(t, res.Addrs[svc.Name], a)
		for _, addr := range []string{a.ListenAddr, a.MetricsAddr} {
			require.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)
			require.False(t, seen[addr], addr)
			seen[addr] = true
		}
	}
	require.NotEqual(t, pageserver.DefaultListenAddr, psCfg.ListenAddr)

	// Tokens: 0600, verify with the stack's key, carry their scope.
	keys, err := auth.LoadPublicKeys(s.PublicKeyPath())
	require.NoError(t, err)
	v, err := auth.NewVerifier(keys)
	require.NoError(t, err)
	for _, sc := range []auth.Scope{auth.ScopePageserverAPI, auth.ScopeSafekeeperData} {
		fi, err := os.Stat(s.TokenPath(sc))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		tok, err := s.Token(sc)
		require.NoError(t, err)
		claims, err := v.Verify(tok)
		require.NoError(t, err)
		require.Equal(t, sc, claims.Scope)
	}
	fi, err := os.Stat(s.PrivateKeyPath())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// The bridge is told where its token is; the direct variable is dropped.
	t.Setenv("STRATA_BRIDGE_TOKEN", "stale")
	svc, err := LookupService("safekeeper-bridge")
	require.NoError(t, err)
	env := strings.Join(s.serviceEnv(svc), "\n")
	require.Contains(t, env, "STRATA_BRIDGE_TOKEN_FILE="+s.TokenPath(auth.ScopeSafekeeperData))
	require.NotContains(t, env, "STRATA_BRIDGE_TOKEN=stale")

	_, err = Init(InitOptions{Dir: dir, WalredoExtension: ext})
	require.ErrorIs(t, err, ErrExists)
	opened, err := Open(dir)
	require.NoError(t, err)
	require.Equal(t, s.Dir, opened.Dir)
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "none"))
	require.ErrorIs(t, err, ErrNotInitialized)
	require.ErrorContains(t, err, "stratactl init")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stack.toml"), []byte("format_version = 99\n"), 0o600))
	_, err = Open(dir)
	require.ErrorIs(t, err, ErrUnsupportedFormat)
}

func TestStatusOfStoppedAndStaleStack(t *testing.T) {
	res, err := Init(InitOptions{Dir: filepath.Join(t.TempDir(), "s"), WalredoExtension: "/none.so", Now: time.Unix(1, 0)})
	require.NoError(t, err)
	s := res.Stack
	for _, st := range s.Status(t.Context()) {
		require.Equal(t, StateStopped, st.State, st.Name)
		require.False(t, st.Up())
	}
	// A pid file naming a process that is not the service: our own pid
	// (alive, but not a pageserver) and a pid that does not exist.
	require.NoError(t, os.WriteFile(s.PIDPath("pageserver"), []byte("1999999999\n"), 0o600))
	require.NoError(t, os.WriteFile(s.PIDPath("walredo"), []byte(strings.Repeat("1", 1)+"\n"), 0o600))
	require.NoError(t, os.WriteFile(s.PIDPath("pgproxy"), []byte("garbage"), 0o600))
	byName := map[string]ServiceStatus{}
	for _, st := range s.Status(t.Context()) {
		byName[st.Name] = st
	}
	require.Equal(t, StateDead, byName["pageserver"].State)
	require.Contains(t, byName["pageserver"].Detail, "killed or crashed")
	require.Equal(t, StateDead, byName["walredo"].State, "pid 1 is not walredo")
	require.Equal(t, StateDead, byName["pgproxy"].State)
	require.Contains(t, byName["pgproxy"].Detail, "corrupt")

	out, err := s.Stop(t.Context(), time.Second)
	require.Error(t, err, "the corrupt pid file is reported")
	require.Len(t, out, len(Services))
	require.NoFileExists(t, s.PIDPath("pageserver"))
	require.NoFileExists(t, s.PIDPath("walredo"), "a pid file naming another program is stale")
}

func TestFindBinary(t *testing.T) {
	dir := t.TempDir()
	_, err := FindBinary("pageserver", dir)
	require.ErrorIs(t, err, ErrBinaryNotFound)
	require.ErrorContains(t, err, "make build")
	p := filepath.Join(dir, "pageserver")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
	got, err := FindBinary("pageserver", dir)
	require.NoError(t, err)
	require.Equal(t, p, got)

	t.Setenv("PATH", dir)
	got, err = FindBinary("pageserver", "")
	require.NoError(t, err)
	require.Equal(t, p, got)
	_, err = FindBinary("walredo", "")
	require.ErrorIs(t, err, ErrBinaryNotFound)
}

func TestLookupService(t *testing.T) {
	_, err := LookupService("postgres")
	require.ErrorIs(t, err, ErrUnknownService)
	svc, err := LookupService("pgproxy")
	require.NoError(t, err)
	require.Equal(t, HealthTCP, svc.Health)
}

func TestLogs(t *testing.T) {
	res, err := Init(InitOptions{Dir: filepath.Join(t.TempDir(), "s"), WalredoExtension: "/none.so"})
	require.NoError(t, err)
	s := res.Stack
	var buf bytes.Buffer
	require.ErrorContains(t, s.Logs(t.Context(), "pageserver", &buf, false), "ever been started")
	require.NoError(t, os.WriteFile(s.LogPath("pageserver"), []byte("line 1\n"), 0o600))
	require.NoError(t, s.Logs(t.Context(), "pageserver", &buf, false))
	require.Equal(t, "line 1\n", buf.String())
	require.ErrorIs(t, s.Logs(t.Context(), "nope", &buf, false), ErrUnknownService)
}

func TestSafeMemberPath(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"PG_VERSION", "PG_VERSION", true},
		{"./base/1/1259", "base/1/1259", true},
		{"./", "", true},
		{"global/", "global", true},
		{"a/../b", "b", true},
		{"../etc/passwd", "", false},
		{"a/../../x", "", false},
		{"/etc/passwd", "", false},
		{"", "", false},
		{"a\x00b", "", false},
		{`..\x`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := safeMemberPath(tc.name)
			if !tc.ok {
				require.ErrorIs(t, err, ErrBoot)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzSafeMemberPath(f *testing.F) {
	for _, s := range []string{"base/1/1259", "../x", "/abs", "a/./b/../../..", "", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := safeMemberPath(name)
		if err != nil {
			return
		}
		// Whatever is accepted stays inside the directory.
		root := "/root/of/extraction"
		joined := filepath.Join(root, filepath.FromSlash(got))
		if joined != root && !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("%q escapes as %q", name, joined)
		}
	})
}

type tarEntry struct {
	name string
	typ  byte
	body string
}

func makeTar(t testing.TB, entries []tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeSymlink {
			h.Linkname, h.Size = "/etc", 0
		}
		if e.typ == tar.TypeDir {
			h.Size = 0
		}
		require.NoError(t, tw.WriteHeader(h))
		if h.Size > 0 {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func TestUntar(t *testing.T) {
	good := makeTar(t, []tarEntry{{"./", tar.TypeDir, ""}, {"base/", tar.TypeDir, ""}, {"base/1/1259", tar.TypeReg, "page"}, {"PG_VERSION", tar.TypeReg, "15\n"}})
	dir := filepath.Join(t.TempDir(), "data")
	n, err := Untar(bytes.NewReader(good), dir)
	require.NoError(t, err)
	require.Equal(t, int64(7), n)
	data, err := os.ReadFile(filepath.Join(dir, "base/1/1259"))
	require.NoError(t, err)
	require.Equal(t, "page", string(data))
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "base"): 0o700, filepath.Join(dir, "base/1"): 0o700, filepath.Join(dir, "PG_VERSION"): 0o600} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, want, fi.Mode().Perm(), p)
	}

	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"traversal", []tarEntry{{"../evil", tar.TypeReg, "x"}}, "outside the directory"},
		{"absolute", []tarEntry{{"/tmp/evil", tar.TypeReg, "x"}}, "absolute path"},
		{"symlink", []tarEntry{{"pg_tblspc/1", tar.TypeSymlink, ""}}, "only directories and files"},
		{"duplicate", []tarEntry{{"a", tar.TypeReg, "x"}, {"a", tar.TypeReg, "y"}}, "exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Untar(bytes.NewReader(makeTar(t, tc.entries)), filepath.Join(t.TempDir(), "d"))
			require.ErrorIs(t, err, ErrBoot)
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err = Untar(bytes.NewReader(good), dir)
	require.ErrorContains(t, err, "not empty")
	_, err = Untar(strings.NewReader("not a tar at all, but long enough to be read as a header block"), filepath.Join(t.TempDir(), "d"))
	require.ErrorIs(t, err, ErrBoot)
}

// authidPage builds a heap page holding tuples (oid, name, xmax).
func authidPage(tuples ...struct {
	oid  uint32
	name string
	xmax uint32
}) []byte {
	page := make([]byte, pgtypes.BLCKSZ)
	le := binary.LittleEndian
	lower, upper := pgtypes.PageHeaderSize, pgtypes.BLCKSZ
	for _, tu := range tuples {
		const hoff = 24
		tup := make([]byte, hoff+4+nameDataLen+8)
		le.PutUint32(tup[4:], tu.xmax)
		tup[22] = hoff
		le.PutUint32(tup[hoff:], tu.oid)
		copy(tup[hoff+4:], tu.name)
		upper -= len(tup)
		copy(page[upper:], tup)
		le.PutUint32(page[lower:], uint32(upper)|1<<15|uint32(len(tup))<<17)
		lower += 4
	}
	le.PutUint16(page[12:], uint16(lower))
	le.PutUint16(page[14:], uint16(upper))
	le.PutUint16(page[16:], pgtypes.BLCKSZ)
	le.PutUint16(page[18:], pgtypes.PageSizeVersion)
	return page
}

type authTuple = struct {
	oid  uint32
	name string
	xmax uint32
}

func TestFindRoleName(t *testing.T) {
	page := authidPage(authTuple{10, "old_name", 741}, authTuple{3373, "pg_monitor", 0}, authTuple{10, "postgres", 0})
	require.Equal(t, "postgres", findRoleName(page, 10), "the live version wins over the renamed one")
	require.Equal(t, "pg_monitor", findRoleName(page, 3373))
	require.Equal(t, "", findRoleName(page, 99))
	require.Equal(t, "old_name", findRoleName(authidPage(authTuple{10, "old_name", 741}), 10))
	two := append(make([]byte, pgtypes.BLCKSZ), page...) // a new (zero) page first
	require.Equal(t, "postgres", findRoleName(two, 10))
	require.Equal(t, "", findRoleName(page[:100], 10))
}

func FuzzFindRoleName(f *testing.F) {
	f.Add(authidPage(authTuple{10, "postgres", 0}))
	f.Add(authidPage())
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < pgtypes.BLCKSZ {
			data = append(data, make([]byte, pgtypes.BLCKSZ-len(data))...)
		}
		_ = findRoleName(data, 10) // must not panic on any page
	})
}

func TestStopPostgresMissingDir(t *testing.T) {
	err := StopPostgres(t.Context(), filepath.Join(t.TempDir(), "none"), "")
	require.Error(t, err)
	require.True(t, errors.Is(err, ErrBoot))
}
