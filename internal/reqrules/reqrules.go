// Package reqrules is the generic request-rules stage (require_header):
// each rule names a request header and what its value must look like, and
// a request whose header does not match is refused with the rule's status
// before it goes further.
//
// It serves checks that applications expect of their front end, such as
// Cisco Finesse refusing a Referer from a foreign host (417) or a
// User-Agent that is not a supported browser (412), without involving the
// WAF. Rules are configured per site, and a route may replace its site's
// list. The keys are documented in README.md.
package reqrules

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// Stage is the stage name of refusals in logs and metrics.
const Stage = "request-rules"

// Match is how a rule compares the header value.
type Match string

// The match kinds.
const (
	MatchRegex         Match = "regex"           // the value matches a Go (RE2) regular expression
	MatchOriginOfHosts Match = "origin_of_hosts" // the value is an https URL on one of the hosts
	MatchEquals        Match = "equals"          // the value is one of the values
)

// DefaultStatus refuses a request that breaks a rule with no status.
const DefaultStatus = http.StatusForbidden

// maxLoggedValue bounds the header value copied into the security log.
const maxLoggedValue = 200

// Rule is one entry of require_header.
type Rule struct {
	// Header is the request header the rule checks (case-insensitive).
	Header string `yaml:"header"`
	// Match is regex, origin_of_hosts or equals. It may be left out: it
	// is then the kind whose parameter (regex, hosts, values) is set.
	Match Match `yaml:"match"`
	// Regex is the expression of match: regex. It is unanchored: write
	// ^...$ to match the whole value.
	Regex string `yaml:"regex"`
	// Hosts are the host names of match: origin_of_hosts.
	Hosts []string `yaml:"hosts"`
	// Values are the accepted values of match: equals.
	Values []string `yaml:"values"`
	// Status refuses a request that breaks the rule (default 403).
	Status int `yaml:"status"`
	// AllowMissing lets requests without the header (or with it empty)
	// through; by default they are refused.
	AllowMissing bool `yaml:"allow_missing"`
}

// Config is the require_header list of a site or a route.
type Config []Rule

// Merge returns the list in force on a route: the route's own when it
// sets one (an empty list, `require_header: []`, clears the site's), else
// the site's.
func Merge(site, route Config) Config {
	if route != nil {
		return route
	}
	return site
}

// kind returns the rule's match kind, explicit or implied.
func (r Rule) kind() Match {
	if r.Match != "" {
		return r.Match
	}
	switch {
	case r.Regex != "" && r.Hosts == nil && r.Values == nil:
		return MatchRegex
	case r.Hosts != nil && r.Regex == "" && r.Values == nil:
		return MatchOriginOfHosts
	case r.Values != nil && r.Regex == "" && r.Hosts == nil:
		return MatchEquals
	}
	return ""
}

// Validate reports every problem of every rule.
func (c Config) Validate() error {
	var errs []error
	for i, r := range c {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("require_header[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (r Rule) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case r.Header == "":
		bad("header: required")
	case !validToken(r.Header):
		bad("header: %q is not a header name", r.Header)
	case strings.EqualFold(r.Header, "Host"):
		bad("header: Host is checked by the host gate (the site's host and aliases), not here")
	}
	switch r.Match {
	case "", MatchRegex, MatchOriginOfHosts, MatchEquals:
	default:
		bad("match: %q must be regex, origin_of_hosts or equals", r.Match)
	}
	k := r.kind()
	if k == "" && r.Match == "" {
		bad("set exactly one of regex, hosts and values (or name the kind with match:)")
	}
	if r.Regex != "" && k != MatchRegex {
		bad("regex: only with match: regex")
	}
	if r.Hosts != nil && k != MatchOriginOfHosts {
		bad("hosts: only with match: origin_of_hosts")
	}
	if r.Values != nil && k != MatchEquals {
		bad("values: only with match: equals")
	}
	switch k {
	case MatchRegex:
		if r.Regex == "" {
			bad("regex: required with match: regex")
		} else if _, err := regexp.Compile(r.Regex); err != nil {
			bad("regex: %v", err)
		}
	case MatchOriginOfHosts:
		if len(r.Hosts) == 0 {
			bad("hosts: list at least one host name")
		}
		for _, h := range r.Hosts {
			if !validHost(h) {
				bad("hosts: %q is not a host name (no scheme, port or path: finesse.example.com)", h)
			}
		}
	case MatchEquals:
		if len(r.Values) == 0 {
			bad("values: list at least one value")
		}
	}
	if r.Status != 0 && (r.Status < 400 || r.Status > 599) {
		bad("status: %d is not a 4xx or 5xx status", r.Status)
	}
	return errors.Join(errs...)
}

// Rules enforces a list of rules.
type Rules struct {
	rules []compiled
}

type compiled struct {
	header       string // canonical name
	reason       string // "header:<Name>"
	kind         Match
	re           *regexp.Regexp
	hosts        map[string]bool
	values       []string
	status       int
	allowMissing bool
}

// New compiles rules; it reports the same problems as Config.Validate.
func New(rules []Rule) (*Rules, error) {
	if err := Config(rules).Validate(); err != nil {
		return nil, err
	}
	out := &Rules{}
	for _, r := range rules {
		c := compiled{
			header:       http.CanonicalHeaderKey(r.Header),
			kind:         r.kind(),
			status:       r.Status,
			allowMissing: r.AllowMissing,
			values:       slices.Clone(r.Values),
		}
		c.reason = "header:" + c.header
		if c.status == 0 {
			c.status = DefaultStatus
		}
		switch c.kind {
		case MatchRegex:
			c.re = regexp.MustCompile(r.Regex)
		case MatchOriginOfHosts:
			c.hosts = make(map[string]bool, len(r.Hosts))
			for _, h := range r.Hosts {
				c.hosts[normHost(h)] = true
			}
		}
		out.rules = append(out.rules, c)
	}
	return out, nil
}

// Len returns the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }

// Handler refuses requests that break a rule, in the order the rules are
// listed, and passes the others to next. With no rules it returns next.
func (rs *Rules) Handler(next http.Handler) http.Handler {
	if rs == nil || len(rs.rules) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range rs.rules {
			c := &rs.rules[i]
			if ok, value := c.check(r.Header); !ok {
				observe.Refuse(w, r, c.status, Stage, c.reason,
					slog.String("header", c.header), slog.String("value", observe.Truncate(value, maxLoggedValue)))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// check reports whether h satisfies the rule, and the value that did not.
// Every line of a repeated header must match.
func (c *compiled) check(h http.Header) (bool, string) {
	vals := h[c.header]
	present := false
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		present = true
		if !c.matches(v) {
			return false, v
		}
	}
	if !present {
		return c.allowMissing, ""
	}
	return true, ""
}

func (c *compiled) matches(v string) bool {
	switch c.kind {
	case MatchRegex:
		return c.re.MatchString(v)
	case MatchEquals:
		return slices.Contains(c.values, v)
	case MatchOriginOfHosts:
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "https" || u.User != nil || u.Opaque != "" {
			return false
		}
		return c.hosts[normHost(u.Hostname())]
	}
	return false
}

// normHost lower-cases a host name and drops a trailing dot.
func normHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/:@?#*[] ") {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validToken reports whether s is an RFC 9110 field name.
func validToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return s != ""
}
