package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/internal/ids"
	"github.com/stratadb/strata/services/walredo/process"
	"github.com/stratadb/strata/services/walredo/redo"
)

// Config sizes the pool. Zero values take the defaults of Default().
type Config struct {
	// MaxChildren caps the children of all tenants together.
	MaxChildren int
	// MaxChildrenPerTenant caps one tenant's children.
	MaxChildrenPerTenant int
	// IdleTimeout stops a child that served nothing for this long.
	IdleTimeout time.Duration
	// RespawnBackoffMin and RespawnBackoffMax bound the delay before a
	// tenant's next spawn after consecutive crashes (the first is immediate).
	RespawnBackoffMin, RespawnBackoffMax time.Duration
	// CloseGrace is how long a child may take to exit after EOF.
	CloseGrace time.Duration
	// WALLogHints is passed to every child (see process.ChildOptions).
	WALLogHints bool
	Logger      *slog.Logger
	// Registerer receives the pool's metrics; nil keeps them unexposed.
	Registerer prometheus.Registerer
}

// Default returns the default configuration.
func Default() Config {
	return Config{
		MaxChildren:          4,
		MaxChildrenPerTenant: 1,
		IdleTimeout:          180 * time.Second, // Neon's WALREDO_IDLE_TIMEOUT
		RespawnBackoffMin:    100 * time.Millisecond,
		RespawnBackoffMax:    10 * time.Second,
		CloseGrace:           5 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := Default()
	if c.MaxChildren == 0 {
		c.MaxChildren = d.MaxChildren
	}
	if c.MaxChildrenPerTenant == 0 {
		c.MaxChildrenPerTenant = d.MaxChildrenPerTenant
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.RespawnBackoffMin == 0 {
		c.RespawnBackoffMin = d.RespawnBackoffMin
	}
	if c.RespawnBackoffMax == 0 {
		c.RespawnBackoffMax = d.RespawnBackoffMax
	}
	if c.CloseGrace == 0 {
		c.CloseGrace = d.CloseGrace
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var problems []string
	if c.MaxChildren < 1 {
		problems = append(problems, fmt.Sprintf("MaxChildren %d < 1", c.MaxChildren))
	}
	if c.MaxChildrenPerTenant < 1 || c.MaxChildrenPerTenant > c.MaxChildren {
		problems = append(problems, fmt.Sprintf("MaxChildrenPerTenant %d not in [1, MaxChildren=%d]", c.MaxChildrenPerTenant, c.MaxChildren))
	}
	if c.IdleTimeout < 0 || c.RespawnBackoffMin < 0 || c.RespawnBackoffMax < c.RespawnBackoffMin || c.CloseGrace < 0 {
		problems = append(problems, "durations must be non-negative and RespawnBackoffMax >= RespawnBackoffMin")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}

type child struct {
	*process.Child
	tenant   ids.TenantID
	lastUsed time.Time
}

type tenantSet struct {
	idle      []*child // most recently used last
	busy      map[*child]struct{}
	live      int // idle + busy + being started
	crashes   int // consecutive
	notBefore time.Time
}

// Pool is the in-process redo.Redoer.
type Pool struct {
	tmpl    *process.Template
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	tenants map[ids.TenantID]*tenantSet
	live    int
	changed chan struct{} // closed and replaced whenever a child frees up
	closed  bool

	stopReaper context.CancelFunc
	wg         sync.WaitGroup // reaper and child closers
}

var _ redo.Redoer = (*Pool)(nil)

// New starts a pool over a prepared template. Children start lazily.
func New(tmpl *process.Template, cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("%w: metrics: %v", ErrConfig, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		metrics:    m,
		tmpl:       tmpl,
		cfg:        cfg,
		log:        cfg.Logger,
		tenants:    make(map[ids.TenantID]*tenantSet),
		changed:    make(chan struct{}),
		stopReaper: cancel,
	}
	p.wg.Add(1)
	go p.reap(ctx)
	return p, nil
}

// Apply implements redo.Redoer.
func (p *Pool) Apply(ctx context.Context, req *redo.Request, page []byte) (err error) {
	start := time.Now()
	defer func() {
		p.metrics.latency.Observe(time.Since(start).Seconds())
		p.metrics.requests.WithLabelValues(resultLabel(err)).Inc()
		if err == nil {
			p.metrics.recordsApplied.Add(float64(len(req.Records)))
		}
	}()
	if err := req.Validate(page); err != nil {
		return err
	}
	var first error
	for attempt := 0; ; attempt++ {
		c, err := p.acquire(ctx, req.Tenant)
		if err != nil {
			if first != nil {
				return fmt.Errorf("%w (no child for the retry: %v)", first, err)
			}
			return err
		}
		err = c.Apply(ctx, req.Tag, req.Base, req.Records, page)
		p.release(c, err)
		if !errors.Is(err, redo.ErrChildCrashed) || attempt == 1 {
			return err
		}
		first = err
		p.log.Warn("walredo child crashed; retrying on a fresh child", "tenant", req.Tenant, "tag", req.Tag, "err", err)
	}
}

// Mask applies rmgr rmid's rm_mask to page into out on one of tenant's
// children (see process.Child.Mask).
func (p *Pool) Mask(ctx context.Context, tenant ids.TenantID, rmid uint8, blkno uint32, page, out []byte) error {
	c, err := p.acquire(ctx, tenant)
	if err != nil {
		return err
	}
	err = c.Mask(ctx, rmid, blkno, page, out)
	p.release(c, err)
	return err
}

// ChildPIDs returns the process ids of tenant's live children.
func (p *Pool) ChildPIDs(tenant ids.TenantID) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.tenants[tenant]
	if ts == nil {
		return nil
	}
	var pids []int
	for _, c := range ts.idle {
		pids = append(pids, c.PID())
	}
	for c := range ts.busy {
		pids = append(pids, c.PID())
	}
	slices.Sort(pids)
	return pids
}

// Live returns the number of children alive or starting.
func (p *Pool) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live
}

func (p *Pool) tenant(id ids.TenantID) *tenantSet {
	ts := p.tenants[id]
	if ts == nil {
		ts = &tenantSet{busy: make(map[*child]struct{})}
		p.tenants[id] = ts
	}
	return ts
}

// broadcast wakes every acquire waiting for a change. Caller holds mu.
func (p *Pool) broadcast() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// acquire returns an idle child of the tenant, starts one, or waits.
func (p *Pool) acquire(ctx context.Context, tenant ids.TenantID) (*child, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, redo.ErrClosed
		}
		ts := p.tenant(tenant)
		for len(ts.idle) > 0 {
			c := ts.idle[len(ts.idle)-1]
			ts.idle = ts.idle[:len(ts.idle)-1]
			if !c.Alive() { // died while idle (OOM killer, operator)
				p.dropLocked(ts, c)
				continue
			}
			ts.busy[c] = struct{}{}
			p.mu.Unlock()
			return c, nil
		}
		if ts.live < p.cfg.MaxChildrenPerTenant {
			if p.live >= p.cfg.MaxChildren {
				p.evictIdleLocked()
			}
			if p.live < p.cfg.MaxChildren {
				ts.live++
				p.live++
				p.metrics.liveChildren.WithLabelValues(tenant.String()).Set(float64(ts.live))
				notBefore := ts.notBefore
				p.mu.Unlock()
				return p.spawn(ctx, tenant, notBefore)
			}
		}
		wait := p.changed
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a walredo child of tenant %s: %w", tenant, ctx.Err())
		}
	}
}

