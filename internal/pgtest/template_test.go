package pgtest

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTemplateClustersAreDistinct checks that clusters copied from the
// template boot, get distinct system identifiers (in pg_control and in the
// WAL, or startup would have refused), and that FreshInitdb still works.
func TestTemplateClustersAreDistinct(t *testing.T) {
	t.Parallel()
	a := Start(t, Options{})
	b := Start(t, Options{})
	c := Start(t, Options{FreshInitdb: true})
	const q = "SELECT system_identifier FROM pg_control_system()"
	ids := map[string]bool{}
	for _, s := range []*Server{a, b, c} {
		id := s.Query(t, "postgres", q)
		_, err := strconv.ParseUint(id, 10, 64)
		require.NoError(t, err, id)
		ids[id] = true
		// The template itself is never started; only the copies are.
		s.Exec(t, "postgres", "CREATE TABLE x (v int); INSERT INTO x VALUES (1)")
	}
	require.Len(t, ids, 3, "system identifiers must differ: %v", ids)
	// Each copy is independent of the others.
	a.Exec(t, "postgres", "INSERT INTO x VALUES (2)")
	require.Equal(t, "1", b.Query(t, "postgres", "SELECT count(*) FROM x"))
}

func TestSetSystemIdentifier(t *testing.T) {
	const oldID, newID = uint64(7712168714569648973), uint64(0x0123456789ABCDEF)
	order := binary.NativeEndian
	tab := crc32.MakeTable(crc32.Castagnoli)
	control := func(id uint64) []byte {
		b := make([]byte, 8192)
		order.PutUint64(b, id)
		b[100] = 42 // some other field
		order.PutUint32(b[288:], crc32.Checksum(b[:288], tab))
		return b
	}
	segment := func(magic, info uint16, id uint64) []byte {
		b := make([]byte, 8192)
		order.PutUint16(b[0:], magic)
		order.PutUint16(b[2:], info)
		order.PutUint64(b[24:], id)
		b[40] = 7 // record data after the header
		return b
	}
	badCRC := control(oldID)
	badCRC[5] ^= 1
	for _, tc := range []struct {
		name    string
		control []byte
		segment []byte
		wantErr bool
	}{
		{name: "ok", control: control(oldID), segment: segment(0xD110, 0x0002, oldID)},
		{name: "bad control crc", control: badCRC, segment: segment(0xD110, 0x0002, oldID), wantErr: true},
		{name: "short control", control: control(oldID)[:100], segment: segment(0xD110, 0x0002, oldID), wantErr: true},
		{name: "wrong wal magic", control: control(oldID), segment: segment(0xD10D, 0x0002, oldID), wantErr: true},
		{name: "short header", control: control(oldID), segment: segment(0xD110, 0x0000, oldID), wantErr: true},
		{name: "other system", control: control(oldID), segment: segment(0xD110, 0x0002, 99), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "global"), 0o700))
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "pg_wal", "archive_status"), 0o700))
			controlPath := filepath.Join(dir, "global", "pg_control")
			segPath := filepath.Join(dir, "pg_wal", "000000010000000000000001")
			require.NoError(t, os.WriteFile(controlPath, tc.control, 0o600))
			require.NoError(t, os.WriteFile(segPath, tc.segment, 0o600))

			err := setSystemIdentifier(dir, newID)
			gotControl, _ := os.ReadFile(controlPath)
			gotSeg, _ := os.ReadFile(segPath)
			if tc.wantErr {
				require.Error(t, err)
				require.Equal(t, tc.control, gotControl, "pg_control must be untouched on error")
				return
			}
			require.NoError(t, err)
			require.Equal(t, newID, order.Uint64(gotControl))
			require.Equal(t, crc32.Checksum(gotControl[:288], tab), order.Uint32(gotControl[288:]))
			require.Equal(t, byte(42), gotControl[100])
			require.Equal(t, newID, order.Uint64(gotSeg[24:]))
			require.Equal(t, byte(7), gotSeg[40])
			require.Equal(t, uint16(0xD110), order.Uint16(gotSeg))
		})
	}
}

func TestCopyTree(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "a", "b"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("hello"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(src, "top"), nil, 0o640))
	dst := filepath.Join(t.TempDir(), "copy")
	require.NoError(t, copyTree(src, dst, osUser{}))
	b, err := os.ReadFile(filepath.Join(dst, "a", "b", "f"))
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	fi, err := os.Stat(filepath.Join(dst, "top"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())

	// Symlinks (e.g. initdb --waldir) are refused, not followed.
	require.NoError(t, os.Symlink("/etc", filepath.Join(src, "link")))
	require.Error(t, copyTree(src, filepath.Join(t.TempDir(), "copy2"), osUser{}))
}

func TestTemplateKey(t *testing.T) {
	u := osUser{name: "strata-pg"}
	k := templateKey("/bin", "postgres (PostgreSQL) 15.20", u, false)
	require.Len(t, k, 16)
	require.Equal(t, k, templateKey("/bin", "postgres (PostgreSQL) 15.20", u, false))
	require.NotEqual(t, k, templateKey("/bin", "postgres (PostgreSQL) 15.20", u, true))
	require.NotEqual(t, k, templateKey("/bin", "postgres (PostgreSQL) 15.21", u, false))
	require.NotEqual(t, k, templateKey("/bin", "postgres (PostgreSQL) 15.20", osUser{name: "other"}, false))
}
