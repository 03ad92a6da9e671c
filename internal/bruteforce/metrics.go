package bruteforce

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
)

var (
	bansTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_bans_total",
		Help: "Bans set, by kind: ip and user (brute force), manual (admin API).",
	}, []string{"kind"})
	failuresTotal = promauto.With(observe.Registry).NewCounter(prometheus.CounterOpts{
		Name: "rampart_bruteforce_failures_total",
		Help: "Failed logins counted towards bans.",
	})
	syslogErrors = promauto.With(observe.Registry).NewCounter(prometheus.CounterOpts{
		Name: "rampart_bruteforce_syslog_errors_total",
		Help: "Ban notices that could not be sent to syslog (unreachable, or too many in flight).",
	})
)