// spawn starts a child for a reserved slot, after the tenant's backoff.
func (p *Pool) spawn(ctx context.Context, tenant ids.TenantID, notBefore time.Time) (*child, error) {
	if d := time.Until(notBefore); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			p.unreserve(tenant, false)
			return nil, fmt.Errorf("waiting %v to respawn a walredo child of tenant %s: %w", d, tenant, ctx.Err())
		}
	}
	p.metrics.spawns.Inc()
	pc, err := process.Start(ctx, p.tmpl, process.ChildOptions{WALLogHints: p.cfg.WALLogHints, Name: tenant.String()})
	if err != nil {
		p.metrics.crashes.Inc()
		p.unreserve(tenant, true)
		return nil, err
	}
	c := &child{Child: pc, tenant: tenant}
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.tenant(tenant)
	ts.busy[c] = struct{}{}
	if p.closed {
		// Close is waiting for busy children; hand this one back at once.
		delete(ts.busy, c)
		p.dropLocked(ts, c)
		p.broadcast()
		return nil, redo.ErrClosed
	}
	p.log.Info("walredo child started", "tenant", tenant, "pid", pc.PID())
	return c, nil
}

func (p *Pool) unreserve(tenant ids.TenantID, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.tenant(tenant)
	ts.live--
	p.live--
	p.setLiveGaugeLocked(tenant, ts)
	if failed {
		p.noteCrashLocked(ts)
	}
	p.broadcast()
}

