package tenant

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/services/pageserver/timeline/metadata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, dir string) *Repository {
	t.Helper()
	r, err := Open(context.Background(), dir, nil)
	require.NoError(t, err)
	return r
}

func rootMD(start string) metadata.Metadata {
	l := lsn.MustParse(start)
	return metadata.Metadata{StartLSN: l, DiskConsistentLSN: l, PGVersion: 15}
}

func branchMD(anc ids.TimelineID, at string) metadata.Metadata {
	l := lsn.MustParse(at)
	return metadata.Metadata{AncestorTimeline: anc, AncestorLSN: l, StartLSN: l, DiskConsistentLSN: l, PGVersion: 15}
}

// tid makes readable, ordered timeline ids for tests.
func tid(n byte) ids.TimelineID {
	var id ids.TimelineID
	id[15] = n
	return id
}

// dirNames lists a directory's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// snapshot renders everything a Repository exposes, for state comparisons.
func snapshot(r *Repository) string {
	var b strings.Builder
	for _, tn := range r.ListTenants() {
		fmt.Fprintf(&b, "tenant %s %s\n", tn.ID(), tn.State())
		for _, tl := range tn.ListTimelines() {
			md := tl.Metadata()
			fmt.Fprintf(&b, "  timeline %s %s anc=%s@%s dcl=%s prev=%s start=%s gc=%s pg=%d at=%d\n",
				tl.ID(), tl.State(), md.AncestorTimeline, md.AncestorLSN, md.DiskConsistentLSN,
				md.PrevRecordLSN, md.StartLSN, md.LatestGCCutoffLSN, md.PGVersion, md.CreatedAt.UnixNano())
		}
	}
	return b.String()
}

func TestCreateTenantConcurrentSameID(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	id := ids.NewTenantID()
	const n = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = r.CreateTenant(context.Background(), id)
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		require.ErrorIs(t, err, ErrAlreadyExists)
		require.ErrorContains(t, err, id.String())
	}
	require.Equal(t, 1, ok)
	require.Equal(t, []string{id.String()}, dirNames(t, filepath.Join(dir, "tenants")), "no temp dir left")
	require.Equal(t, []string{"timelines"}, dirNames(t, filepath.Join(dir, "tenants", id.String())))
	tn, err := r.GetTenant(id)
	require.NoError(t, err)
	require.Equal(t, id, tn.ID())
}

func TestCreateTenantConcurrentDistinctIDs(t *testing.T) {
	r := open(t, t.TempDir())
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.CreateTenant(context.Background(), ids.NewTenantID())
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Len(t, r.ListTenants(), 16)
}

// TestRenameNoReplace shows why plain os.Rename is not enough: it would
// replace an empty directory at the target.
func TestRenameNoReplace(t *testing.T) {
	for name, rename := range map[string]func(string, string) error{
		"renameNoReplace":       renameNoReplace,
		"renameCheckThenRename": renameCheckThenRename,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			require.NoError(t, os.Mkdir(src, 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(src, "f"), nil, 0o600))
			require.NoError(t, os.Mkdir(dst, 0o700))
			err := rename(src, dst)
			require.ErrorIs(t, err, fs.ErrExist)
			require.Empty(t, dirNames(t, dst), "target untouched")
			require.Equal(t, []string{"f"}, dirNames(t, src))

			require.NoError(t, os.Remove(dst))
			require.NoError(t, rename(src, dst))
			require.Equal(t, []string{"f"}, dirNames(t, dst))
		})
	}
}

func TestCreateTenantErrors(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()

	_, err := r.CreateTenant(ctx, ids.TenantID{})
	require.ErrorIs(t, err, ErrInvalid)

	// A directory that appeared on disk behind the repository's back.
	id := ids.NewTenantID()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "tenants", id.String()), 0o700))
	_, err = r.CreateTenant(ctx, id)
	require.ErrorIs(t, err, ErrAlreadyExists)
	require.ErrorContains(t, err, "exists on disk")
	require.Equal(t, []string{id.String()}, dirNames(t, filepath.Join(dir, "tenants")), "temp dir removed")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = r.CreateTenant(cancelled, ids.NewTenantID())
	require.ErrorIs(t, err, context.Canceled)

	_, err = r.GetTenant(ids.NewTenantID())
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, r.DeleteTenant(ctx, ids.NewTenantID()), ErrNotFound)
}

