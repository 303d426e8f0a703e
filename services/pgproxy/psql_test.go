package pgproxy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/auth"
)

// TestPsqlCommands drives pgproxy with the real psql: every management
// command prints a table.
func TestPsqlCommands(t *testing.T) {
	e := startEnv(t, envOptions{})
	admin := e.token(auth.ScopePageserverAPI, "")
	tenantTok := e.token(auth.ScopeTenant, tenantA)
	newTenant := "cccccccccccccccccccccccccccccccc"
	newTimeline := "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"

	for _, tc := range []struct {
		name    string
		token   string
		command string
		want    []string
	}{
		{"tenant_list", admin, "tenant_list", []string{"tenant_id", "state", tenantA, tenantB, "active", "(2 rows)"}},
		{"tenant_create", admin, "tenant_create " + newTenant, []string{"tenant_id", newTenant, "(1 row)"}},
		{"tenant_create auto", admin, "tenant_create", []string{"tenant_id", "active", "(1 row)"}},
		{"branch_create", tenantTok, "branch_create " + tenantA + " " + newTimeline + " " + timelineA + " 0/1000000",
			[]string{"timeline_id", newTimeline, timelineA, "0/1000000", "(1 row)"}},
		{"branch_create auto latest", tenantTok, "branch_create " + tenantA + " auto " + timelineA + " latest",
			[]string{"ancestor_timeline_id", timelineA, "0/2000000", "(1 row)"}},
		{"timeline_list", tenantTok, "timeline_list " + tenantA, []string{"timeline_id", timelineA, newTimeline, "0/2000000"}},
		{"identify_system", tenantTok, "identify_system", []string{"systemid", "xlogpos", "Strata pgproxy", "tenant", tenantA, "(1 row)"}},
		{"identify_system timeline", tenantTok, "identify_system " + tenantA + " " + timelineA, []string{"0/2000000", "(1 row)"}},
		{"set", tenantTok, "SET datestyle TO 'ISO'", []string{"SET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.psql(tc.token, tc.command)
			require.NoError(t, err, out)
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			command, want string
		}{
			{"tenant_list", "not allowed to use management operations"},
			{"frobnicate", "unsupported command"},
			{"timeline_list xyz", "is not 32 lowercase hexadecimal"},
			{"branch_create " + tenantA + " auto " + timelineA + " 0/9000000", "beyond the ancestor"},
		} {
			out, err := e.psql(tenantTok, tc.command, "-v", "VERBOSITY=verbose")
			require.Error(t, err, out)
			require.Contains(t, out, tc.want)
		}
	})
}

// TestPsqlFullbackupToFile checks `psql -c "fullbackup ..." -o file.tar`:
// psql writes COPY OUT data to the -o file.
func TestPsqlFullbackupToFile(t *testing.T) {
	e := startEnv(t, envOptions{})
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for _, f := range []struct{ name, body string }{
		{"PG_VERSION", "15\n"},
		{"global/pg_control", strings.Repeat("\x01", 8192)},
		{"base/1/1259", strings.Repeat("\x02", 3*8192)},
	} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(f.body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	// Several upstream chunks (64 KiB each), hence several CopyData.
	for archive.Len() < 300<<10 {
		archive.Write(make([]byte, 512)) // trailing zero blocks: valid tar padding
	}
	backup := archive.Bytes()
	e.fake.SetBackup(backup)

	out := filepath.Join(t.TempDir(), "x.tar")
	msg, err := e.psql(e.token(auth.ScopeTenant, tenantA), "fullbackup "+tenantA+" "+timelineA, "-q", "-o", out)
	require.NoError(t, err, msg)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	// psql -q writes exactly the COPY data: the archive, byte for byte.
	require.Equal(t, backup, got)

	tr := tar.NewReader(bytes.NewReader(got))
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	require.Equal(t, []string{"PG_VERSION", "global/pg_control", "base/1/1259"}, names)

	// Without -q too: psql 15 prints no status line for a COPY OUT result,
	// so the file holds only the archive.
	out2 := filepath.Join(t.TempDir(), "y.tar")
	msg, err = e.psql(e.token(auth.ScopeTenant, tenantA), "fullbackup "+tenantA+" "+timelineA, "-o", out2)
	require.NoError(t, err, msg)
	got2, err := os.ReadFile(out2)
	require.NoError(t, err)
	require.Equal(t, backup, got2)

	// basebackup --gzip: the same bytes, gzip-compressed by the pageserver.
	out3 := filepath.Join(t.TempDir(), "z.tar.gz")
	msg, err = e.psql(e.token(auth.ScopeTenant, tenantA), "basebackup "+tenantA+" "+timelineA+" latest --gzip", "-o", out3)
	require.NoError(t, err, msg)
	f, err := os.Open(out3)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, backup, unzipped)
}

func TestPsqlShowsTable(t *testing.T) {
	e := startEnv(t, envOptions{})
	out, err := e.psql(e.token(auth.ScopePageserverAPI, ""), "tenant_list")
	require.NoError(t, err)
	t.Log("\n" + out)
	out, err = e.psql(e.token(auth.ScopeTenant, tenantA), "timeline_list "+tenantA)
	require.NoError(t, err)
	t.Log("\n" + out)
}
