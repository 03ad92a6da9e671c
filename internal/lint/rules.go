package lint

// Rule describes one check. The id is stable: scripts may filter on it.
type Rule struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"` // the usual severity; a few rules lower it (see README.md)
	Summary  string   `json:"summary"`
	Fix      string   `json:"fix"`
}

// Rule ids. Each is described, with an example, in README.md.
const (
	RuleConfigError  = "config-error"
	RuleBuildError   = "build-error"
	RuleConfigWarn   = "config-warning"
	RuleTLSTickets   = "tls-session-tickets"
	RuleTLSNo13      = "tls-no-tls13"
	RuleTLSCiphers   = "tls-ciphers-unused"
	RuleTLSClientOpt = "tls-client-auth-optional"
	RuleAdminListen  = "admin-listener-exposed"
	RuleSandboxOff   = "sandbox-off"
	RuleBodyRateOff  = "body-min-rate-off"
	RuleHSTSOff      = "headers-hsts-off"
	RuleFrameOff     = "headers-frame-options-off"
	RuleNosniffOff   = "headers-nosniff-off"
	RuleUpInsecure   = "upstream-insecure-skip-verify"
	RuleUpPlainHTTP  = "upstream-plain-http"
	RuleUpSysRoots   = "upstream-system-roots"
	RuleRouteDup     = "route-duplicate"
	RuleRouteDenied  = "route-denied"
	RuleRouteShadow  = "route-shadowed"
	RuleRouteMethods = "route-methods-overlap"
	RuleRouteAdmin   = "route-exposes-admin-path"
	RuleJSessionID   = "route-jsessionid"
	RuleRegexAll     = "regex-matches-everything"
	RuleRegexAnchor  = "regex-unanchored"
	RuleRegexEscape  = "regex-escapes-prefix"
	RuleRegexNever   = "regex-never-matches"
	RuleLoginRate    = "login-rate-limit"
	RuleWSUncapped   = "websocket-uncapped"
	RuleWSPerClient  = "websocket-no-per-client-cap"
	RuleCacheAuth    = "cache-public-authenticated"
	RuleCacheMethods = "cache-public-unsafe-methods"
	RuleProxiesAll   = "trusted-proxies-everything"
	RuleProxiesBroad = "trusted-proxies-broad"
	RuleClientIPNoop = "client-ip-ineffective"
	RuleExemptBroad  = "exempt-broad"
	RuleCertExpired  = "cert-expired"
	RuleCertNotYet   = "cert-not-yet-valid"
	RuleCertExpiring = "cert-expiring"
	RuleCertName     = "cert-name-mismatch"
	RuleKeyWorld     = "key-world-readable"
	RuleKeyGroup     = "key-group-readable"
	RuleCacheDir     = "cache-dir-unsafe"
)

