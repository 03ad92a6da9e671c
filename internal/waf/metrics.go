package waf

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// Results counted in rampart_waf_requests_total.
const (
	resultPass         = "pass"
	resultBlock        = "block"
	resultDetect       = "detect"
	resultBodyTooLarge = "body-too-large"
)

var (
	requestsTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_waf_requests_total",
		Help: "Requests inspected by the WAF, by result (pass, block, detect, body-too-large).",
	}, []string{"result"})
	inspectionSeconds = promauto.With(observe.Registry).NewHistogram(prometheus.HistogramOpts{
		Name:    "rampart_waf_inspection_seconds",
		Help:    "Time spent inspecting one request (and its response, when response inspection is on), upstream time excluded.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	})

	countPass         = requestsTotal.WithLabelValues(resultPass)
	countBlock        = requestsTotal.WithLabelValues(resultBlock)
	countDetect       = requestsTotal.WithLabelValues(resultDetect)
	countBodyTooLarge = requestsTotal.WithLabelValues(resultBodyTooLarge)
)
