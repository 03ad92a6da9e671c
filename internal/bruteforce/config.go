package bruteforce

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/units"
)

// Config is the `brute_force:` section of a site.
type Config struct {
	// Failures within Window that ban the client (and the user name).
	Failures int `yaml:"failures"`
	// Window opens at a counted failure and lasts this long.
	Window units.Duration `yaml:"window"`
	// Ban is how long a ban lasts.
	Ban units.Duration `yaml:"ban"`
	// BanStatus answers requests from banned clients (429; the Cisco
	// profile uses 418).
	BanStatus int `yaml:"ban_status"`
	// Statuses are the upstream statuses that count as a failed login.
	Statuses []int `yaml:"statuses"`
	// Routes limit counting to some paths or route patterns; empty means
	// every route of the site.
	Routes []string `yaml:"routes"`
	// Username says where to find the user name, for per-user bans.
	Username UsernameConfig `yaml:"username"`
	// Syslog, when its address is set, receives one RFC 5424 line per ban.
	Syslog SyslogConfig `yaml:"syslog"`
}

// UsernameConfig says where the user name of a login attempt is found.
// Any combination may be set; with none, there are no per-user bans.
type UsernameConfig struct {
	Basic     bool   `yaml:"basic"`      // the user of HTTP Basic credentials
	FormField string `yaml:"form_field"` // a field of an urlencoded body
	JSONField string `yaml:"json_field"` // a member of a JSON body; dots reach into objects
}

// SyslogConfig is where ban notices go.
type SyslogConfig struct {
	Address  string `yaml:"address"`  // host:port; empty disables syslog
	Network  string `yaml:"network"`  // udp (default) or tcp
	Facility string `yaml:"facility"` // default auth
}

// Defaults, chosen so that a person mistyping a password a few times, or a
// browser retrying, is never banned.
const (
	DefaultFailures  = 5
	DefaultWindow    = 30 * time.Second
	DefaultBan       = 30 * time.Minute
	DefaultBanStatus = http.StatusTooManyRequests
)

// WithDefaults returns c with unset fields given their defaults.
func (c Config) WithDefaults() Config {
	if c.Failures == 0 {
		c.Failures = DefaultFailures
	}
	if c.Window == 0 {
		c.Window = units.Duration(DefaultWindow)
	}
	if c.Ban == 0 {
		c.Ban = units.Duration(DefaultBan)
	}
	if c.BanStatus == 0 {
		c.BanStatus = DefaultBanStatus
	}
	if len(c.Statuses) == 0 {
		c.Statuses = []int{http.StatusUnauthorized}
	}
	if c.Syslog.Address != "" {
		if c.Syslog.Network == "" {
			c.Syslog.Network = "udp"
		}
		if c.Syslog.Facility == "" {
			c.Syslog.Facility = "auth"
		}
	}
	return c
}

// Validate reports every problem in c, unset fields taken as defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("brute_force."+format, a...)) }
	if c.Failures < 1 || c.Failures > 10_000 {
		bad("failures: %d is out of range 1..10000", c.Failures)
	}
	if w := c.Window.D(); w <= 0 || w > 24*time.Hour {
		bad("window: %v is out of range (0, 24h]", w)
	}
	if b := c.Ban.D(); b <= 0 || b > 366*24*time.Hour {
		bad("ban: %v is out of range (0, 366d]", b)
	}
	if c.BanStatus < 400 || c.BanStatus > 599 {
		bad("ban_status: %d is not a 4xx or 5xx status", c.BanStatus)
	}
	for _, s := range c.Statuses {
		if s < 400 || s > 599 {
			bad("statuses: %d is not a 4xx or 5xx status", s)
		}
	}
	for _, r := range c.Routes {
		if !strings.HasPrefix(r, "/") && !strings.Contains(r, ":/") {
			bad("routes: %q is neither a path (/api/login) nor a route pattern (exact:/api/login)", r)
		}
	}
	if f := c.Username.JSONField; f != "" && (strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..")) {
		bad("username.json_field: %q is not a member path such as username or credentials.username", f)
	}
	if c.Syslog.Address != "" {
		if _, port, err := net.SplitHostPort(c.Syslog.Address); err != nil || port == "" {
			bad("syslog.address: %q is not host:port", c.Syslog.Address)
		}
		if c.Syslog.Network != "udp" && c.Syslog.Network != "tcp" {
			bad("syslog.network: %q is not udp or tcp", c.Syslog.Network)
		}
		if _, ok := facilities[c.Syslog.Facility]; !ok {
			bad("syslog.facility: %q is not a syslog facility (auth, authpriv, daemon, local0..local7, ...)", c.Syslog.Facility)
		}
	}
	return errors.Join(errs...)
}
