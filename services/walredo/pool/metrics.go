package pool

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/services/walredo/redo"
)

// metrics of one pool. They register on the registry passed in Config
// (design D10: never the global one); with none they are kept but unexposed.
type metrics struct {
	requests       *prometheus.CounterVec // by result
	recordsApplied prometheus.Counter
	latency        prometheus.Histogram
	spawns         prometheus.Counter
	crashes        prometheus.Counter
	timeouts       prometheus.Counter
	liveChildren   *prometheus.GaugeVec // by tenant
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_walredo_requests_total",
			Help: "Apply requests by result (ok, record_error, crash, timeout, invalid, other).",
		}, []string{"result"}),
		recordsApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_walredo_records_applied_total",
			Help: "WAL records in successful Apply requests.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_walredo_request_duration_seconds",
			Help:    "Apply request latency, retries and child start-up included.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 14), // 10 µs … ~1.5 min
		}),
		spawns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_walredo_child_spawns_total",
			Help: "Children started.",
		}),
		crashes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_walredo_child_crashes_total",
			Help: "Children that died while serving a request or failed to start.",
		}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_walredo_child_timeouts_total",
			Help: "Children killed because a request ran past its deadline.",
		}),
		liveChildren: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_walredo_live_children",
			Help: "Children alive or starting, per tenant.",
		}, []string{"tenant"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.recordsApplied, m.latency, m.spawns, m.crashes, m.timeouts, m.liveChildren} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func resultLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, redo.ErrRecordFailed):
		return "record_error"
	case errors.Is(err, redo.ErrChildCrashed):
		return "crash"
	case errors.Is(err, redo.ErrTimeout):
		return "timeout"
	case errors.Is(err, redo.ErrInvalidRequest):
		return "invalid"
	default:
		return "other"
	}
}
