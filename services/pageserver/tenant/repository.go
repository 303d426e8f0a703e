package tenant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/stratadb/strata/internal/durable"
	"github.com/stratadb/strata/internal/ids"
)

// Repository is the set of tenants under <workdir>/tenants.
type Repository struct {
	workdir    string
	tenantsDir string
	logger     *slog.Logger

	// lifecycle serializes CreateTenant and DeleteTenant, held across the
	// existence check, the disk work and the commit rename.
	lifecycle sync.Mutex

	mu      sync.RWMutex // guards tenants; never held across disk I/O
	tenants map[ids.TenantID]*Tenant
}

// Open loads the repository at workdir, creating <workdir>/tenants if
// needed. It first removes directories and files left by interrupted
// creates, deletes and metadata writes, then loads every tenant and
// timeline; damaged ones are loaded broken (see the package doc). It fails
// only when the work directory itself cannot be prepared or read, or ctx is
// done. A nil logger discards logs.
func Open(ctx context.Context, workdir string, logger *slog.Logger) (*Repository, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Repository{
		workdir:    workdir,
		tenantsDir: filepath.Join(workdir, tenantsDirName),
		logger:     logger,
		tenants:    make(map[ids.TenantID]*Tenant),
	}
	if err := ensureDir(r.tenantsDir); err != nil {
		return nil, err
	}
	if err := removeScratch(r.tenantsDir, logger); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(r.tenantsDir)
	if err != nil {
		return nil, fmt.Errorf("tenant: reading %s: %w", r.tenantsDir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("tenant: opening repository %s: %w", workdir, err)
		}
		path := filepath.Join(r.tenantsDir, e.Name())
		id, err := ids.ParseTenantID(e.Name())
		if err != nil {
			logger.Error("tenant: skipping entry that is not a tenant id; left in place", "path", path, "err", err)
			continue
		}
		if !e.IsDir() {
			logger.Error("tenant: skipping non-directory entry named like a tenant; left in place", "path", path, "tenant_id", id)
			continue
		}
		r.tenants[id] = loadTenant(ctx, id, path, logger)
	}
	logger.Info("tenant: repository opened", "workdir", workdir, "tenants", len(r.tenants))
	return r, nil
}

// ensureDir creates dir (and parents) if missing and makes its entry
// durable.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return fmt.Errorf("tenant: creating %s: %w", dir, err)
	}
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("tenant: creating %s: %w", dir, err)
	}
	return nil
}

// removeScratch removes temporary and tombstone entries in dir, logging each,
// and fsyncs dir if it removed any.
func removeScratch(dir string, logger *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("tenant: reading %s: %w", dir, err)
	}
	removed := false
	for _, e := range entries {
		if !isScratch(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		logger.Warn("tenant: removing leftover of an interrupted create or delete", "path", path)
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("tenant: removing leftover %s: %w", path, err)
		}
		removed = true
	}
	if removed {
		if err := durable.SyncDir(dir); err != nil {
			return fmt.Errorf("tenant: %w", err)
		}
	}
	return nil
}

// Workdir returns the directory the repository is rooted at.
func (r *Repository) Workdir() string { return r.workdir }

