package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/internal/lsn"
	"github.com/stratadb/strata/internal/pgtypes"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pageserver/tenantmgr"
)

// Defaults of Options.
const (
	DefaultMaxInflightGetPages = 32
	DefaultProgressInterval    = time.Second
	// backupChunkBytes is the largest GetBaseBackupResponse chunk.
	backupChunkBytes = 1 << 20
)

// latestLSN is ReadLsn.request_lsn's "latest".
const latestLSN = math.MaxUint64

// Options configure the adapters.
type Options struct {
	Manager *tenantmgr.Manager
	Logger  *slog.Logger
	// MaxInflightGetPages bounds the requests of one GetPages stream
	// between receipt and response; 0 means DefaultMaxInflightGetPages.
	MaxInflightGetPages int
	// ProgressInterval is how often an ingest stream reports progress
	// when nothing else prompts it; 0 means DefaultProgressInterval.
	ProgressInterval time.Duration
	// PGBinDir holds initdb for CreateTimeline{bootstrap}; ScratchDir is
	// where initdb's temporary cluster goes; BootstrapRunAs is the OS user
	// initdb runs as when the pageserver runs as root.
	PGBinDir       string
	ScratchDir     string
	BootstrapRunAs string
	// Registerer receives the adapters' metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Server implements the three services.
type Server struct {
	pb.UnimplementedManagementServiceServer
	opts Options
	m    *tenantmgr.Manager
	log  *slog.Logger
	page pageService
	ing  ingestService

	// getPagesRequests and getPagesSeconds count and time GetPages
	// requests by outcome (the GetPagesStatusCode without its prefix).
	getPagesRequests *prometheus.CounterVec
	getPagesSeconds  *prometheus.HistogramVec
	getPagesBlocks   prometheus.Counter
}

// New returns the adapters over opts.Manager.
func New(opts Options) *Server {
	if opts.MaxInflightGetPages <= 0 {
		opts.MaxInflightGetPages = DefaultMaxInflightGetPages
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = DefaultProgressInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, m: opts.Manager, log: opts.Logger}
	s.getPagesRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_pageserver_getpages_requests_total",
		Help: "GetPages requests answered, by status.",
	}, []string{"status"})
	s.getPagesSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_pageserver_getpages_seconds",
		Help:    "Time from receiving a GetPages request to its response being ready (waiting for WAL included), by status.",
		Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5, 60},
	}, []string{"status"})
	s.getPagesBlocks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_pageserver_getpages_blocks_total",
		Help: "Pages returned by successful GetPages requests.",
	})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.getPagesRequests, s.getPagesSeconds, s.getPagesBlocks)
	}
	s.page = pageService{s: s}
	s.ing = ingestService{s: s}
	return s
}

// Register registers ManagementService, PageService and IngestService.
func (s *Server) Register(reg grpc.ServiceRegistrar) {
	pb.RegisterManagementServiceServer(reg, s)
	pb.RegisterPageServiceServer(reg, &s.page)
	pb.RegisterIngestServiceServer(reg, &s.ing)
}

func parseTenant(s string) (ids.TenantID, error) {
	id, err := ids.ParseTenantID(s)
	if err != nil {
		return id, fmt.Errorf("%w: tenant_id: %w", errInvalidArgument, err)
	}
	return id, nil
}

func parseTimeline(s string) (ids.TimelineID, error) {
	id, err := ids.ParseTimelineID(s)
	if err != nil {
		return id, fmt.Errorf("%w: timeline_id: %w", errInvalidArgument, err)
	}
	return id, nil
}

// optionalTimeline parses s; "" gives the zero id (the manager picks one).
func optionalTimeline(s string) (ids.TimelineID, error) {
	if s == "" {
		return ids.TimelineID{}, nil
	}
	return parseTimeline(s)
}

// timeline resolves ref to an active timeline.
func (s *Server) timeline(ref *pb.TimelineRef) (*tenantmgr.Timeline, error) {
	tid, err := parseTenant(ref.GetTenantId())
	if err != nil {
		return nil, err
	}
	tlid, err := parseTimeline(ref.GetTimelineId())
	if err != nil {
		return nil, err
	}
	return s.m.Timeline(tid, tlid)
}

func relTag(r *pb.RelTag) (pgtypes.RelTag, error) {
	if r == nil {
		return pgtypes.RelTag{}, fmt.Errorf("%w: rel is missing", errInvalidArgument)
	}
	if r.GetForkNumber() > uint32(pgtypes.MaxForkNum) {
		return pgtypes.RelTag{}, fmt.Errorf("%w: fork_number %d is not 0..%d", errInvalidArgument, r.GetForkNumber(), pgtypes.MaxForkNum)
	}
	if r.GetRelNumber() == 0 {
		return pgtypes.RelTag{}, fmt.Errorf("%w: rel_number 0", errInvalidArgument)
	}
	return pgtypes.RelTag{
		SpcNode: pgtypes.Oid(r.GetSpcOid()), DbNode: pgtypes.Oid(r.GetDbOid()),
		RelNode: pgtypes.Oid(r.GetRelNumber()), ForkNum: pgtypes.ForkNumber(r.GetForkNumber()),
	}, nil
}

// effectiveLSN applies Neon's rules (package doc) to r, waiting for WAL
// when needed.
func effectiveLSN(ctx context.Context, tl *tenantmgr.Timeline, r *pb.ReadLsn) (lsn.LSN, error) {
	req, nms := r.GetRequestLsn(), r.GetNotModifiedSinceLsn()
	if req == 0 {
		return lsn.Invalid, fmt.Errorf("%w: invalid request_lsn 0", errInvalidArgument)
	}
	if nms == 0 && req != latestLSN {
		nms = req
	}
	if nms > req {
		return lsn.Invalid, fmt.Errorf("%w: not_modified_since_lsn %s is above request_lsn %s", errInvalidArgument, lsn.LSN(nms), lsn.LSN(req))
	}
	rt := tl.Runtime()
	last := rt.LastRecordLSN()
	if lsn.LSN(nms) > last {
		if err := rt.WaitForLSN(ctx, lsn.LSN(nms)); err != nil {
			return lsn.Invalid, err
		}
		return lsn.LSN(nms), nil
	}
	if !last.IsValid() {
		return lsn.Invalid, fmt.Errorf("%w: timeline %s has no data yet (import or bootstrap it first)", errInvalidArgument, tl.ID())
	}
	return min(last, lsn.LSN(req)), nil
}