func TestDeleteAndRecreateTenant(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	id := ids.NewTenantID()
	tn, err := r.CreateTenant(ctx, id)
	require.NoError(t, err)
	tl, err := tn.CreateTimeline(ctx, tid(1), rootMD("0/1000000"))
	require.NoError(t, err)

	require.NoError(t, r.DeleteTenant(ctx, id))
	require.Empty(t, dirNames(t, filepath.Join(dir, "tenants")))
	_, err = r.GetTenant(id)
	require.ErrorIs(t, err, ErrNotFound)
	// Handles held across the deletion fail cleanly.
	_, err = tl.UpdateMetadata(func(m *metadata.Metadata) { m.DiskConsistentLSN++ })
	require.ErrorIs(t, err, ErrNotFound)
	_, err = tn.CreateTimeline(ctx, tid(2), rootMD("0/1000000"))
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, tn.DeleteTimeline(ctx, tid(1)), ErrNotFound)

	tn2, err := r.CreateTenant(ctx, id)
	require.NoError(t, err)
	require.Empty(t, tn2.ListTimelines())
	_, err = tn2.CreateTimeline(ctx, tid(1), rootMD("0/2000000"))
	require.NoError(t, err)
	require.Empty(t, tn.ListTimelines(), "old handle sees nothing of the new tenant")

	r2 := open(t, dir)
	require.Equal(t, snapshot(r), snapshot(r2))
}

