package wire

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the connection-level metrics. A nil *Metrics records nothing.
type Metrics struct {
	connections  prometheus.Counter
	active       prometheus.Gauge
	rejections   *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	bytes        prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgproxy_connections_total", Help: "Client connections accepted.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgproxy_connections_active", Help: "Client connections open now.",
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgproxy_connection_rejections_total", Help: "Connections refused before start-up, by reason.",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgproxy_auth_failures_total", Help: "Authentication (bad or missing token) and authorisation (denied command) failures, by reason.",
		}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgproxy_bytes_out_total", Help: "Bytes written to clients.",
		}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.active, m.rejections, m.authFailures, m.bytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("wire: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) connOpened() {
	if m != nil {
		m.connections.Inc()
		m.active.Inc()
	}
}

func (m *Metrics) connClosed() {
	if m != nil {
		m.active.Dec()
	}
}

func (m *Metrics) rejected(reason string) {
	if m != nil {
		m.rejections.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) authFailure(reason string) {
	if m != nil {
		m.authFailures.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) bytesOut(n int) {
	if m != nil && n > 0 {
		m.bytes.Add(float64(n))
	}
}
