package pagecache

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the per-kind counters resolved once, so the hot path does
// one atomic add and no label lookup.
type metrics struct {
	hits, misses, evictions [numKinds]prometheus.Counter
	allPinned               prometheus.Counter
}

func newMetrics(c *Cache, reg prometheus.Registerer) (*metrics, error) {
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_pagecache_hits_total",
		Help: "Page cache lookups that found a valid page, by mapping kind.",
	}, []string{"kind"})
	misses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_pagecache_misses_total",
		Help: "Page cache lookups that found no valid page, by mapping kind.",
	}, []string{"kind"})
	evictions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_pagecache_evictions_total",
		Help: "Pages evicted by the clock, by the mapping kind of the evicted page.",
	}, []string{"kind"})
	allPinned := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_pagecache_all_pinned_total",
		Help: "Slot allocations that failed because every slot was pinned.",
	})
	pinned := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_pagecache_slots_pinned",
		Help: "Slots pinned by at least one guard (computed at scrape time).",
	}, func() float64 { return float64(c.pinnedSlots()) })
	slots := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_pagecache_slots",
		Help: "Slots in the page cache (8 KiB each).",
	}, func() float64 { return float64(len(c.slots)) })

	m := &metrics{allPinned: allPinned}
	for k := Kind(1); k < numKinds; k++ {
		m.hits[k] = hits.WithLabelValues(k.String())
		m.misses[k] = misses.WithLabelValues(k.String())
		m.evictions[k] = evictions.WithLabelValues(k.String())
	}
	if reg != nil {
		var errs []error
		for _, col := range []prometheus.Collector{hits, misses, evictions, allPinned, pinned, slots} {
			if err := reg.Register(col); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("pagecache: register metrics: %w", err)
		}
	}
	return m, nil
}
