package tenant

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/services/pageserver/timeline/metadata"
)

// BenchmarkBaselineDurableWrite is the floor under UpdateMetadata: one
// atomic 80-byte file replacement (two fsyncs and a rename).
func BenchmarkBaselineDurableWrite(b *testing.B) {
	dir := b.TempDir()
	buf := make([]byte, metadata.Size)
	for b.Loop() {
		if err := durable.WriteFile(filepath.Join(dir, "metadata"), buf, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateMetadata(b *testing.B) {
	r, err := Open(context.Background(), b.TempDir(), nil)
	require.NoError(b, err)
	tn, err := r.CreateTenant(context.Background(), ids.NewTenantID())
	require.NoError(b, err)
	tl, err := tn.CreateTimeline(context.Background(), tid(1), rootMD("0/1000000"))
	require.NoError(b, err)
	for b.Loop() {
		if _, err := tl.UpdateMetadata(func(m *metadata.Metadata) { m.DiskConsistentLSN += 8 }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineMkdirWriteRename is the floor under branch creation:
// mkdir, atomic metadata write, rename, fsync of the parent.
func BenchmarkBaselineMkdirWriteRename(b *testing.B) {
	dir := b.TempDir()
	buf := make([]byte, metadata.Size)
	i := 0
	for b.Loop() {
		i++
		tmp := filepath.Join(dir, fmt.Sprintf(".tmp-%d", i))
		if err := os.Mkdir(tmp, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := durable.WriteFile(filepath.Join(tmp, "metadata"), buf, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
		if err := durable.SyncDir(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateBranch measures branch creation (metadata only, no data
// copied); design target (issue #5): flat and under 5 ms.
func BenchmarkCreateBranch(b *testing.B) {
	r, err := Open(context.Background(), b.TempDir(), nil)
	require.NoError(b, err)
	tn, err := r.CreateTenant(context.Background(), ids.NewTenantID())
	require.NoError(b, err)
	_, err = tn.CreateTimeline(context.Background(), tid(1), rootMD("0/1000000"))
	require.NoError(b, err)
	for b.Loop() {
		if _, err := tn.CreateTimeline(context.Background(), ids.NewTimelineID(), branchMD(tid(1), "0/1000000")); err != nil {
			b.Fatal(err)
		}
	}
}
