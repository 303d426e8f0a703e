package bridge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/internal/lsn"
)

// registerMetrics exports one timeline's positions as gauges read at scrape
// time (no bookkeeping on the hot path).
func registerMetrics(reg prometheus.Registerer, tl *timeline) error {
	labels := prometheus.Labels{"tenant_id": tl.cfg.TenantID, "timeline_id": tl.cfg.TimelineID}
	rs, is := tl.streamer.Stats(), tl.sender.Stats()
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "bridge", Name: name, Help: help, ConstLabels: labels}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "strata", Subsystem: "bridge", Name: name, Help: help, ConstLabels: labels}, f)
	}
	l := func(a *lsn.AtomicLSN) func() float64 { return func() float64 { return float64(a.Load()) } }
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	collectors := []prometheus.Collector{
		gauge("received_lsn", "End of the WAL received from the primary.", l(&rs.ReceivedLSN)),
		gauge("primary_flush_lsn", "The primary's WAL end as it last reported.", l(&rs.PrimaryFlushLSN)),
		gauge("spooled_lsn", "Durable end of the WAL spool.", func() float64 { return float64(tl.spool.FlushLSN()) }),
		gauge("spool_start_lsn", "Oldest LSN still in the spool.", func() float64 { return float64(tl.spool.StartLSN()) }),
		gauge("sent_lsn", "End of the WAL sent to the pageserver.", l(&is.SentLSN)),
		gauge("last_record_lsn", "The pageserver's acknowledged last_record_lsn.", l(&is.LastRecordLSN)),
		gauge("disk_consistent_lsn", "The pageserver's acknowledged disk_consistent_lsn.", l(&is.DiskConsistentLSN)),
		gauge("slot_confirmed_lsn", "Flush position last confirmed to the primary's slot.", l(&rs.ReportedFlushLSN)),
		gauge("lag_bytes", "Bytes between the primary's WAL end and the pageserver's last_record_lsn.", func() float64 {
			return float64(rs.PrimaryFlushLSN.Load().Sub(is.LastRecordLSN.Load()))
		}),
		gauge("spool_lag_bytes", "Bytes between the spool's end and the pageserver's disk_consistent_lsn.", func() float64 {
			return float64(tl.spool.FlushLSN().Sub(is.DiskConsistentLSN.Load()))
		}),
		gauge("primary_connected", "1 while the replication stream is open.", func() float64 { return b2f(rs.Connected.Load()) }),
		gauge("pageserver_connected", "1 while the ingest stream is open.", func() float64 { return b2f(is.Connected.Load()) }),
		gauge("stopped", "1 when the timeline stopped on a permanent error (see logs / status).", func() float64 {
			tl.mu.Lock()
			defer tl.mu.Unlock()
			return b2f(tl.err != nil)
		}),
		counter("primary_reconnects_total", "Reconnects to the primary.", func() float64 { return float64(rs.Reconnects.Load()) }),
		counter("pageserver_reconnects_total", "Reconnects to the pageserver.", func() float64 { return float64(is.Reconnects.Load()) }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