// CreateTenant creates an empty tenant (no timelines). It fails with an
// error wrapping ErrAlreadyExists when the id is taken, also by a broken
// tenant or by one being created concurrently. When it returns nil the
// tenant directory is durable.
func (r *Repository) CreateTenant(ctx context.Context, id ids.TenantID) (*Tenant, error) {
	if id == (ids.TenantID{}) {
		return nil, fmt.Errorf("%w: zero tenant id", ErrInvalid)
	}
	r.lifecycle.Lock()
	defer r.lifecycle.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tenant: creating tenant %s: %w", id, err)
	}
	if r.lookup(id) != nil {
		return nil, fmt.Errorf("%w: tenant %s", ErrAlreadyExists, id)
	}

	final := filepath.Join(r.tenantsDir, id.String())
	tmp := filepath.Join(r.tenantsDir, scratchName(tempPrefix, id.String()))
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Mkdir(tmp, dirPerm); err != nil {
		return nil, fmt.Errorf("tenant: creating tenant %s: %w", id, err)
	}
	if err := os.Mkdir(filepath.Join(tmp, timelinesDirName), dirPerm); err != nil {
		return nil, fmt.Errorf("tenant: creating tenant %s: %w", id, err)
	}
	if err := durable.SyncDir(tmp); err != nil {
		return nil, fmt.Errorf("tenant: creating tenant %s: %w", id, err)
	}
	if err := renameNoReplace(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: tenant %s: directory %s exists on disk but was not loaded", ErrAlreadyExists, id, final)
		}
		return nil, fmt.Errorf("tenant: creating tenant %s: %w", id, err)
	}
	committed = true
	if err := durable.SyncDir(r.tenantsDir); err != nil {
		// The rename happened but may not survive a crash; the tenant is
		// usable now and a reopen sees either nothing or the complete
		// directory, so keep it and report the failure.
		r.insert(newTenant(id, final, r.logger, nil))
		return nil, fmt.Errorf("tenant: creating tenant %s: %w", id, err)
	}
	t := newTenant(id, final, r.logger, nil)
	r.insert(t)
	r.logger.Info("tenant: created", "tenant_id", id, "path", final)
	return t, nil
}

func (r *Repository) lookup(id ids.TenantID) *Tenant {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.tenants[id]
}

func (r *Repository) insert(t *Tenant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tenants[t.id] = t
}

// GetTenant returns an active tenant. A missing id is ErrNotFound; a broken
// tenant is an error wrapping ErrCorrupt and the reason.
func (r *Repository) GetTenant(id ids.TenantID) (*Tenant, error) {
	t := r.lookup(id)
	if t == nil {
		return nil, fmt.Errorf("%w: tenant %s", ErrNotFound, id)
	}
	if t.brokenReason != nil {
		return nil, fmt.Errorf("%w: tenant %s (%s): %w", ErrCorrupt, id, t.dir, t.brokenReason)
	}
	return t, nil
}

// ListTenants returns every tenant, broken ones included, sorted by id.
func (r *Repository) ListTenants() []*Tenant {
	r.mu.RLock()
	out := make([]*Tenant, 0, len(r.tenants))
	for _, t := range r.tenants {
		out = append(out, t)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Tenant) int { return bytes.Compare(a.id[:], b.id[:]) })
	return out
}

// DeleteTenant removes a tenant (active or broken) with all its timelines.
// The commit point is the rename of its directory to a tombstone; once that
// is durable the tenant is gone even if removing the tombstone's contents is
// interrupted (Open finishes the job). Callers stop using the tenant's
// timelines first; their metadata updates fail with ErrNotFound afterwards.
func (r *Repository) DeleteTenant(ctx context.Context, id ids.TenantID) error {
	r.lifecycle.Lock()
	defer r.lifecycle.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tenant: deleting tenant %s: %w", id, err)
	}
	t := r.lookup(id)
	if t == nil {
		return fmt.Errorf("%w: tenant %s", ErrNotFound, id)
	}
	// Wait for the tenant's in-flight timeline creations and deletions.
	t.lifecycle.Lock()
	defer t.lifecycle.Unlock()

	tomb := filepath.Join(r.tenantsDir, scratchName(tombstonePrefix, id.String()))
	// Holding every timeline's write lock across the rename keeps an
	// in-flight UpdateMetadata from landing after the commit (for example in
	// a tenant re-created with the same id).
	tls := t.snapshotTimelines()
	for _, tl := range tls {
		tl.writeMu.Lock()
	}
	err := renameNoReplace(t.dir, tomb)
	if err == nil {
		t.markDeleted(tls)
	}
	for _, tl := range tls {
		tl.writeMu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("tenant: deleting tenant %s: %w", id, err)
	}
	r.mu.Lock()
	delete(r.tenants, id)
	r.mu.Unlock()
	if err := durable.SyncDir(r.tenantsDir); err != nil {
		return fmt.Errorf("tenant: deleting tenant %s: %w", id, err)
	}
	if err := os.RemoveAll(tomb); err != nil {
		// Committed already; Open removes what is left.
		r.logger.Warn("tenant: deleted tenant's files not fully removed; Open will retry", "tenant_id", id, "path", tomb, "err", err)
	}
	r.logger.Info("tenant: deleted", "tenant_id", id)
	return nil
}
