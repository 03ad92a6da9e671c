package cache

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// The site label is always a configured host (the store's site), never a
// value taken from the request, so the number of series stays bounded.
var (
	requestsTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_cache_requests_total",
		Help: "Requests on cached routes, by site and result (hit, miss, stale, bypass).",
	}, []string{"site", "result"})
	revalidationsTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_cache_revalidations_total",
		Help: "Conditional requests sent upstream for stale entries, by site and result (304, 200, error).",
	}, []string{"site", "result"})
	staleServedTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_cache_stale_served_total",
		Help: "Stale entries served without a successful validation (stale-while-revalidate, stale-if-error).",
	}, []string{"site"})
	bytesGauge = promauto.With(observe.Registry).NewGaugeVec(prometheus.GaugeOpts{
		Name: "rampart_cache_bytes",
		Help: "Bytes held by the cache (bodies, headers and per-entry overhead), by site.",
	}, []string{"site"})
	evictionsTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_cache_evictions_total",
		Help: "Entries evicted to stay within the byte budget, by site.",
	}, []string{"site"})
	diskBytesGauge = promauto.With(observe.Registry).NewGaugeVec(prometheus.GaugeOpts{
		Name: "rampart_cache_disk_bytes",
		Help: "Bytes of body files held by the cache's disk tier, by site.",
	}, []string{"site"})
	diskEvictionsTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_cache_disk_evictions_total",
		Help: "Entries evicted to keep the disk tier within cache_disk_size, by site.",
	}, []string{"site"})
	diskWriteErrorsTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_cache_disk_write_errors_total",
		Help: "Responses not stored because writing their body file failed (ENOSPC, EIO, permissions), by site.",
	}, []string{"site"})
)

// storeMetrics are the series of one store, resolved once so that the
// request path does no label lookup.
type storeMetrics struct {
	hit, miss, stale, bypass     prometheus.Counter
	reval304, reval200, revalErr prometheus.Counter
	staleServed                  prometheus.Counter
	bytes                        prometheus.Gauge
	evictions                    prometheus.Counter
	diskBytes                    prometheus.Gauge
	diskEvictions, diskErrors    prometheus.Counter
}

func newStoreMetrics(site string) storeMetrics {
	return storeMetrics{
		hit:         requestsTotal.WithLabelValues(site, "hit"),
		miss:        requestsTotal.WithLabelValues(site, "miss"),
		stale:       requestsTotal.WithLabelValues(site, "stale"),
		bypass:      requestsTotal.WithLabelValues(site, "bypass"),
		reval304:    revalidationsTotal.WithLabelValues(site, "304"),
		reval200:    revalidationsTotal.WithLabelValues(site, "200"),
		revalErr:    revalidationsTotal.WithLabelValues(site, "error"),
		staleServed: staleServedTotal.WithLabelValues(site),
		bytes:       bytesGauge.WithLabelValues(site),
		evictions:   evictionsTotal.WithLabelValues(site),

		diskBytes:     diskBytesGauge.WithLabelValues(site),
		diskEvictions: diskEvictionsTotal.WithLabelValues(site),
		diskErrors:    diskWriteErrorsTotal.WithLabelValues(site),
	}
}