func TestBranching(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	tn, err := r.CreateTenant(ctx, ids.NewTenantID())
	require.NoError(t, err)
	other, err := r.CreateTenant(ctx, ids.NewTenantID())
	require.NoError(t, err)

	main := rootMD("0/1000000")
	main.LatestGCCutoffLSN = lsn.MustParse("0/1500000")
	_, err = tn.CreateTimeline(ctx, tid(9), main)
	require.NoError(t, err)
	_, err = other.CreateTimeline(ctx, tid(7), rootMD("0/1000000"))
	require.NoError(t, err)

	tests := []struct {
		name  string
		id    ids.TimelineID
		md    metadata.Metadata
		check BranchCheck
		want  error
		part  string
	}{
		{"missing ancestor", tid(3), branchMD(tid(4), "0/2000000"), nil, ErrNotFound, "ancestor timeline"},
		{"ancestor in another tenant", tid(3), branchMD(tid(7), "0/2000000"), nil, ErrNotFound, "ancestor timeline"},
		{"below GC cutoff", tid(3), branchMD(tid(9), "0/1400000"), nil, ErrInvalid, "GC cutoff 0/1500000"},
		{"hook refuses", tid(3), branchMD(tid(9), "0/9000000"), func(anc *Timeline, at lsn.LSN) error {
			return fmt.Errorf("%w: %s beyond last_record_lsn of %s", ErrInvalid, at, anc.ID())
		}, ErrInvalid, "0/9000000 beyond last_record_lsn of " + tid(9).String()},
		{"already exists", tid(9), rootMD("0/1000000"), nil, ErrAlreadyExists, tid(9).String()},
		{"zero id", ids.TimelineID{}, rootMD("0/1000000"), nil, ErrInvalid, "zero timeline id"},
		{"invalid metadata", tid(3), metadata.Metadata{}, nil, ErrInvalid, "PostgreSQL version is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tn.CreateTimeline(ctx, tt.id, tt.md, WithBranchCheck(tt.check))
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, tt.part)
			require.ErrorContains(t, err, tn.ID().String())
		})
	}
	require.Len(t, tn.ListTimelines(), 1)
	require.Equal(t, []string{tid(9).String()}, dirNames(t, filepath.Join(tn.Dir(), "timelines")), "failed creates leave nothing")

	// A tree: 9 ← 2 ← 1, 9 ← 5; plus root 8. Ids chosen so that id order
	// differs from ancestry order.
	called := 0
	hook := WithBranchCheck(func(anc *Timeline, at lsn.LSN) error {
		called++
		require.Equal(t, tid(9), anc.ID())
		require.Equal(t, lsn.MustParse("0/2000000"), at)
		return nil
	})
	_, err = tn.CreateTimeline(ctx, tid(2), branchMD(tid(9), "0/2000000"), hook)
	require.NoError(t, err)
	require.Equal(t, 1, called)
	_, err = tn.CreateTimeline(ctx, tid(1), branchMD(tid(2), "0/3000000"))
	require.NoError(t, err)
	_, err = tn.CreateTimeline(ctx, tid(5), branchMD(tid(9), "0/1500000"))
	require.NoError(t, err)
	_, err = tn.CreateTimeline(ctx, tid(8), rootMD("0/1000000"))
	require.NoError(t, err)

	order := func() []ids.TimelineID {
		var out []ids.TimelineID
		for _, tl := range tn.ListTimelines() {
			out = append(out, tl.ID())
		}
		return out
	}
	require.Equal(t, []ids.TimelineID{tid(8), tid(9), tid(2), tid(1), tid(5)}, order())

	err = tn.DeleteTimeline(ctx, tid(9))
	require.ErrorIs(t, err, ErrHasChildren)
	require.ErrorContains(t, err, tid(2).String()+", "+tid(5).String())
	require.ErrorIs(t, tn.DeleteTimeline(ctx, tid(2)), ErrHasChildren)
	require.NoError(t, tn.DeleteTimeline(ctx, tid(1)))
	require.NoError(t, tn.DeleteTimeline(ctx, tid(2)))
	require.NoError(t, tn.DeleteTimeline(ctx, tid(5)))
	require.NoError(t, tn.DeleteTimeline(ctx, tid(9)))
	require.ErrorIs(t, tn.DeleteTimeline(ctx, tid(9)), ErrNotFound)
	_, err = tn.Timeline(tid(9))
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, []ids.TimelineID{tid(8)}, order())
	require.Equal(t, []string{tid(8).String()}, dirNames(t, filepath.Join(tn.Dir(), "timelines")))

	r2 := open(t, dir)
	require.Equal(t, snapshot(r), snapshot(r2))
}

func TestUpdateMetadata(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	tn, err := r.CreateTenant(ctx, ids.NewTenantID())
	require.NoError(t, err)
	_, err = tn.CreateTimeline(ctx, tid(1), rootMD("0/1000000"))
	require.NoError(t, err)
	tl, err := tn.CreateTimeline(ctx, tid(2), branchMD(tid(1), "0/1000000"))
	require.NoError(t, err)
	require.False(t, tl.Metadata().CreatedAt.IsZero(), "CreatedAt filled in")

	// Concurrent updaters: every increment lands, the file matches memory.
	const n, each = 8, 10
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := tn.UpdateMetadata(tid(2), func(m *metadata.Metadata) { m.DiskConsistentLSN += 8 })
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	want := lsn.MustParse("0/1000000") + n*each*8
	require.Equal(t, want, tl.Metadata().DiskConsistentLSN)
	onDisk, err := metadata.Read(tl.Dir())
	require.NoError(t, err)
	require.Equal(t, want, onDisk.DiskConsistentLSN)

	tests := []struct {
		name string
		fn   func(*metadata.Metadata)
		part string
	}{
		{"change ancestor", func(m *metadata.Metadata) { m.AncestorTimeline = tid(3) }, "ancestry is fixed"},
		{"change ancestor LSN", func(m *metadata.Metadata) { m.AncestorLSN++ }, "ancestry is fixed"},
		{"invalid", func(m *metadata.Metadata) { m.PGVersion = 0 }, "PostgreSQL version is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tl.Metadata()
			_, err := tl.UpdateMetadata(tt.fn)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tt.part)
			require.Equal(t, before, tl.Metadata())
		})
	}
	_, err = tn.UpdateMetadata(tid(7), func(*metadata.Metadata) {})
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, tn.DeleteTimeline(ctx, tid(2)))
	_, err = tl.UpdateMetadata(func(m *metadata.Metadata) { m.DiskConsistentLSN++ })
	require.ErrorIs(t, err, ErrNotFound)
}

