package cache

import (
	"fmt"
	"time"

	"github.com/rampart-proxy/rampart/internal/units"
)

// Defaults applied by Validate to the keys left at zero.
const (
	DefaultRevalidateAfter      = 5 * time.Minute
	DefaultMaxAge               = 24 * time.Hour
	DefaultStaleWhileRevalidate = 30 * time.Second
	DefaultStaleIfError         = time.Hour
)

// minRevalidateAfter keeps a typo such as "5ms" from turning the cache into
// a revalidation generator.
const minRevalidateAfter = time.Second

// RouteConfig is the cache block of one route:
//
//	cache: {enabled: true, revalidate_after: 5m, max_age: 24h,
//	        stale_while_revalidate: 30s, stale_if_error: 1h, public: false}
//
// A key written as 0 or left out takes its default.
type RouteConfig struct {
	// Enabled turns the cache on for the route.
	Enabled bool `yaml:"enabled"`
	// RevalidateAfter is the longest time an entry is served without asking
	// the upstream; the upstream's own lifetime shortens it, never extends it.
	RevalidateAfter units.Duration `yaml:"revalidate_after"`
	// MaxAge is how long after its last full fetch or successful validation
	// an entry is kept at all. Past it the entry is dropped and refetched.
	MaxAge units.Duration `yaml:"max_age"`
	// StaleWhileRevalidate is how long past its freshness an entry may be
	// served while one background request revalidates it.
	StaleWhileRevalidate units.Duration `yaml:"stale_while_revalidate"`
	// StaleIfError is how long past its freshness an entry may be served
	// when the upstream answers 5xx or cannot be reached.
	StaleIfError units.Duration `yaml:"stale_if_error"`
	// Public stores and serves responses to requests that carry
	// Authorization or Cookie. Only for resources that are the same for
	// every user (the desktop's static JS and CSS).
	Public bool `yaml:"public"`
}

// Validate fills in the defaults and checks that the durations fit together.
func (c *RouteConfig) Validate() error {
	c.applyDefaults()
	ra, ma := c.RevalidateAfter.D(), c.MaxAge.D()
	switch {
	case ra < 0 || ma < 0 || c.StaleWhileRevalidate < 0 || c.StaleIfError < 0:
		return fmt.Errorf("cache: durations must not be negative")
	case ra < minRevalidateAfter:
		return fmt.Errorf("cache: revalidate_after %s is below the minimum of %s", ra, minRevalidateAfter)
	case ma < ra:
		return fmt.Errorf("cache: max_age %s is shorter than revalidate_after %s; an entry would be dropped before it is ever revalidated", ma, ra)
	}
	return nil
}

func (c *RouteConfig) applyDefaults() {
	if c.RevalidateAfter == 0 {
		c.RevalidateAfter = units.Duration(DefaultRevalidateAfter)
	}
	if c.MaxAge == 0 {
		c.MaxAge = units.Duration(DefaultMaxAge)
	}
	if c.StaleWhileRevalidate == 0 {
		c.StaleWhileRevalidate = units.Duration(DefaultStaleWhileRevalidate)
	}
	if c.StaleIfError == 0 {
		c.StaleIfError = units.Duration(DefaultStaleIfError)
	}
}

// normalized is the config the handler runs with: defaults filled in, and a
// config that failed Validate clamped into a usable one rather than refused
// (the loader refuses it; a programmatic caller gets safe behaviour).
func (c RouteConfig) normalized() RouteConfig {
	c.applyDefaults()
	if c.RevalidateAfter.D() < minRevalidateAfter {
		c.RevalidateAfter = units.Duration(minRevalidateAfter)
	}
	if c.MaxAge < c.RevalidateAfter {
		c.MaxAge = c.RevalidateAfter
	}
	if c.StaleWhileRevalidate < 0 {
		c.StaleWhileRevalidate = 0
	}
	if c.StaleIfError < 0 {
		c.StaleIfError = 0
	}
	return c
}
