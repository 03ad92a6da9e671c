package state

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
)

var (
	storeUp = promauto.With(observe.Registry).NewGauge(prometheus.GaugeOpts{
		Name: "rampart_state_store_up",
		Help: "1 while the configured state store (memory or Redis) is in use, 0 while Redis is down and the failure policy applies.",
	})
	storeTransitions = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_state_store_transitions_total",
		Help: "Times the shared state store was marked down or up again.",
	}, []string{"to"})
)
