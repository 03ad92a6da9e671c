package config

import (
	"path/filepath"
	"time"

	"github.com/rampart-proxy/rampart/internal/auth"
	"github.com/rampart-proxy/rampart/internal/bruteforce"
	"github.com/rampart-proxy/rampart/internal/cache"
	"github.com/rampart-proxy/rampart/internal/clientip"
	"github.com/rampart-proxy/rampart/internal/ratelimit"
	"github.com/rampart-proxy/rampart/internal/reqrules"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/units"
	"github.com/rampart-proxy/rampart/internal/waf"
)

// Stages holds the top-level keys read by stages 6–10; each type is
// documented in its stage's package README.
type Stages struct {
	clientip.Config `yaml:",inline"`           // trusted_proxies, client_ip, exempt
	RateLimits      map[string]ratelimit.Class `yaml:"rate_limits"` // named classes; "default" and "login" exist unless redefined
	State           state.Config               `yaml:"state"`       // memory (default) or redis
	// CacheDir is where the sites' caches keep the bodies too large for
	// memory (their cache_disk_size); absolute; none by default.
	CacheDir string `yaml:"cache_dir"`
}

// SiteStages are a site's keys for stages 7–11.
type SiteStages struct {
	RateLimit     string         `yaml:"rate_limit"`     // class name; default "default"; "off" disables
	MaxWebSockets int            `yaml:"max_websockets"` // whole site; 0 = no site-wide cap
	WAF           *waf.Config    `yaml:"waf"`            // default: block, paranoia 1
	CacheSize     units.ByteSize `yaml:"cache_size"`     // memory budget of the site's cache; default 64MiB
	// CacheDiskSize is the disk budget of the site's cache under cache_dir
	// (bodies larger than the memory tier's largest object); 0, the
	// default, keeps none on disk.
	CacheDiskSize units.ByteSize `yaml:"cache_disk_size"`
	// CacheDiskMaxObject is the largest body kept on disk; default 256MiB
	// or cache_disk_size/4, whichever is smaller.
	CacheDiskMaxObject units.ByteSize `yaml:"cache_disk_max_object"`
	// BruteForce bans clients (and user names) after repeated
	// authentication failures; on with its defaults when left out.
	BruteForce    *bruteforce.Config `yaml:"brute_force"`
	Auth          *auth.Config       `yaml:"auth"`           // edge authentication; off when left out
	RequireHeader reqrules.Config    `yaml:"require_header"` // request rules on headers
}

// RouteStages are a route's overrides for stages 8–11.
type RouteStages struct {
	RateLimit              string             `yaml:"rate_limit"`
	MaxWebSockets          int                `yaml:"max_websockets"`
	MaxWebSocketsPerClient int                `yaml:"max_websockets_per_client"`
	WebSocketIdleTimeout   units.Duration     `yaml:"websocket_idle_timeout"` // default 10m
	WAF                    *waf.Config        `yaml:"waf"`
	Cache                  *cache.RouteConfig `yaml:"cache"`
	Auth                   *auth.Config       `yaml:"auth"`           // overrides the site's, field by field
	RequireHeader          reqrules.Config    `yaml:"require_header"` // replaces the site's when set
}

// RateLimitOff names no class: the site or route is not rate limited.
const RateLimitOff = "off"

func (c *Config) applyStageDefaults() {
	classes := ratelimit.DefaultClasses()
	for name, cl := range c.RateLimits {
		classes[name] = cl
	}
	c.RateLimits = classes
	c.State = c.State.WithDefaults()
	c.Limits.Connections = c.Limits.Connections.WithDefaults()
	for i := range c.Sites {
		s := &c.Sites[i]
		if s.RateLimit == "" {
			s.RateLimit = "default"
		}
		if s.CacheSize == 0 {
			s.CacheSize = 64 << 20
		}
		if s.CacheDiskSize > 0 && s.CacheDiskMaxObject == 0 {
			s.CacheDiskMaxObject = units.ByteSize(cache.DiskMaxObject(int64(s.CacheDiskSize)))
		}
		for j := range s.Routes {
			if s.Routes[j].WebSocket && s.Routes[j].WebSocketIdleTimeout == 0 {
				s.Routes[j].WebSocketIdleTimeout = units.Duration(10 * time.Minute)
			}
		}
	}
}

