// Package admin is the operator's listener (loopback by default): health,
// Prometheus metrics and the operator APIs that stages add (bans, cache
// purge). It never shares a port with public traffic.
package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// Handler returns the admin mux. extra maps path prefixes to the stages'
// operator APIs.
func Handler(extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(observe.Registry, promhttp.HandlerOpts{}))
	for p, h := range extra {
		mux.Handle(p, h)
	}
	return mux
}
