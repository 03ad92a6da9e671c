package observe

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the process-wide Prometheus registry served on the admin
// listener's /metrics. Stages register their own collectors here with
// promauto.With(observe.Registry).
var Registry = prometheus.NewRegistry()

// Metrics are the series shared by the pipeline. Label values are always
// drawn from small fixed sets (stage names, configured hosts), never from
// client input, so the number of series stays bounded.
var Metrics = struct {
	Requests        *prometheus.CounterVec
	Refusals        *prometheus.CounterVec
	Duration        *prometheus.HistogramVec
	Upstream        *prometheus.CounterVec
	TLSHandshakes   *prometheus.CounterVec
	ConfigInfo      *prometheus.GaugeVec
	ConfigReloads   *prometheus.CounterVec
	OpenConnections prometheus.Gauge
}{
	Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_requests_total", Help: "Requests answered, by site and status class.",
	}, []string{"site", "code"}),
	Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_refusals_total", Help: "Requests and connections refused, by pipeline stage and reason.",
	}, []string{"stage", "reason"}),
	Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rampart_request_duration_seconds", Help: "Time from request head to response end.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"site"}),
	Upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_upstream_requests_total", Help: "Requests sent upstream, by target and outcome.",
	}, []string{"target", "outcome"}),
	TLSHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_tls_handshakes_total", Help: "TLS handshakes, by negotiated version and result.",
	}, []string{"version", "result"}),
	ConfigInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rampart_config_info", Help: "1 for the config in effect, labelled with its sha256; compare across instances to spot drift.",
	}, []string{"sha256"}),
	ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_config_reloads_total", Help: "Config reloads, by result.",
	}, []string{"result"}),
	OpenConnections: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rampart_open_connections", Help: "Client connections currently open.",
	}),
}

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		Metrics.Requests, Metrics.Refusals, Metrics.Duration, Metrics.Upstream,
		Metrics.TLSHandshakes, Metrics.ConfigInfo, Metrics.ConfigReloads, Metrics.OpenConnections,
	)
}
