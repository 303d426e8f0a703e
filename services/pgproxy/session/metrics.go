package session

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets span a cache-hit GetPage (tens of µs) to a long LSN wait.
var latencyBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5, 30, 300}

// Metrics are the command and pagestream metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	commands  *prometheus.CounterVec
	requests  *prometheus.CounterVec
	endToEnd  *prometheus.HistogramVec
	upstreamD *prometheus.HistogramVec
	batch     prometheus.Histogram
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgproxy_commands_total", Help: "Simple-query commands, by command and outcome (ok, denied, error).",
		}, []string{"command", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgproxy_pagestream_requests_total", Help: "Pagestream requests, by type and outcome (ok, error).",
		}, []string{"type", "outcome"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pgproxy_pagestream_request_seconds", Help: "Pagestream request latency from decoding the request to writing its response.",
			Buckets: latencyBuckets,
		}, []string{"type"}),
		upstreamD: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pgproxy_upstream_seconds", Help: "Pageserver part of the latency, by RPC (GetPages: from sending a batch to its response).",
			Buckets: latencyBuckets,
		}, []string{"rpc"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pgproxy_getpages_batch_blocks", Help: "Blocks per GetPagesRequest (consecutive GetPage requests of one relation and LSN are folded).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
	}
	for _, c := range []prometheus.Collector{m.commands, m.requests, m.endToEnd, m.upstreamD, m.batch} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("session: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) command(name, outcome string) {
	if m != nil {
		m.commands.WithLabelValues(name, outcome).Inc()
	}
}

func (m *Metrics) upstream(rpc string, start time.Time) {
	if m != nil {
		m.upstreamD.WithLabelValues(rpc).Observe(time.Since(start).Seconds())
	}
}

func (m *Metrics) request(typ string, ok bool, start time.Time) {
	if m == nil {
		return
	}
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.requests.WithLabelValues(typ, outcome).Inc()
	m.endToEnd.WithLabelValues(typ).Observe(time.Since(start).Seconds())
}

func (m *Metrics) batchSize(n int) {
	if m != nil {
		m.batch.Observe(float64(n))
	}
}