// TestOpenCleansCrashLeftovers plants what a crash at every step of create,
// delete and metadata write leaves behind, then reopens.
func TestOpenCleansCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	tn, err := r.CreateTenant(ctx, ids.NewTenantID())
	require.NoError(t, err)
	tl, err := tn.CreateTimeline(ctx, tid(1), rootMD("0/1000000"))
	require.NoError(t, err)
	_, err = tl.UpdateMetadata(func(m *metadata.Metadata) { m.DiskConsistentLSN = lsn.MustParse("0/2000000") })
	require.NoError(t, err)
	before := snapshot(r)

	tenants := filepath.Join(dir, "tenants")
	timelines := filepath.Join(tn.Dir(), "timelines")
	other := ids.NewTenantID().String()
	mk := func(path string) { require.NoError(t, os.MkdirAll(path, 0o700)) }
	write := func(path string, b []byte) { require.NoError(t, os.WriteFile(path, b, 0o600)) }
	// Tenant create interrupted before and after mkdir timelines.
	mk(filepath.Join(tenants, ".tmp-"+other+"-aaaa", "timelines"))
	mk(filepath.Join(tenants, ".tmp-"+other+"-bbbb"))
	// Tenant delete interrupted after the commit rename.
	mk(filepath.Join(tenants, ".deleted-"+other+"-cccc", "timelines", tid(4).String()))
	// Timeline create interrupted with a half-written metadata file.
	mk(filepath.Join(timelines, ".tmp-"+tid(2).String()+"-dddd"))
	write(filepath.Join(timelines, ".tmp-"+tid(2).String()+"-dddd", ".metadata.tmp-123"), []byte("STLM\x01"))
	// Timeline delete interrupted after the rename.
	mk(filepath.Join(timelines, ".deleted-"+tid(3).String()+"-eeee"))
	// Metadata update interrupted before its rename.
	write(filepath.Join(tl.Dir(), ".metadata.tmp-456"), []byte("half"))
	// Foreign entries: skipped, left in place.
	mk(filepath.Join(tenants, "lost+found"))
	write(filepath.Join(tenants, other), []byte("a file named like a tenant"))
	write(filepath.Join(timelines, "notes.txt"), nil)
	// A layer file in the timeline directory is not the repository's business.
	write(filepath.Join(tl.Dir(), "layer-file"), []byte("x"))

	r2 := open(t, dir)
	require.Equal(t, before, snapshot(r2))
	wantTenants := []string{tn.ID().String(), other, "lost+found"}
	sort.Strings(wantTenants)
	require.Equal(t, wantTenants, dirNames(t, tenants))
	require.Equal(t, []string{tid(1).String(), "notes.txt"}, dirNames(t, timelines))
	require.Equal(t, []string{"layer-file", "metadata"}, dirNames(t, tl.Dir()))

	// The id of the tenant file stays free in memory but the name is taken
	// on disk: creating it reports the conflict instead of clobbering.
	otherID, err := ids.ParseTenantID(other)
	require.NoError(t, err)
	_, err = r2.CreateTenant(ctx, otherID)
	require.ErrorIs(t, err, ErrAlreadyExists)
}

