package server

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/keyspace"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
)

type pageService struct {
	pb.UnimplementedPageServiceServer
	s *Server
}

// pageBufs recycles 8 KB page images between GetPages responses.
var pageBufs = sync.Pool{New: func() any { b := make([]byte, pgtypes.BLCKSZ); return &b }}

// pending is one GetPages request between receipt and response.
type pending struct {
	resp *pb.GetPagesResponse
	bufs []*[]byte
	done chan struct{}
}

func (p *pending) release() {
	for _, b := range p.bufs {
		pageBufs.Put(b)
	}
	p.bufs = nil
}

// GetPages implements PageService; see the package doc for pipelining.
func (ps *pageService) GetPages(stream pb.PageService_GetPagesServer) error {
	s := ps.s
	g, ctx := errgroup.WithContext(stream.Context())
	queue := make(chan *pending, s.opts.MaxInflightGetPages)
	g.Go(func() error { // sender: responses in request order
		for p := range queue {
			select {
			case <-p.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			err := stream.Send(p.resp)
			// Send has serialized the message: the buffers are free.
			p.release()
			if err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error { // receiver
		defer close(queue)
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			p := &pending{done: make(chan struct{})}
			select {
			case queue <- p:
			case <-ctx.Done():
				return ctx.Err()
			}
			g.Go(func() error {
				defer close(p.done)
				s.getPages(ctx, req, p)
				return nil
			})
		}
	})
	err := g.Wait()
	if err != nil && stream.Context().Err() != nil {
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return err
}

// getPages answers one request into p.resp; failures become its status.
func (s *Server) getPages(ctx context.Context, req *pb.GetPagesRequest, p *pending) {
	start := time.Now()
	resp := &pb.GetPagesResponse{RequestId: req.GetRequestId(), Rel: req.GetRel()}
	p.resp = resp
	if err := s.readPages(ctx, req, p); err != nil {
		p.release()
		resp.Pages = nil
		resp.StatusCode, resp.Reason = pageStatus(s.log, err)
	} else {
		resp.StatusCode = pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_OK
		s.getPagesBlocks.Add(float64(len(resp.Pages)))
	}
	st := strings.ToLower(strings.TrimPrefix(resp.StatusCode.String(), "GET_PAGES_STATUS_CODE_"))
	s.getPagesRequests.WithLabelValues(st).Inc()
	s.getPagesSeconds.WithLabelValues(st).Observe(time.Since(start).Seconds())
}

func (s *Server) readPages(ctx context.Context, req *pb.GetPagesRequest, p *pending) error {
	ref := req.GetTimeline()
	if err := auth.Authorize(ctx, ref.GetTenantId()); err != nil {
		return err
	}
	tl, err := s.timeline(ref)
	if err != nil {
		return err
	}
	rel, err := relTag(req.GetRel())
	if err != nil {
		return err
	}
	blocks := req.GetBlockNumbers()
	if len(blocks) == 0 {
		return fmt.Errorf("%w: no block_numbers", errInvalidArgument)
	}
	at, err := effectiveLSN(ctx, tl, req.GetReadLsn())
	if err != nil {
		return err
	}
	p.resp.EffectiveLsn = uint64(at)
	nblocks, err := tl.Reader().RelSize(ctx, rel, at)
	if err != nil {
		return err
	}
	rt := tl.Runtime()
	pages := make([]pb.Page, len(blocks))
	p.resp.Pages = make([]*pb.Page, len(blocks))
	for i, blk := range blocks {
		buf := pageBufs.Get().(*[]byte)
		p.bufs = append(p.bufs, buf)
		page := (*buf)[:pgtypes.BLCKSZ]
		if blk >= nblocks {
			clear(page) // beyond the end: zeros, as in Neon
		} else {
			v, err := rt.Get(ctx, keyspace.RelBlock(rel, blk), at, page[:0])
			if err != nil {
				return fmt.Errorf("%s blk %d at %s: %w", rel, blk, at, err)
			}
			if len(v) != pgtypes.BLCKSZ {
				return fmt.Errorf("pageserver: %s blk %d at %s is %d bytes, not a page", rel, blk, at, len(v))
			}
			if &v[0] != &page[0] {
				copy(page, v)
			}
		}
		pages[i] = pb.Page{BlockNumber: blk, Image: page}
		p.resp.Pages[i] = &pages[i]
	}
	return nil
}

// GetRelSize implements PageService.
func (ps *pageService) GetRelSize(ctx context.Context, req *pb.GetRelSizeRequest) (*pb.GetRelSizeResponse, error) {
	s := ps.s
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tl, err := s.timeline(req.GetTimeline())
	if err != nil {
		return nil, toStatus(s.log, "GetRelSize", err)
	}
	rel, err := relTag(req.GetRel())
	if err != nil {
		return nil, toStatus(s.log, "GetRelSize", err)
	}
	at, err := effectiveLSN(ctx, tl, req.GetReadLsn())
	if err != nil {
		return nil, toStatus(s.log, "GetRelSize", err)
	}
	n, err := tl.Reader().RelSize(ctx, rel, at)
	if errors.Is(err, pgdatadir.ErrRelNotFound) && req.GetAllowMissing() {
		return &pb.GetRelSizeResponse{Missing: true}, nil
	}
	if err != nil {
		return nil, toStatus(s.log, "GetRelSize", err)
	}
	return &pb.GetRelSizeResponse{NumBlocks: n}, nil
}

// GetDbSize implements PageService.
func (ps *pageService) GetDbSize(ctx context.Context, req *pb.GetDbSizeRequest) (*pb.GetDbSizeResponse, error) {
	s := ps.s
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tl, err := s.timeline(req.GetTimeline())
	if err != nil {
		return nil, toStatus(s.log, "GetDbSize", err)
	}
	at, err := effectiveLSN(ctx, tl, req.GetReadLsn())
	if err != nil {
		return nil, toStatus(s.log, "GetDbSize", err)
	}
	spc := pgtypes.Oid(req.GetSpcOid())
	if spc == 0 {
		spc = pgtypes.DefaultTablespaceOid
	}
	n, err := tl.Reader().DbSize(ctx, spc, pgtypes.Oid(req.GetDbOid()), at)
	if err != nil {
		return nil, toStatus(s.log, "GetDbSize", err)
	}
	return &pb.GetDbSizeResponse{NumBytes: n}, nil
}

func slruKind(k pb.SlruKind) (keyspace.SlruKind, error) {
	switch k {
	case pb.SlruKind_SLRU_KIND_CLOG:
		return keyspace.SlruClog, nil
	case pb.SlruKind_SLRU_KIND_MULTIXACT_MEMBERS:
		return keyspace.SlruMultiXactMembers, nil
	case pb.SlruKind_SLRU_KIND_MULTIXACT_OFFSETS:
		return keyspace.SlruMultiXactOffsets, nil
	}
	return 0, fmt.Errorf("%w: kind %s", errInvalidArgument, k)
}

// GetSlruSegment implements PageService.
func (ps *pageService) GetSlruSegment(ctx context.Context, req *pb.GetSlruSegmentRequest) (*pb.GetSlruSegmentResponse, error) {
	s := ps.s
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return nil, err
	}
	tl, err := s.timeline(req.GetTimeline())
	if err != nil {
		return nil, toStatus(s.log, "GetSlruSegment", err)
	}
	kind, err := slruKind(req.GetKind())
	if err != nil {
		return nil, toStatus(s.log, "GetSlruSegment", err)
	}
	at, err := effectiveLSN(ctx, tl, req.GetReadLsn())
	if err != nil {
		return nil, toStatus(s.log, "GetSlruSegment", err)
	}
	seg, err := tl.Reader().SlruSegment(ctx, kind, req.GetSegno(), at)
	if err != nil {
		return nil, toStatus(s.log, "GetSlruSegment", err)
	}
	return &pb.GetSlruSegmentResponse{Segment: seg}, nil
}

// chunkSender is an io.Writer that sends what it is given as
// GetBaseBackupResponse chunks of up to backupChunkBytes; the first
// carries the backup LSN.
type chunkSender struct {
	stream pb.PageService_GetBaseBackupServer
	at     lsn.LSN
	buf    []byte
	sent   bool
}

func (c *chunkSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), backupChunkBytes-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == backupChunkBytes {
			if err := c.Flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// Flush sends the buffered bytes (and the first message even if empty).
func (c *chunkSender) Flush() error {
	if len(c.buf) == 0 && c.sent {
		return nil
	}
	msg := &pb.GetBaseBackupResponse{Chunk: c.buf}
	if !c.sent {
		msg.Lsn = uint64(c.at)
	}
	err := c.stream.Send(msg)
	c.sent = true
	c.buf = c.buf[:0]
	return err
}

// GetBaseBackup implements PageService: a tar stream of the timeline at an
// LSN within [start, last_record_lsn] (0: last_record_lsn). Nothing is
// staged on disk, so a client that goes away leaves nothing behind.
func (ps *pageService) GetBaseBackup(req *pb.GetBaseBackupRequest, stream pb.PageService_GetBaseBackupServer) error {
	s := ps.s
	ctx := stream.Context()
	if err := auth.Authorize(ctx, req.GetTimeline().GetTenantId()); err != nil {
		return err
	}
	tl, err := s.timeline(req.GetTimeline())
	if err != nil {
		return toStatus(s.log, "GetBaseBackup", err)
	}
	rt := tl.Runtime()
	last, prev := rt.LastRecordLSN(), rt.PrevRecordLSN()
	at := lsn.LSN(req.GetLsn())
	if !at.IsValid() {
		at = last
	}
	start := tl.StartLSN()
	if !at.IsValid() || at < start || at > last {
		return status.Errorf(codes.OutOfRange, "GetBaseBackup: LSN %s is outside the timeline's range [%s, %s] (start, last_record_lsn)", at, start, last)
	}
	prevLSN := lsn.LSN(req.GetPrevLsn())
	if !prevLSN.IsValid() && at == last {
		prevLSN = prev
	}
	cs := &chunkSender{stream: stream, at: at, buf: make([]byte, 0, backupChunkBytes)}
	var w io.Writer = cs
	var gz *gzip.Writer
	switch req.GetCompression() {
	case pb.BaseBackupCompression_BASE_BACKUP_COMPRESSION_UNSPECIFIED, pb.BaseBackupCompression_BASE_BACKUP_COMPRESSION_NONE:
	case pb.BaseBackupCompression_BASE_BACKUP_COMPRESSION_GZIP:
		gz = gzip.NewWriter(cs)
		w = gz
	default:
		return status.Errorf(codes.InvalidArgument, "GetBaseBackup: compression %s", req.GetCompression())
	}
	if _, err := basebackup.Write(ctx, w, tl.Reader(), at, basebackup.Options{Full: req.GetFull(), PrevLSN: prevLSN, Logger: s.log}); err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return toStatus(s.log, "GetBaseBackup", err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return toStatus(s.log, "GetBaseBackup", err)
		}
	}
	return cs.Flush()
}