// release returns a child after a request that ended with err.
func (p *Pool) release(c *child, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.tenant(c.tenant)
	delete(ts.busy, c)
	switch {
	case errors.Is(err, redo.ErrChildCrashed):
		p.metrics.crashes.Inc()
		p.noteCrashLocked(ts)
	case errors.Is(err, redo.ErrTimeout):
		p.metrics.timeouts.Inc()
	case err == nil:
		ts.crashes = 0
	}
	if p.closed || !c.Alive() {
		p.dropLocked(ts, c)
	} else {
		c.lastUsed = time.Now()
		ts.idle = append(ts.idle, c)
	}
	p.broadcast()
}

func (p *Pool) noteCrashLocked(ts *tenantSet) {
	ts.crashes++
	if ts.crashes < 2 {
		return // respawn at once: the retry is waiting
	}
	d := p.cfg.RespawnBackoffMin << min(ts.crashes-2, 20)
	d = min(d, p.cfg.RespawnBackoffMax)
	ts.notBefore = time.Now().Add(d)
}

// dropLocked forgets c and closes it in the background.
func (p *Pool) dropLocked(ts *tenantSet, c *child) {
	ts.live--
	p.live--
	p.setLiveGaugeLocked(c.tenant, ts)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := c.Close(p.cfg.CloseGrace); err != nil {
			p.log.Warn("closing walredo child", "tenant", c.tenant, "pid", c.PID(), "err", err)
		}
	}()
}

// evictIdleLocked stops the least recently used idle child of any tenant.
func (p *Pool) evictIdleLocked() {
	var victim *child
	var victimSet *tenantSet
	for _, ts := range p.tenants {
		if len(ts.idle) > 0 && (victim == nil || ts.idle[0].lastUsed.Before(victim.lastUsed)) {
			victim, victimSet = ts.idle[0], ts
		}
	}
	if victim == nil {
		return
	}
	victimSet.idle = victimSet.idle[1:]
	p.log.Debug("evicting idle walredo child for another tenant", "tenant", victim.tenant, "pid", victim.PID())
	p.dropLocked(victimSet, victim)
}

// reap stops idle children; owned by the pool, ends on Close.
func (p *Pool) reap(ctx context.Context) {
	defer p.wg.Done()
	every := min(max(p.cfg.IdleTimeout/4, 10*time.Millisecond), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.mu.Lock()
			for id, ts := range p.tenants {
				keep := ts.idle[:0]
				for _, c := range ts.idle {
					if now.Sub(c.lastUsed) >= p.cfg.IdleTimeout {
						p.log.Debug("stopping idle walredo child", "tenant", c.tenant, "pid", c.PID())
						p.dropLocked(ts, c)
					} else {
						keep = append(keep, c)
					}
				}
				clear(ts.idle[len(keep):])
				ts.idle = keep
				if ts.live == 0 && ts.crashes == 0 {
					delete(p.tenants, id)
				}
			}
			p.mu.Unlock()
		}
	}
}

// Close stops all children (killing those serving requests, whose callers
// get an error) and waits for the pool's goroutines.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for _, ts := range p.tenants {
		for _, c := range ts.idle {
			p.dropLocked(ts, c)
		}
		ts.idle = nil
		for c := range ts.busy {
			c.Kill()
		}
	}
	p.broadcast()
	// Busy children are dropped by release; wait until none is left so the
	// WaitGroup sees every closer before Wait.
	for p.live > 0 {
		wait := p.changed
		p.mu.Unlock()
		<-wait
		p.mu.Lock()
	}
	p.mu.Unlock()
	p.stopReaper()
	p.wg.Wait()
	return nil
}

// setLiveGaugeLocked publishes the tenant's child count, dropping the label
// when it reaches zero so departed tenants do not linger in /metrics.
func (p *Pool) setLiveGaugeLocked(tenant ids.TenantID, ts *tenantSet) {
	if ts.live == 0 {
		p.metrics.liveChildren.DeleteLabelValues(tenant.String())
		return
	}
	p.metrics.liveChildren.WithLabelValues(tenant.String()).Set(float64(ts.live))
}