func (c *Config) validateStages(v *validator) {
	if err := c.Stages.Config.Validate(); err != nil {
		v.errf(p("trusted_proxies"), "%v", err)
	}
	for name, cl := range c.RateLimits {
		if err := cl.Validate(); err != nil {
			v.errf(p("rate_limits", name), "%v", err)
		}
	}
	if err := c.State.Validate(); err != nil {
		v.errf(p("state"), "%v", err)
	}
	if err := c.Limits.Connections.Validate(); err != nil {
		v.errf(p("limits"), "%v", err)
	}
	class := func(path []any, name string) {
		if _, ok := c.RateLimits[name]; !ok && name != RateLimitOff && name != "" {
			v.errf(path, "unknown rate limit class %q; define it under rate_limits or use %q", name, RateLimitOff)
		}
	}
	if d := c.CacheDir; d != "" && (!filepath.IsAbs(d) || filepath.Clean(d) != d || d == "/") {
		v.errf(p("cache_dir"), "%q: write an absolute path to a directory of rampart's own, e.g. /var/cache/rampart", d)
	}
	for i := range c.Sites {
		s := &c.Sites[i]
		class(p("sites", i, "rate_limit"), s.RateLimit)
		c.validateCacheDisk(v, i)
		if s.BruteForce != nil {
			if err := s.BruteForce.Validate(); err != nil {
				v.errf(p("sites", i, "brute_force"), "%v", err)
			}
		}
		if s.Auth != nil {
			if err := s.Auth.Validate(); err != nil {
				v.errf(p("sites", i, "auth"), "%v", err)
			}
		}
		if err := s.RequireHeader.Validate(); err != nil {
			v.errf(p("sites", i, "require_header"), "%v", err)
		}
		if s.WAF != nil {
			if err := s.WAF.Validate(); err != nil {
				v.errf(p("sites", i, "waf"), "%v", err)
			}
		}
		for j := range s.Routes {
			r := &s.Routes[j]
			class(p("sites", i, "routes", j, "rate_limit"), r.RateLimit)
			if r.WAF != nil {
				if err := r.WAF.Validate(); err != nil {
					v.errf(p("sites", i, "routes", j, "waf"), "%v", err)
				}
			}
			if r.Auth != nil {
				if err := r.Auth.Validate(); err != nil {
					v.errf(p("sites", i, "routes", j, "auth"), "%v", err)
				}
			}
			if eff := c.AuthFor(i, j); eff.Kind != auth.KindOff {
				if err := eff.ValidateEffective(); err != nil {
					v.errf(p("sites", i, "routes", j, "auth"), "%v", err)
				}
			}
			if err := r.RequireHeader.Validate(); err != nil {
				v.errf(p("sites", i, "routes", j, "require_header"), "%v", err)
			}
			if r.Cache != nil {
				if err := r.Cache.Validate(); err != nil {
					v.errf(p("sites", i, "routes", j, "cache"), "%v", err)
				}
			}
			if (r.MaxWebSockets > 0 || r.MaxWebSocketsPerClient > 0) && !r.WebSocket {
				v.errf(p("sites", i, "routes", j), "max_websockets on a route without websocket: true has no effect")
			}
			if r.MaxWebSockets < 0 || r.MaxWebSocketsPerClient < 0 {
				v.errf(p("sites", i, "routes", j), "WebSocket caps cannot be negative")
			}
		}
	}
}

// validateCacheDisk checks the disk tier keys of site i.
func (c *Config) validateCacheDisk(v *validator, i int) {
	s := &c.Sites[i]
	disk, maxObj := int64(s.CacheDiskSize), int64(s.CacheDiskMaxObject)
	memMax := cache.MaxMemoryObject(int64(s.CacheSize))
	switch {
	case disk == 0 && maxObj > 0:
		v.errf(p("sites", i, "cache_disk_max_object"), "has no effect without cache_disk_size; set cache_disk_size or remove it")
	case disk == 0:
	case c.CacheDir == "":
		v.errf(p("sites", i, "cache_disk_size"), "needs cache_dir: the top-level directory the disk tier keeps its files in, e.g. cache_dir: /var/cache/rampart")
	case maxObj > disk/4:
		v.errf(p("sites", i, "cache_disk_max_object"), "%s is more than a quarter of cache_disk_size %s; raise cache_disk_size or lower it", s.CacheDiskMaxObject, s.CacheDiskSize)
	case maxObj <= memMax:
		v.errf(p("sites", i, "cache_disk_max_object"), "%s is not above the memory tier's largest object (%s: cache_size/8, at most 8MiB), so nothing would go to disk; raise cache_disk_size (max object: a quarter of it, 256MiB by default) or cache_disk_max_object", s.CacheDiskMaxObject, units.ByteSize(memMax))
	}
}

// AuthFor returns the effective edge-authentication config of route j of
// site i.
func (c *Config) AuthFor(i, j int) auth.Config {
	a := auth.Defaults()
	a.Kind = auth.KindOff
	a = a.Merge(c.Sites[i].Auth)
	return a.Merge(c.Sites[i].Routes[j].Auth)
}

// WAFFor returns the effective WAF config of route j of site i: defaults,
// then the site's keys, then the route's.
func (c *Config) WAFFor(i, j int) waf.Config {
	w := waf.Defaults()
	w = w.Merge(c.Sites[i].WAF)
	return w.Merge(c.Sites[i].Routes[j].WAF)
}
