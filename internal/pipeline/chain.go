package pipeline

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"

	"github.com/rampart-proxy/rampart/internal/auth"
	"github.com/rampart-proxy/rampart/internal/cache"
	"github.com/rampart-proxy/rampart/internal/clientip"
	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/ratelimit"
	"github.com/rampart-proxy/rampart/internal/reqrules"
	"github.com/rampart-proxy/rampart/internal/waf"
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
	auths    *auth.Set
	caches   map[string]*cache.Store
	sites    []*site // every site, upstream built, for fetching signing keys
}

func newBuilder(cfg *config.Config, shared *Shared) (*builder, error) {
	b := &builder{cfg: cfg, shared: shared, wafs: waf.NewSet(), auths: auth.NewSet(), caches: map[string]*cache.Store{}}
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
	var bans, limit, rules, authn, firewall, edgeCache, sockets stage

	if s.guard != nil {
		bans = func(next http.Handler) (http.Handler, error) { return s.guard.Handler(next), nil }
	}

	class := s.conf.RateLimit
	if rc.RateLimit != "" {
		class = rc.RateLimit
	}
	if class != config.RateLimitOff {
		limit = func(next http.Handler) (http.Handler, error) { return b.limiter.Handler(class, next) }
	}

	if rl := reqrules.Merge(s.conf.RequireHeader, rc.RequireHeader); len(rl) > 0 {
		compiled, err := reqrules.New(rl)
		if err != nil {
			return nil, fmt.Errorf("require_header: %w", err)
		}
		rules = func(next http.Handler) (http.Handler, error) { return compiled.Handler(next), nil }
	}

	if acfg := b.cfg.AuthFor(s.index, ri); acfg.Kind != auth.KindOff {
		a, err := b.auths.Get(s.conf.Host, acfg, auth.Deps{
			Verify:    b.verifier(s, acfg.VerifyURL),
			FetchKeys: b.fetchKeys,
			BaseDir:   filepath.Dir(b.cfg.File),
		})
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		authn = func(next http.Handler) (http.Handler, error) { return a.Handler(next), nil }
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
		disk := cache.DiskConfig{Budget: int64(s.conf.CacheDiskSize), MaxObject: int64(s.conf.CacheDiskMaxObject)}
		store := b.shared.cacheFor(s.conf.Host, int64(s.conf.CacheSize), disk, b.caches)
		cc := *rc.Cache
		edgeCache = func(next http.Handler) (http.Handler, error) { return store.Handler(cc, next), nil }
	}

	if rc.WebSocket {
		caps := b.shared.wsRoute(s.conf.Host, s.conf.MaxWebSockets, rt.desc, rc.MaxWebSockets, rc.MaxWebSocketsPerClient)
		idle := rc.WebSocketIdleTimeout.D()
		sockets = func(next http.Handler) (http.Handler, error) {
			return caps.Handler(idle, next), nil
		}
	}

	identity := func(next http.Handler) (http.Handler, error) { return b.resolver.Handler(next), nil }
	stages := []stage{
		identity,  // 6. client identity
		bans,      // 7. ban check (and failure counting on the way back)
		limit,     // 8. rate limit
		rules,     //    request rules (require_header)
		authn,     //    edge authentication
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

// verifier checks Basic credentials with one GET to path on the site's own
// upstream.
func (b *builder) verifier(s *site, path string) func(ctx context.Context, authHeader string) (int, error) {
	return func(ctx context.Context, authHeader string) (int, error) {
		resp, err := s.upstream.Get(ctx, path, http.Header{"Authorization": {authHeader}})
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return resp.StatusCode, nil
	}
}

// fetchKeys fetches signing keys from a URL served by a configured
// upstream: rampart has no other way out.
func (b *builder) fetchKeys(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	for _, s := range b.sites {
		if s.upstream.Serves(u.Host) {
			resp, err := s.upstream.Get(ctx, u.RequestURI(), nil)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("keys_url %s: status %d", raw, resp.StatusCode)
			}
			return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		}
	}
	return nil, fmt.Errorf("keys_url %s is not served by any configured upstream target; rampart connects only to upstreams", raw)
}
