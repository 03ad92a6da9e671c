package cache

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"sync/atomic"
)

// Registry is the set of stores by site that the admin API works on. The
// set is swapped whole (Set) when a config reload builds new stores, so the
// admin handler always sees the stores in effect.
type Registry struct {
	stores atomic.Pointer[map[string]*Store]
}

// Set makes stores, keyed by site, the set in effect. The map is copied.
func (g *Registry) Set(stores map[string]*Store) {
	m := maps.Clone(stores)
	if m == nil {
		m = map[string]*Store{}
	}
	g.stores.Store(&m)
}

// Get returns the store of site, or nil.
func (g *Registry) Get(site string) *Store {
	if m := g.stores.Load(); m != nil {
		return (*m)[site]
	}
	return nil
}

// Sites returns the sites with a store, sorted.
func (g *Registry) Sites() []string {
	m := g.stores.Load()
	if m == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(*m))
}

// NewAdmin returns the admin endpoints for a fixed set of stores; see
// Registry.Handler.
func NewAdmin(stores map[string]*Store) http.Handler {
	g := &Registry{}
	g.Set(stores)
	return g.Handler()
}

// Handler serves the admin endpoints, answering in JSON:
//
//	GET  /cache/stats[?site=S]              {"sites":[Stats...]}
//	POST /cache/purge?site=S                 empty the site's store
//	POST /cache/purge?site=S&prefix=/desktop/  drop keys under a prefix
//	POST /cache/purge?site=S&key=/a.js?v=1   drop one URL (all its variants)
//
// A purge answers {"site":S,"purged":N}, N counting stored responses
// (a URL with two Accept-Encoding variants counts 2). It belongs on the admin listener
// only, never on a public one.
func (g *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cache/stats":
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeJSON(w, http.StatusMethodNotAllowed, errorBody("use GET"))
				return
			}
			g.stats(w, r)
		case "/cache/purge":
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", "POST")
				writeJSON(w, http.StatusMethodNotAllowed, errorBody("use POST"))
				return
			}
			g.purge(w, r)
		default:
			writeJSON(w, http.StatusNotFound, errorBody("not found"))
		}
	})
}

func (g *Registry) stats(w http.ResponseWriter, r *http.Request) {
	sites := g.Sites()
	if site := r.URL.Query().Get("site"); site != "" {
		if g.Get(site) == nil {
			writeJSON(w, http.StatusNotFound, errorBody("no cache for site "+site))
			return
		}
		sites = []string{site}
	}
	out := struct {
		Sites []Stats `json:"sites"`
	}{Sites: make([]Stats, 0, len(sites))}
	for _, site := range sites {
		out.Sites = append(out.Sites, g.Get(site).Stats())
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Registry) purge(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	site, prefix, key := q.Get("site"), q.Get("prefix"), q.Get("key")
	_, hasPrefix := q["prefix"]
	_, hasKey := q["key"]
	switch {
	case site == "":
		writeJSON(w, http.StatusBadRequest, errorBody("site is required"))
		return
	case hasPrefix && hasKey:
		writeJSON(w, http.StatusBadRequest, errorBody("give prefix or key, not both"))
		return
	case hasKey && key == "":
		writeJSON(w, http.StatusBadRequest, errorBody("key is empty"))
		return
	}
	s := g.Get(site)
	if s == nil {
		writeJSON(w, http.StatusNotFound, errorBody("no cache for site "+site))
		return
	}
	var n int
	if hasKey {
		n = s.purgeKey(key)
	} else {
		n = s.Purge(prefix)
	}
	writeJSON(w, http.StatusOK, struct {
		Site   string `json:"site"`
		Purged int    `json:"purged"`
	}{site, n})
}

func errorBody(msg string) any {
	return struct {
		Error string `json:"error"`
	}{msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
