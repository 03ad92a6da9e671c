package pipeline

import (
	"github.com/rampart-proxy/rampart/internal/cache"
	"github.com/rampart-proxy/rampart/internal/state"
)

// Shared is what outlives a config reload: the state store (a reload must
// not lift bans or refill rate limits) and the per-site caches (a reload
// must not empty them). The server creates it once.
type Shared struct {
	Store  state.Store
	Caches cache.Registry
}

// cacheFor returns the cache of a site, keeping the one that served the
// same host before the reload.
func (sh *Shared) cacheFor(host string, budget int64, next map[string]*cache.Store) *cache.Store {
	if c := sh.Caches.Get(host); c != nil {
		next[host] = c
		return c
	}
	c := cache.NewStore(host, budget)
	next[host] = c
	return c
}