func TestBrokenOnDisk(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	tn, err := r.CreateTenant(ctx, ids.NewTenantID())
	require.NoError(t, err)
	good, err := tn.CreateTimeline(ctx, tid(1), rootMD("0/1000000"))
	require.NoError(t, err)
	flipped, err := tn.CreateTimeline(ctx, tid(2), rootMD("0/1000000"))
	require.NoError(t, err)
	missing, err := tn.CreateTimeline(ctx, tid(3), rootMD("0/1000000"))
	require.NoError(t, err)
	_, err = tn.CreateTimeline(ctx, tid(4), branchMD(tid(1), "0/1000000"))
	require.NoError(t, err)
	orphan, err := tn.CreateTimeline(ctx, tid(5), branchMD(tid(4), "0/1000000"))
	require.NoError(t, err)
	brokenTenant, err := r.CreateTenant(ctx, ids.NewTenantID())
	require.NoError(t, err)

	b, err := os.ReadFile(metadata.Path(flipped.Dir()))
	require.NoError(t, err)
	b[35] ^= 0x10
	require.NoError(t, os.WriteFile(metadata.Path(flipped.Dir()), b, 0o600))
	require.NoError(t, os.Remove(metadata.Path(missing.Dir())))
	// The orphan's ancestor disappears behind the repository's back.
	require.NoError(t, os.RemoveAll(filepath.Join(tn.Dir(), "timelines", tid(4).String())))
	require.NoError(t, os.Remove(filepath.Join(brokenTenant.Dir(), "timelines")))

	r2 := open(t, dir)
	require.Len(t, r2.ListTenants(), 2)
	tn2, err := r2.GetTenant(tn.ID())
	require.NoError(t, err)

	_, err = tn2.Timeline(tid(1))
	require.NoError(t, err)
	require.Equal(t, good.Metadata(), mustTimeline(t, tn2, tid(1)).Metadata())

	tests := []struct {
		name   string
		id     ids.TimelineID
		parts  []string
		causes []error
	}{
		{"flipped byte", tid(2), []string{metadata.Path(flipped.Dir()), "checksum"}, []error{metadata.ErrCorrupt}},
		{"missing metadata", tid(3), []string{metadata.Path(missing.Dir())}, []error{fs.ErrNotExist}},
		{"missing ancestor", tid(5), []string{"ancestor timeline " + tid(4).String()}, nil},
	}
	states := map[ids.TimelineID]State{}
	for _, tl := range tn2.ListTimelines() {
		states[tl.ID()] = tl.State()
	}
	require.Equal(t, map[ids.TimelineID]State{tid(1): StateActive, tid(2): StateBroken, tid(3): StateBroken, tid(5): StateBroken}, states)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tn2.Timeline(tt.id)
			require.ErrorIs(t, err, ErrCorrupt)
			for _, c := range tt.causes {
				require.ErrorIs(t, err, c)
			}
			for _, p := range append(tt.parts, tn.ID().String(), tt.id.String()) {
				require.ErrorContains(t, err, p)
			}
			_, err = tn2.UpdateMetadata(tt.id, func(m *metadata.Metadata) {})
			require.ErrorIs(t, err, ErrCorrupt)
			_, err = tn2.CreateTimeline(ctx, tt.id, rootMD("0/1000000"))
			require.ErrorIs(t, err, ErrAlreadyExists, "a broken timeline keeps its id")
			_, err = tn2.CreateTimeline(ctx, tid(9), branchMD(tt.id, "0/1000000"))
			require.ErrorIs(t, err, ErrCorrupt, "no branch from a broken timeline")
		})
	}
	require.Contains(t, orphan.Dir(), tid(5).String())

	// The broken tenant stays listed and can be deleted.
	_, err = r2.GetTenant(brokenTenant.ID())
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, filepath.Join(brokenTenant.Dir(), "timelines"))
	var bt *Tenant
	for _, x := range r2.ListTenants() {
		if x.ID() == brokenTenant.ID() {
			bt = x
		}
	}
	require.NotNil(t, bt)
	require.Equal(t, StateBroken, bt.State())
	require.Error(t, bt.BrokenReason())
	_, err = bt.CreateTimeline(ctx, tid(1), rootMD("0/1000000"))
	require.ErrorIs(t, err, ErrCorrupt)
	require.NoError(t, r2.DeleteTenant(ctx, brokenTenant.ID()))

	// Broken timelines can be deleted, then their ids reused.
	for _, id := range []ids.TimelineID{tid(2), tid(3), tid(5)} {
		require.NoError(t, tn2.DeleteTimeline(ctx, id))
	}
	_, err = tn2.CreateTimeline(ctx, tid(2), rootMD("0/1000000"))
	require.NoError(t, err)
	r3 := open(t, dir)
	require.Equal(t, snapshot(r2), snapshot(r3))
	require.NotContains(t, snapshot(r3), "Broken")
}

