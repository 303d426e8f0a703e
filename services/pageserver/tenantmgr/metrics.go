package tenantmgr

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports every timeline's LSNs and layer files at scrape time
// (so timelines created or deleted at run time appear and disappear):
//
//	strata_pageserver_last_record_lsn{tenant_id,timeline_id}
//	strata_pageserver_disk_consistent_lsn{tenant_id,timeline_id}
//	strata_pageserver_ingest_lag_bytes{tenant_id,timeline_id}   last_record - disk_consistent
//	strata_pageserver_layer_files{tenant_id,timeline_id}
//	strata_pageserver_layer_bytes{tenant_id,timeline_id}
//	strata_pageserver_newest_image_lsn{tenant_id,timeline_id}
//	strata_pageserver_deltas_above_image{tenant_id,timeline_id}
//	strata_pageserver_gc_cutoff_lsn{tenant_id,timeline_id}
//	strata_pageserver_timelines{state}
type Collector struct {
	m *Manager

	lastRecord, diskConsistent, unflushed, layerFiles, layerBytes, newestImage, deltasAbove, gcCutoff, timelines *prometheus.Desc
}

// NewCollector returns the collector for m; register it on the service's
// registry.
func NewCollector(m *Manager) *Collector {
	labels := []string{"tenant_id", "timeline_id"}
	return &Collector{
		m:              m,
		lastRecord:     prometheus.NewDesc("strata_pageserver_last_record_lsn", "End LSN of the last whole WAL record ingested (readable).", labels, nil),
		diskConsistent: prometheus.NewDesc("strata_pageserver_disk_consistent_lsn", "LSN up to which everything is in fsynced layer files.", labels, nil),
		unflushed:      prometheus.NewDesc("strata_pageserver_ingest_lag_bytes", "WAL bytes ingested but not yet in layer files (last_record_lsn - disk_consistent_lsn).", labels, nil),
		layerFiles:     prometheus.NewDesc("strata_pageserver_layer_files", "Number of layer files of the timeline.", labels, nil),
		layerBytes:     prometheus.NewDesc("strata_pageserver_layer_bytes", "Total size of the timeline's layer files.", labels, nil),
		newestImage:    prometheus.NewDesc("strata_pageserver_newest_image_lsn", "LSN of the timeline's newest image layer (0: none of its own); reads at or above it start from an image.", labels, nil),
		deltasAbove:    prometheus.NewDesc("strata_pageserver_deltas_above_image", "Delta layer files above the newest image layer; compaction runs at image_creation_threshold.", labels, nil),
		gcCutoff:       prometheus.NewDesc("strata_pageserver_gc_cutoff_lsn", "GC cutoff of the timeline: reads and branch points below it are refused.", labels, nil),
		timelines:      prometheus.NewDesc("strata_pageserver_timelines", "Number of timelines by state.", []string{"state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lastRecord, c.diskConsistent, c.unflushed, c.layerFiles, c.layerBytes, c.newestImage, c.deltasAbove, c.gcCutoff, c.timelines} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	states := map[string]int{StateActive: 0, StateBroken: 0}
	for _, t := range c.m.ListTenants() {
		tls, err := c.m.ListTimelines(t.ID)
		if err != nil {
			continue
		}
		for _, ti := range tls {
			states[ti.State]++
			if ti.State != StateActive {
				continue
			}
			l := []string{ti.TenantID.String(), ti.TimelineID.String()}
			ch <- prometheus.MustNewConstMetric(c.lastRecord, prometheus.GaugeValue, float64(ti.LastRecordLSN), l...)
			ch <- prometheus.MustNewConstMetric(c.diskConsistent, prometheus.GaugeValue, float64(ti.DiskConsistentLSN), l...)
			ch <- prometheus.MustNewConstMetric(c.unflushed, prometheus.GaugeValue, float64(ti.LastRecordLSN.Sub(ti.DiskConsistentLSN)), l...)
			ch <- prometheus.MustNewConstMetric(c.layerFiles, prometheus.GaugeValue, float64(ti.LayerFileCount), l...)
			ch <- prometheus.MustNewConstMetric(c.layerBytes, prometheus.GaugeValue, float64(ti.LayerFileBytes), l...)
			ch <- prometheus.MustNewConstMetric(c.newestImage, prometheus.GaugeValue, float64(ti.NewestImageLSN), l...)
			ch <- prometheus.MustNewConstMetric(c.deltasAbove, prometheus.GaugeValue, float64(ti.DeltasAboveImage), l...)
			ch <- prometheus.MustNewConstMetric(c.gcCutoff, prometheus.GaugeValue, float64(ti.GCCutoffLSN), l...)
		}
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(c.timelines, prometheus.GaugeValue, float64(n), state)
	}
}
