package lint

import (
	"net/http"
	"strings"
	"unicode"

	"github.com/rampart-proxy/rampart/internal/auth"
	"github.com/rampart-proxy/rampart/internal/config"
)

// loginRatePerSecond is the fastest rate a credential endpoint may allow
// without a finding: twice the built-in login class.
const loginRatePerSecond = 10

// LooksLikeLogin reports whether a route pattern names a credential
// endpoint: a word of the path contains login, logon, signin, signon,
// token, password or passwd, begins or ends with auth (auth, oauth,
// UserAuth, authenticate, authorize, but not author), or is or begins or
// ends with sso or saml; or the path has j_security_check.
func LooksLikeLogin(pattern string) bool {
	lower := strings.ToLower(pattern)
	if strings.Contains(lower, "j_security_check") {
		return true
	}
	words := strings.FieldsFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		for _, sub := range []string{"login", "logon", "signin", "signon", "token", "password", "passwd"} {
			if strings.Contains(w, sub) {
				return true
			}
		}
		switch {
		case strings.HasSuffix(w, "auth"),
			strings.HasPrefix(w, "auth") && (!strings.HasPrefix(w, "author") || strings.HasPrefix(w, "authoriz")),
			strings.HasPrefix(w, "sso"), strings.HasSuffix(w, "sso"),
			strings.HasPrefix(w, "saml"):
			return true
		}
	}
	return false
}

// loginRateLimits reports credential endpoints that are not rate limited or
// whose class allows more than loginRatePerSecond.
func (l *linter) loginRateLimits() {
	for i, s := range l.cfg.Sites {
		for j, r := range s.Routes {
			pt := patternOf(r.Exact, r.Prefix, r.Regex)
			if !LooksLikeLogin(pt.pat) {
				continue
			}
			// Point at the route: its own rate_limit, or its pattern when
			// it takes the site's class.
			class, from, key := s.RateLimit, "the site's rate_limit", p("sites", i, "routes", j, pt.key)
			if r.RateLimit != "" {
				class, from, key = r.RateLimit, "its rate_limit", p("sites", i, "routes", j, "rate_limit")
			}
			if class == config.RateLimitOff {
				l.report(RuleLoginRate, key, "%s looks like a login, token or SSO endpoint and is not rate limited (%s is off): password guessing runs as fast as the upstream answers", pt, from)
				continue
			}
			cl, ok := l.cfg.RateLimits[class]
			if !ok || cl.Rate.PerSecond() <= loginRatePerSecond {
				continue
			}
			l.report(RuleLoginRate, key, "%s looks like a login, token or SSO endpoint but %s is %q (%s, burst %d): a client may try that many passwords a second", pt, from, class, cl.Rate, cl.Burst)
		}
	}
}

// webSockets reports WebSocket routes without caps on open connections.
func (l *linter) webSockets() {
	for i, s := range l.cfg.Sites {
		for j, r := range s.Routes {
			if !r.WebSocket {
				continue
			}
			pt := patternOf(r.Exact, r.Prefix, r.Regex)
			switch {
			case s.MaxWebSockets == 0 && r.MaxWebSockets == 0 && r.MaxWebSocketsPerClient == 0:
				l.report(RuleWSUncapped, p("sites", i, "routes", j, "websocket"), "%s accepts WebSockets with no cap: each holds a connection (and an upstream connection) open, so a few clients can exhaust both", pt)
			case r.MaxWebSocketsPerClient == 0:
				l.report(RuleWSPerClient, p("sites", i, "routes", j, "websocket"), "%s caps WebSockets in total but not per client: one client can hold every slot and lock the others out", pt)
			}
		}
	}
}

// caches reports public caches on routes that authenticate their clients
// or accept methods other than GET and HEAD.
func (l *linter) caches() {
	for i, s := range l.cfg.Sites {
		for j, r := range s.Routes {
			if r.Cache == nil || !r.Cache.Enabled || !r.Cache.Public {
				continue
			}
			pt := patternOf(r.Exact, r.Prefix, r.Regex)
			key := p("sites", i, "routes", j, "cache", "public")
			if a := l.cfg.AuthFor(i, j); a.Kind != auth.KindOff {
				l.report(RuleCacheAuth, key, "%s authenticates clients (auth %s) and its cache is public: a response fetched for one user is served to every other authenticated user", pt, a.Kind)
			}
			var other []string
			for _, m := range r.Methods {
				if m != http.MethodGet && m != http.MethodHead {
					other = append(other, m)
				}
			}
			if len(other) > 0 {
				l.report(RuleCacheMethods, key, "%s has a public cache and also allows %s: only GET and HEAD are cached, and a state-changing request next to cached answers is easy to get wrong", pt, strings.Join(other, ", "))
			}
		}
	}
}