func mustTimeline(t *testing.T, tn *Tenant, id ids.TimelineID) *Timeline {
	t.Helper()
	tl, err := tn.Timeline(id)
	require.NoError(t, err)
	return tl
}

// TestAncestorLoop: metadata edited on disk so that two timelines name each
// other; both load broken and are still listed.
func TestAncestorLoop(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	tn, err := r.CreateTenant(ctx, ids.NewTenantID())
	require.NoError(t, err)
	a, err := tn.CreateTimeline(ctx, tid(1), rootMD("0/1000000"))
	require.NoError(t, err)
	b, err := tn.CreateTimeline(ctx, tid(2), branchMD(tid(1), "0/1000000"))
	require.NoError(t, err)
	require.NoError(t, metadata.Write(a.Dir(), branchMD(b.ID(), "0/1000000")))

	r2 := open(t, dir)
	tn2, err := r2.GetTenant(tn.ID())
	require.NoError(t, err)
	list := tn2.ListTimelines()
	require.Len(t, list, 2)
	for _, tl := range list {
		require.Equal(t, StateBroken, tl.State())
		require.ErrorContains(t, tl.BrokenReason(), "ancestor chain loops")
	}
}

func TestReopenAfterWrites(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	ctx := context.Background()
	for i := range 5 {
		tn, err := r.CreateTenant(ctx, ids.NewTenantID())
		require.NoError(t, err)
		root := ids.NewTimelineID()
		_, err = tn.CreateTimeline(ctx, root, rootMD("0/1000000"))
		require.NoError(t, err)
		prev := root
		for j := range i {
			id := ids.NewTimelineID()
			_, err = tn.CreateTimeline(ctx, id, branchMD(prev, fmt.Sprintf("0/%X", 0x1000000+j*0x100)))
			require.NoError(t, err)
			_, err = tn.UpdateMetadata(id, func(m *metadata.Metadata) {
				m.DiskConsistentLSN += lsn.LSN(j * 100)
				m.PrevRecordLSN = m.DiskConsistentLSN - 24
				m.LatestGCCutoffLSN = m.StartLSN
			})
			require.NoError(t, err)
			prev = id
		}
	}
	want := snapshot(r)
	require.Len(t, r.ListTenants(), 5)
	for range 2 {
		r2 := open(t, dir)
		require.Equal(t, want, snapshot(r2))
	}
	// CreatedAt survives with nanosecond precision.
	tl := r.ListTenants()[0].ListTimelines()[0]
	r3 := open(t, dir)
	tn3, err := r3.GetTenant(tl.TenantID())
	require.NoError(t, err)
	got := mustTimeline(t, tn3, tl.ID()).Metadata().CreatedAt
	require.True(t, tl.Metadata().CreatedAt.Equal(got))
	require.WithinDuration(t, time.Now(), got, time.Minute)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	_, err := r.CreateTenant(context.Background(), ids.NewTenantID())
	require.NoError(t, err)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Open(cancelled, dir, nil)
	require.ErrorIs(t, err, context.Canceled)

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = Open(context.Background(), file, nil)
	require.Error(t, err)
	require.ErrorContains(t, err, file)

	// A fresh workdir is created, parents included.
	fresh := filepath.Join(t.TempDir(), "a", "b")
	r2 := open(t, fresh)
	require.Empty(t, r2.ListTenants())
	require.Equal(t, fresh, r2.Workdir())
	require.DirExists(t, filepath.Join(fresh, "tenants"))
}

func TestStateString(t *testing.T) {
	require.Equal(t, "Active", StateActive.String())
	require.Equal(t, "Broken", StateBroken.String())
	require.Equal(t, "State(7)", State(7).String())
	require.True(t, errors.Is(fmt.Errorf("x: %w", ErrCorrupt), ErrCorrupt))
}
