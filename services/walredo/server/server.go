package server

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	walredov1 "github.com/stratadb/strata/proto/gen/strata/walredo/v1"
	"github.com/stratadb/strata/services/walredo/redo"
)

// Backend is what the server needs from the pool (*pool.Pool implements it).
type Backend interface {
	redo.Redoer
	// Mask applies rmgr rmid's rm_mask to page into out on one of tenant's
	// children.
	Mask(ctx context.Context, tenant ids.TenantID, rmid uint8, blkno uint32, page, out []byte) error
}

// maskTenant is the tenant whose children serve Mask, which carries no
// tenant id: masking runs rm_mask over caller-supplied bytes and replays no
// WAL, so a shared child does not break tenant isolation of redo.
var maskTenant = ids.TenantID{}

// Options configures a Server.
type Options struct {
	// WALLogHints is the wal_log_hints setting of the backend's children.
	// A request whose source_wal_log_hints differs is refused, because the
	// child would stamp page LSNs differently from the source cluster.
	WALLogHints bool
}

// Server implements walredov1.WalRedoServiceServer over a Backend.
type Server struct {
	walredov1.UnimplementedWalRedoServiceServer
	backend Backend
	opts    Options
	scratch sync.Pool // *scratch

	draining  chan struct{} // closed by Drain
	drainOnce sync.Once
}

// scratch is the per-call working memory reused across calls.
type scratch struct {
	page    []byte
	records []redo.Record
}

// New returns a server over backend.
func New(backend Backend, opts Options) *Server {
	s := &Server{backend: backend, opts: opts, draining: make(chan struct{})}
	s.scratch.New = func() any { return &scratch{page: make([]byte, pgtypes.BLCKSZ)} }
	return s
}

// Register registers the service on srv.
func (s *Server) Register(srv grpc.ServiceRegistrar) {
	walredov1.RegisterWalRedoServiceServer(srv, s)
}

// Apply implements WalRedoService.Apply.
func (s *Server) Apply(ctx context.Context, req *walredov1.ApplyRequest) (*walredov1.ApplyResponse, error) {
	if err := auth.AuthorizeScope(ctx, auth.ScopePageserverAPI); err != nil {
		return nil, err
	}
	sc := s.scratch.Get().(*scratch)
	defer s.putScratch(sc)
	if err := s.apply(ctx, req, sc); err != nil {
		return nil, statusError(err)
	}
	// The response owns its page until gRPC marshals it after we return:
	// reuse the request's base image (ours alone) or allocate one.
	out := req.GetBaseImage()
	if len(out) != pgtypes.BLCKSZ {
		out = make([]byte, pgtypes.BLCKSZ)
	}
	copy(out, sc.page)
	return &walredov1.ApplyResponse{Page: out}, nil
}

// apply validates and converts req and rebuilds its page into sc.page.
// Errors are the backend's or wrap redo.ErrInvalidRequest.
func (s *Server) apply(ctx context.Context, req *walredov1.ApplyRequest, sc *scratch) error {
	tenant, err := parseTenant(req.GetTenantId())
	if err != nil {
		return err
	}
	tag, err := bufferTag(req.GetTag())
	if err != nil {
		return err
	}
	if req.GetSourceWalLogHints() != s.opts.WALLogHints {
		return fmt.Errorf("%w: source_wal_log_hints is %t but this walredo runs its children with wal_log_hints=%t (set wal_log_hints in its config to match the source cluster)",
			redo.ErrInvalidRequest, req.GetSourceWalLogHints(), s.opts.WALLogHints)
	}
	base := req.GetBaseImage()
	if len(base) == 0 {
		base = nil // proto3 cannot tell empty from absent; both mean a zero page
	} else if len(base) != pgtypes.BLCKSZ {
		return fmt.Errorf("%w: base_image is %d bytes, want 0 or %d", redo.ErrInvalidRequest, len(base), pgtypes.BLCKSZ)
	}
	for _, r := range req.GetRecords() {
		sc.records = append(sc.records, redo.Record{Start: lsn.LSN(r.GetStartLsn()), End: lsn.LSN(r.GetEndLsn()), Raw: r.GetData()})
	}
	rr := redo.Request{Tenant: tenant, Tag: tag, Base: base, Records: sc.records}
	return s.backend.Apply(ctx, &rr, sc.page)
}

// putScratch returns sc to the pool without references to a request.
func (s *Server) putScratch(sc *scratch) {
	clear(sc.records)
	sc.records = sc.records[:0]
	s.scratch.Put(sc)
}

// Mask implements WalRedoService.Mask.
func (s *Server) Mask(ctx context.Context, req *walredov1.MaskRequest) (*walredov1.MaskResponse, error) {
	if err := auth.AuthorizeScope(ctx, auth.ScopePageserverAPI); err != nil {
		return nil, err
	}
	page := req.GetPage()
	switch {
	case len(page) != pgtypes.BLCKSZ:
		return nil, statusError(fmt.Errorf("%w: page is %d bytes, want %d", redo.ErrInvalidRequest, len(page), pgtypes.BLCKSZ))
	case req.GetRmgrId() > 0xFF:
		return nil, statusError(fmt.Errorf("%w: rmgr_id %d is out of range", redo.ErrInvalidRequest, req.GetRmgrId()))
	}
	sc := s.scratch.Get().(*scratch)
	defer s.putScratch(sc)
	if err := s.backend.Mask(ctx, maskTenant, uint8(req.GetRmgrId()), req.GetBlockNumber(), page, sc.page); err != nil {
		return nil, statusError(err)
	}
	copy(page, sc.page) // the request's page is ours: it becomes the response
	return &walredov1.MaskResponse{Page: page}, nil
}

func parseTenant(s string) (ids.TenantID, error) {
	if len(s) != 2*ids.Len {
		// Checked first so an oversized id is not echoed into the error.
		return ids.TenantID{}, fmt.Errorf("%w: tenant_id has %d characters, want 32 lowercase hexadecimal characters", redo.ErrInvalidRequest, len(s))
	}
	id, err := ids.ParseTenantID(s)
	if err != nil {
		return ids.TenantID{}, fmt.Errorf("%w: %w", redo.ErrInvalidRequest, err)
	}
	return id, nil
}

func bufferTag(t *walredov1.BufferTag) (pgtypes.BufferTag, error) {
	if t == nil {
		return pgtypes.BufferTag{}, fmt.Errorf("%w: tag is missing", redo.ErrInvalidRequest)
	}
	if t.GetForkNumber() > uint32(pgtypes.MaxForkNum) {
		return pgtypes.BufferTag{}, fmt.Errorf("%w: fork_number %d is not a valid fork", redo.ErrInvalidRequest, t.GetForkNumber())
	}
	return pgtypes.BufferTag{
		Rel: pgtypes.RelTag{
			SpcNode: pgtypes.Oid(t.GetSpcOid()),
			DbNode:  pgtypes.Oid(t.GetDbOid()),
			RelNode: pgtypes.Oid(t.GetRelNumber()),
			ForkNum: pgtypes.ForkNumber(t.GetForkNumber()),
		},
		BlockNum: t.GetBlockNumber(),
	}, nil
}
