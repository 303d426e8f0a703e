package bridge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/services/safekeeper-bridge/timelines"
)

// registerMetrics registers the per-timeline metrics (strata_bridge_*,
// labelled tenant_id and timeline_id; see docs/bridge.md), read at scrape
// time so that timelines attached or detached at run time follow.
func registerMetrics(reg prometheus.Registerer, m *timelines.Manager) error {
	return reg.Register(timelines.NewCollector(m))
}
