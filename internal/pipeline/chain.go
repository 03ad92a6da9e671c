package pipeline

import (
	"net/http"

	"github.com/rampart-proxy/rampart/internal/config"
)

// stage wraps the rest of a route's chain.
type stage = func(next http.Handler) http.Handler

// routeChain builds stages 6–11 for one route, in pipeline order: the list
// below reads top to bottom in the order a request passes the stages.
// A stage that the config switches off for this route is nil and skipped.
func routeChain(cfg *config.Config, s *site, rt *routeEntry) (http.Handler, error) {
	stages := []stage{
		// 6. client identity — the TCP peer, set in ServeHTTP, until
		//    trusted proxies are configured.
	}
	var h http.Handler = s.upstream // 11. proxy
	for i := len(stages) - 1; i >= 0; i-- {
		if stages[i] != nil {
			h = stages[i](h)
		}
	}
	return h, nil
}