var rules = []Rule{
	{RuleConfigError, Error, "the file does not load: syntax, unknown key, wrong type or contradiction", "correct the key named in the message"},
	{RuleBuildError, Error, "the file loads but serve could not start with it (certificate, CA file, key, route table)", "correct the file or key named in the message"},
	{RuleConfigWarn, Warning, "a weakened default reported by the config package that no other rule covers", "restore the default unless the weakening is needed"},

	{RuleTLSTickets, Warning, "TLS session tickets are on: resumed sessions lose forward secrecy", "remove session_tickets or set it to false"},
	{RuleTLSNo13, Info, "TLS 1.3 is not offered", `versions: ["1.2", "1.3"], unless a client in use cannot negotiate TLS 1.3`},
	{RuleTLSCiphers, Info, "ciphers are listed but only TLS 1.3 is offered, whose suites are not configurable", "remove tls.ciphers"},
	{RuleTLSClientOpt, Info, "client certificates are requested, not required", "client_auth: require, or none if no route relies on them"},
	{RuleAdminListen, Warning, "the admin listener is not on loopback", `admin: {listen: "127.0.0.1:9901"}`},
	{RuleSandboxOff, Warning, "the Landlock self-sandbox is switched off", "remove sandbox: off"},
	{RuleBodyRateOff, Warning, "request bodies have no minimum rate, only a bound on each pause", "remove limits.body_min_rate (default 1KiB per second)"},

	{RuleHSTSOff, Warning, "HSTS is switched off", "remove headers.hsts; the default is max-age=31536000; includeSubDomains"},
	{RuleFrameOff, Warning, "X-Frame-Options is switched off", "remove headers.frame_options, or set Content-Security-Policy: frame-ancestors"},
	{RuleNosniffOff, Warning, "X-Content-Type-Options: nosniff is switched off", "remove headers.content_type_options"},

	{RuleUpInsecure, Warning, "upstream certificates are not verified", "set upstream.tls.ca to the internal CA bundle and remove insecure_skip_verify"},
	{RuleUpPlainHTTP, Warning, "plain http to an upstream that is not on this host", "use an https:// target with upstream.tls.ca"},
	{RuleUpSysRoots, Info, "https upstream verified against the public system roots", "set upstream.tls.ca to the CA that signs the internal server's certificate"},

	{RuleRouteDup, Error, "two routes (or two deny entries) of a site have the same pattern", "remove one of them, or merge their methods"},
	{RuleRouteDenied, Warning, "a route that a deny entry refuses entirely: it can never be used", "remove the route or narrow the deny entry"},
	{RuleRouteShadow, Info, "a regex route that never decides a request because an exact or prefix route (or an earlier regex) always matches first", "remove the route or move its settings to the route that wins"},
	{RuleRouteMethods, Info, "a prefix route inside another prefix route allows different methods", "check that the narrower route's methods are the intended ones"},
	{RuleRouteAdmin, Warning, "a route lets a well-known admin or management path through to the upstream", "add a deny entry for the path, e.g. deny: [{prefix: /admin/}]"},
	{RuleJSessionID, Warning, "session ids are accepted in URLs", "remove allow_jsessionid unless the application puts ;jsessionid= in links"},

	{RuleRegexAll, Warning, "a regex route matches every path: the allowlist is off", "anchor the regex and name the paths, e.g. ^/reports/[0-9]+$"},
	{RuleRegexAnchor, Warning, "a regex route is not anchored with ^, so it also matches under any other path", "start the regex with ^ and the path it is about, e.g. ^/reports/[0-9]+$"},
	{RuleRegexNever, Warning, "an anchored regex route starts with something other than /, so it never matches a path", "start the regex with ^/, e.g. ^/api/v1/"},
	{RuleRegexEscape, Warning, "an anchored regex route matches paths outside the prefix it starts with", "make every alternative start with the prefix, e.g. ^/api/(v1|v2)/"},

	{RuleLoginRate, Warning, "a login, token or SSO endpoint is not rate limited, or allows more than 10 requests a second", "rate_limit: login (5/s, burst 5)"},

	{RuleWSUncapped, Warning, "a WebSocket route has no cap on open connections", "max_websockets on the site or the route, and max_websockets_per_client on the route"},
	{RuleWSPerClient, Info, "a WebSocket route has a total cap but no per-client cap: one client can take every slot", "max_websockets_per_client on the route, e.g. 4"},

	{RuleCacheAuth, Warning, "a public shared cache on a route that authenticates its clients", "public: false, or auth: off on a route that only serves the same resources to everybody"},
	{RuleCacheMethods, Info, "a public cache on a route that also allows methods other than GET and HEAD", "split the route: a cached GET/HEAD route and an uncached one for the other methods"},

	{RuleProxiesAll, Error, "trusted_proxies contains every address: any client can choose its own address", "list only the load balancers in front of rampart, e.g. 10.0.0.10/32"},
	{RuleProxiesBroad, Warning, "trusted_proxies contains a very wide range (IPv4 shorter than /8, IPv6 shorter than /32)", "list only the load balancers in front of rampart"},
	{RuleClientIPNoop, Warning, "client_ip and trusted_proxies do not fit together: one of them is never used", "set both trusted_proxies and client_ip.header (or client_ip.proxy_protocol), or neither"},
	{RuleExemptBroad, Warning, "exempt contains a very wide range: rate limits are off for most of the internet", "list only the monitoring hosts that must not be rate limited"},

	{RuleCertExpired, Error, "a certificate has expired", "renew the certificate and reload (SIGHUP)"},
	{RuleCertNotYet, Warning, "a certificate is not valid yet (or the clock is wrong)", "check the host's clock and the certificate's notBefore"},
	{RuleCertExpiring, Warning, "a certificate expires within 30 days (info for short-lived certificates)", "renew the certificate; automate renewal"},
	{RuleCertName, Warning, "a site's host name is not in the certificate it is served with (info for short-lived certificates)", "issue a certificate for every host and alias, or give the site its own tls: {cert, key}"},

	{RuleKeyWorld, Error, "a private key file is readable by every user of the host", "chmod 600 the key file"},
	{RuleKeyGroup, Info, "a private key file is readable by its group", "chmod 600 the key file unless the group is rampart's own"},
	{RuleCacheDir, Error, "cache_dir is a link, not a directory, open to group or others, or not owned by user:", "chmod 700 and chown it to the user rampart runs as"},
}

// Rules returns every rule, in the order README.md lists them.
func Rules() []Rule { return append([]Rule(nil), rules...) }

func ruleByID(id string) Rule {
	for _, r := range rules {
		if r.ID == id {
			return r
		}
	}
	panic("lint: unknown rule " + id)
}
