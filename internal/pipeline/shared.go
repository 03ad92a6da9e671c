package pipeline

import (
	"github.com/rampart-proxy/rampart/internal/cache"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/wscap"
)

// Shared is what outlives a config reload: the state store (a reload must
// not lift bans or refill rate limits) and the per-site caches (a reload
// must not empty them). The server creates it once.
type Shared struct {
	Store  state.Store
	Caches cache.Registry
	// CacheDir is the cache_dir the process started with: the disk tier of
	// the caches, if set. It is taken once (a reload cannot move it) and
	// only by the server, which opens it once it runs as its own user: a
	// pipeline built to check a config leaves it nil and touches no disk.
	CacheDir *cache.Dir

	// WebSocket counters: open sockets stay counted across reloads.
	wsSites  map[string]*wscap.Site
	wsRoutes map[string]*wscap.Route
}

// wsRoute returns the WebSocket caps of a route, updated to the new limits
// and keeping the counts of sockets already open.
func (sh *Shared) wsRoute(host string, siteMax int, route string, max, perClient int) *wscap.Route {
	if sh.wsSites == nil {
		sh.wsSites, sh.wsRoutes = map[string]*wscap.Site{}, map[string]*wscap.Route{}
	}
	site := sh.wsSites[host]
	if site == nil {
		site = wscap.NewSite(siteMax).Named(host)
		sh.wsSites[host] = site
	}
	site.Update(siteMax)
	key := host + " " + route
	r := sh.wsRoutes[key]
	if r == nil {
		r = site.Route(max, perClient)
		sh.wsRoutes[key] = r
	}
	r.Update(max, perClient)
	return r
}

// cacheFor returns the cache of a site, keeping the one that served the
// same host before the reload.
func (sh *Shared) cacheFor(host string, budget int64, disk cache.DiskConfig, next map[string]*cache.Store) *cache.Store {
	if c := next[host]; c != nil {
		return c
	}
	if c := sh.Caches.Get(host); c != nil {
		next[host] = c
		return c
	}
	disk.Dir = sh.CacheDir
	c := cache.NewDiskStore(host, budget, disk)
	next[host] = c
	return c
}

// setCaches makes next the caches in effect and closes those of the sites
// the new config no longer has, which deletes their body files.
func (sh *Shared) setCaches(next map[string]*cache.Store) {
	var dropped []*cache.Store
	for _, host := range sh.Caches.Sites() {
		if c := sh.Caches.Get(host); next[host] != c {
			dropped = append(dropped, c)
		}
	}
	sh.Caches.Set(next)
	for _, c := range dropped {
		c.Close()
	}
}
