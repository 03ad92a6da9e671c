package pipeline

import (
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/rampart-proxy/rampart/internal/cache"
	"github.com/rampart-proxy/rampart/internal/clientip"
	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/ratelimit"
	"github.com/rampart-proxy/rampart/internal/waf"
	"github.com/rampart-proxy/rampart/internal/wscap"
)

// stage wraps the rest of a route's chain.
type stage = func(next http.Handler) (http.Handler, error)

// builder holds what one config load shares between its routes.
type builder struct {
	cfg      *config.Config
	shared   *Shared
	resolver *clientip.Resolver
	limiter  *ratelimit.Limiter
	wafs     *waf.Set
	caches   map[string]*cache.Store
}

func newBuilder(cfg *config.Config, shared *Shared) (*builder, error) {
	b := &builder{cfg: cfg, shared: shared, wafs: waf.NewSet(), caches: map[string]*cache.Store{}}
	var err error
	if b.resolver, err = clientip.New(cfg.Stages.Config); err != nil {
		return nil, err
	}
	if b.limiter, err = ratelimit.New(shared.Store, cfg.RateLimits); err != nil {
		return nil, err
	}
	return b, nil
}

// routeChain builds stages 6–11 for one route, in pipeline order: the list
// reads top to bottom in the order a request passes the stages. A stage
// that the config switches off for this route is nil and skipped.
func (b *builder) routeChain(s *site, ri int, rt *routeEntry) (http.Handler, error) {
	rc := rt.conf
	var limit, firewall, edgeCache, sockets stage

	class := s.conf.RateLimit
	if rc.RateLimit != "" {
		class = rc.RateLimit
	}
	if class != config.RateLimitOff {
		limit = func(next http.Handler) (http.Handler, error) { return b.limiter.Handler(class, next) }
	}

	wcfg := b.cfg.WAFFor(s.index, ri)
	if wcfg.Mode != waf.ModeOff {
		w, err := b.wafs.Get(wcfg, filepath.Dir(b.cfg.File))
		if err != nil {
			return nil, fmt.Errorf("waf: %w", err)
		}
		firewall = func(next http.Handler) (http.Handler, error) { return w.Handler(next), nil }
	}

	if rc.Cache != nil && rc.Cache.Enabled {
		store := b.shared.cacheFor(s.conf.Host, int64(s.conf.CacheSize), b.caches)
		cc := *rc.Cache
		edgeCache = func(next http.Handler) (http.Handler, error) { return store.Handler(cc, next), nil }
	}

	if rc.WebSocket {
		caps := b.shared.wsRoute(s.conf.Host, s.conf.MaxWebSockets, rt.desc, rc.MaxWebSockets, rc.MaxWebSocketsPerClient)
		idle := rc.WebSocketIdleTimeout.D()
		sockets = func(next http.Handler) (http.Handler, error) {
			return caps.Handler(wscap.IdleTimeoutHandler(idle, next)), nil
		}
	}

	identity := func(next http.Handler) (http.Handler, error) { return b.resolver.Handler(next), nil }
	stages := []stage{
		identity,  // 6. client identity
		limit,     // 8. rate limit
		firewall,  // 9. WAF
		edgeCache, // 10. cache
		sockets,   // 11. WebSocket caps and idle timeout
	}
	var h http.Handler = s.upstream // 11. proxy
	for i := len(stages) - 1; i >= 0; i-- {
		if stages[i] == nil {
			continue
		}
		var err error
		if h, err = stages[i](h); err != nil {
			return nil, err
		}
	}
	return h, nil
}
