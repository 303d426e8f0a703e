package timelines

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports every attached timeline's status as metrics, read at
// scrape time from Manager.List (no bookkeeping on the hot path; timelines
// attached or detached at run time appear and disappear).
type Collector struct {
	m *Manager
}

// NewCollector returns the manager's metrics collector.
func NewCollector(m *Manager) *Collector { return &Collector{m: m} }

type metricDesc struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Status) float64
}

var labels = []string{"tenant_id", "timeline_id"}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("strata_bridge_"+name, help, labels, nil)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var metricDescs = []metricDesc{
	{desc("received_lsn", "End of the WAL received from the primary."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.ReceivedLSN) }},
	{desc("primary_flush_lsn", "The primary's WAL end as it last reported."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.PrimaryFlushLSN) }},
	{desc("spooled_lsn", "Durable end of the WAL spool."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.SpooledLSN) }},
	{desc("spool_start_lsn", "Oldest LSN still in the spool."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.SpoolStartLSN) }},
	{desc("sent_lsn", "End of the WAL sent to the pageserver."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.SentLSN) }},
	{desc("last_record_lsn", "The pageserver's acknowledged last_record_lsn."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.LastRecordLSN) }},
	{desc("disk_consistent_lsn", "The pageserver's acknowledged disk_consistent_lsn."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.DiskConsistentLSN) }},
	{desc("slot_confirmed_lsn", "Flush position last confirmed to the primary's slot."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.ReportedFlushLSN) }},
	{desc("lag_bytes", "Bytes between the primary's WAL end and the pageserver's last_record_lsn."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.LagBytes) }},
	{desc("lag_seconds", "Age of the oldest WAL the primary had flushed that the pageserver has not ingested (0 when caught up)."), prometheus.GaugeValue, func(s Status) float64 { return s.Lag.Seconds() }},
	{desc("spool_lag_bytes", "Bytes between the spool's end and the pageserver's disk_consistent_lsn."), prometheus.GaugeValue, func(s Status) float64 { return float64(s.SpooledLSN.Sub(s.DiskConsistentLSN)) }},
	{desc("primary_connected", "1 while the replication stream is open."), prometheus.GaugeValue, func(s Status) float64 { return b2f(s.PrimaryConnected) }},
	{desc("pageserver_connected", "1 while the ingest stream is open."), prometheus.GaugeValue, func(s Status) float64 { return b2f(s.PageserverConnected) }},
	{desc("importing", "1 while the base backup import runs."), prometheus.GaugeValue, func(s Status) float64 { return b2f(s.State == StateImporting) }},
	{desc("stopped", "1 when the timeline stopped on a permanent error (see status)."), prometheus.GaugeValue, func(s Status) float64 { return b2f(s.Err != nil) }},
	{desc("reconnects_total", "Reconnects to the primary and to the pageserver."), prometheus.CounterValue, func(s Status) float64 { return float64(s.Reconnects) }},
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range metricDescs {
		ch <- d.desc
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.m.List() {
		for _, d := range metricDescs {
			ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.value(s), s.TenantID, s.TimelineID)
		}
	}
}
