// Package ratelimit is pipeline stage 8: it limits how fast one client may
// send requests to a site, with token buckets kept in a state.Store.
//
// Limits come in named classes ("default", "login", ...) defined once in
// the config; a site names the class that applies to it and a route may
// name another. Each client (state.ClientKey of the address an earlier
// stage resolved) has one bucket per class, so a client that exhausts the
// strict login class can still load pages under the default class.
//
// A request over the limit is refused with 429 and a Retry-After header;
// clients in the exempt ranges skip this stage (but not bans). When the
// store is unavailable and its policy is deny, requests are refused with
// 503 rather than let through unlimited.
package ratelimit

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/units"
)

// Stage is the stage name in refusals, logs and metrics.
const Stage = "ratelimit"

// Off is the class name that disables rate limiting for a site or route.
const Off = "off"

// Class is one named limit: a sustained rate and a burst.
type Class struct {
	// Rate is the sustained rate, e.g. 45/s or 300/m.
	Rate units.Rate `yaml:"rate"`
	// Burst is how many requests may arrive at once after a quiet spell.
	Burst int `yaml:"burst"`
}

// Validate reports whether the class can be enforced.
func (c Class) Validate() error {
	if c.Rate.IsZero() || c.Rate.PerSecond() <= 0 {
		return errors.New("rate must be set, e.g. 45/s")
	}
	if c.Burst < 1 {
		return fmt.Errorf("burst %d must be at least 1", c.Burst)
	}
	if c.Burst > 1_000_000 {
		return fmt.Errorf("burst %d is out of range", c.Burst)
	}
	return nil
}

// DefaultClasses are the classes in effect when the config defines none:
// "default" for pages and APIs, "login" for credential endpoints.
func DefaultClasses() map[string]Class {
	return map[string]Class{
		"default": {Rate: units.Rate{Count: 45, Per: time.Second}, Burst: 50},
		"login":   {Rate: units.Rate{Count: 5, Per: time.Second}, Burst: 5},
	}
}

// Validate checks every class of a `rate_limits:` section.
func Validate(classes map[string]Class) error {
	names := make([]string, 0, len(classes))
	for name := range classes {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if !validName(name) {
			errs = append(errs, fmt.Errorf("rate_limits: %q is not a valid class name (letters, digits, - and _)", name))
			continue
		}
		if err := classes[name].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("rate_limits.%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" || s == Off || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

var results = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
	Name: "rampart_ratelimit_total",
	Help: "Rate-limit decisions, by class and result (allowed, limited, exempt, error).",
}, []string{"class", "result"})

// Limiter enforces the configured classes against one store.
type Limiter struct {
	store   state.Store
	classes map[string]*class
}

// class is a Class prepared for the request path.
type class struct {
	name                             string
	rate                             float64
	burst                            int
	prefix                           string
	allowed, limited, exempt, failed prometheus.Counter
}

// New returns a Limiter for the given classes, which must be valid.
func New(store state.Store, classes map[string]Class) (*Limiter, error) {
	if store == nil {
		return nil, errors.New("ratelimit: no state store")
	}
	if err := Validate(classes); err != nil {
		return nil, err
	}
	l := &Limiter{store: store, classes: make(map[string]*class, len(classes))}
	for name, c := range classes {
		l.classes[name] = &class{
			name:    name,
			rate:    c.Rate.PerSecond(),
			burst:   c.Burst,
			prefix:  "rl:" + name + ":",
			allowed: results.WithLabelValues(name, "allowed"),
			limited: results.WithLabelValues(name, "limited"),
			exempt:  results.WithLabelValues(name, "exempt"),
			failed:  results.WithLabelValues(name, "error"),
		}
	}
	return l, nil
}

// lookup resolves a class name; "" and "off" give nil (no limit).
func (l *Limiter) lookup(name string) (*class, error) {
	if name == "" || name == Off {
		return nil, nil
	}
	c, ok := l.classes[name]
	if !ok {
		known := make([]string, 0, len(l.classes))
		for n := range l.classes {
			known = append(known, n)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("ratelimit: unknown class %q (defined: %s)", name, strings.Join(known, ", "))
	}
	return c, nil
}

// Handler limits every request to next with the named class. The name
// "off" (or "") returns next unchanged; an undefined name is an error.
func (l *Limiter) Handler(name string, next http.Handler) (http.Handler, error) {
	c, err := l.lookup(name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return next, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.serve(c, w, r, next)
	}), nil
}

// SiteHandler limits requests to next with siteClass, unless the route
// that matched the request (reqinfo Route, e.g. "exact:/api/login") has a
// class of its own in routeClasses. Every name is checked here, so that a
// typo is an error at load time.
func (l *Limiter) SiteHandler(siteClass string, routeClasses map[string]string, next http.Handler) (http.Handler, error) {
	site, err := l.lookup(siteClass)
	if err != nil {
		return nil, err
	}
	routes := make(map[string]*class, len(routeClasses))
	for route, name := range routeClasses {
		c, err := l.lookup(name)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", route, err)
		}
		routes[route] = c
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := site
		if len(routes) > 0 {
			if rc, ok := routes[reqinfo.Of(r).Route]; ok {
				c = rc
			}
		}
		if c == nil {
			next.ServeHTTP(w, r)
			return
		}
		l.serve(c, w, r, next)
	}), nil
}

func (l *Limiter) serve(c *class, w http.ResponseWriter, r *http.Request, next http.Handler) {
	info := reqinfo.Of(r)
	if info.Exempt {
		c.exempt.Inc()
		next.ServeHTTP(w, r)
		return
	}
	ok, retry, err := l.store.Allow(r.Context(), c.prefix+state.ClientKey(info.ClientAddr(r)), c.rate, c.burst)
	if err != nil {
		c.failed.Inc()
		observe.Refuse(w, r, http.StatusServiceUnavailable, Stage, "store-unavailable",
			slog.String("class", c.name), slog.String("error", err.Error()))
		return
	}
	if !ok {
		c.limited.Inc()
		secs := RetryAfterSeconds(retry)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		observe.Refuse(w, r, http.StatusTooManyRequests, Stage, "rate",
			slog.String("class", c.name), slog.Int("retry_after", secs))
		return
	}
	c.allowed.Inc()
	next.ServeHTTP(w, r)
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1, as the
// Retry-After header wants them. Less than a microsecond over a whole
// second is floating-point noise from the bucket arithmetic, not a reason
// to make the client wait a second longer.
func RetryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil((d - time.Microsecond).Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}
