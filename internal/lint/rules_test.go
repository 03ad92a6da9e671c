package lint

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ruleCase is one config and the findings of one rule it must produce.
type ruleCase struct {
	name  string
	rule  string
	yaml  string
	want  []string // keys of the rule's findings, in order; empty: none
	sev   Severity // severity of every finding of the rule
	now   time.Duration
	setup func(t *testing.T, dir string)
}

// routes is a site with the given route list (YAML, indented for routes:).
func routes(list string) string { return head + site + "    routes:\n" + list }

var ruleCases = []ruleCase{
	// TLS policy
	{name: "TicketsOn", rule: RuleTLSTickets, sev: Warning, want: []string{"tls.session_tickets"},
		yaml: "tls: {cert: site.pem, key: site-key.pem, session_tickets: true}\n" + site + "    routes: [{prefix: /api/}]\n"},
	{name: "TicketsOffByDefault", rule: RuleTLSTickets, yaml: routes("      - prefix: /api/\n")},
	{name: "OnlyTLS12", rule: RuleTLSNo13, sev: Info, want: []string{"tls.versions"},
		yaml: "tls: {cert: site.pem, key: site-key.pem, versions: [\"1.2\"]}\n" + site + "    routes: [{prefix: /api/}]\n"},
	{name: "TLS13Only", rule: RuleTLSNo13,
		yaml: "tls: {cert: site.pem, key: site-key.pem, versions: [\"1.3\"]}\n" + site + "    routes: [{prefix: /api/}]\n"},
	{name: "CiphersWithTLS13Only", rule: RuleTLSCiphers, sev: Info, want: []string{"tls.ciphers"},
		yaml: "tls: {cert: site.pem, key: site-key.pem, versions: [\"1.3\"], ciphers: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]}\n" + site + "    routes: [{prefix: /api/}]\n"},
	{name: "CiphersWithTLS12", rule: RuleTLSCiphers,
		yaml: "tls: {cert: site.pem, key: site-key.pem, ciphers: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]}\n" + site + "    routes: [{prefix: /api/}]\n"},
	{name: "ClientAuthRequest", rule: RuleTLSClientOpt, sev: Info, want: []string{"tls.client_auth"},
		yaml: "tls: {cert: site.pem, key: site-key.pem, client_auth: request, client_ca: ca.pem}\n" + site + "    routes: [{prefix: /api/}]\n"},
	{name: "ClientAuthRequire", rule: RuleTLSClientOpt,
		yaml: "tls: {cert: site.pem, key: site-key.pem, client_auth: require, client_ca: ca.pem}\n" + site + "    routes: [{prefix: /api/}]\n"},

	// admin listener and headers (config.Warnings, under their rules)
	{name: "AdminOnAllInterfaces", rule: RuleAdminListen, sev: Warning, want: []string{"admin.listen"},
		yaml: "admin: {listen: \"0.0.0.0:9901\"}\n" + routes("      - prefix: /api/\n")},
	{name: "AdminOnLoopback", rule: RuleAdminListen, yaml: "admin: {listen: \"127.0.0.1:9901\"}\n" + routes("      - prefix: /api/\n")},
	{name: "SandboxOff", rule: RuleSandboxOff, sev: Warning, want: []string{"sandbox"},
		yaml: "sandbox: \"off\"\n" + routes("      - prefix: /api/\n")},
	{name: "BodyMinRateOff", rule: RuleBodyRateOff, sev: Warning, want: []string{"limits.body_min_rate"},
		yaml: "limits: {body_min_rate: 0}\n" + routes("      - prefix: /api/\n")},
	{name: "BodyMinRateSet", rule: RuleBodyRateOff, yaml: "limits: {body_min_rate: 512}\n" + routes("      - prefix: /api/\n")},
	{name: "SandboxOn", rule: RuleSandboxOff, yaml: "sandbox: \"on\"\n" + routes("      - prefix: /api/\n")},
	{name: "AdminOff", rule: RuleAdminListen, yaml: "admin: {listen: \"off\"}\n" + routes("      - prefix: /api/\n")},
	{name: "HSTSOff", rule: RuleHSTSOff, sev: Warning, want: []string{"sites[0].headers.hsts"},
		yaml: head + site + "    headers: {hsts: \"off\"}\n    routes: [{prefix: /api/}]\n"},
	{name: "FrameOptionsOff", rule: RuleFrameOff, sev: Warning, want: []string{"sites[0].headers.frame_options"},
		yaml: head + site + "    headers: {frame_options: \"off\"}\n    routes: [{prefix: /api/}]\n"},
	{name: "NosniffOff", rule: RuleNosniffOff, sev: Warning, want: []string{"sites[0].headers.content_type_options"},
		yaml: head + site + "    headers: {content_type_options: \"off\"}\n    routes: [{prefix: /api/}]\n"},

	// upstream verification
	{name: "InsecureSkipVerify", rule: RuleUpInsecure, sev: Warning, want: []string{"sites[0].upstream.tls.insecure_skip_verify"},
		yaml: head + "sites:\n  - host: app.test\n    upstream: {targets: [\"https://10.0.0.5:443\"], tls: {insecure_skip_verify: true}}\n    routes: [{prefix: /api/}]\n"},
	{name: "PlainHTTPInternal", rule: RuleUpPlainHTTP, sev: Warning, want: []string{"sites[0].upstream.targets[1]"},
		yaml: head + "sites:\n  - host: app.test\n    upstream: {targets: [\"http://127.0.0.1:9001\", \"http://10.0.0.5:80\"]}\n    routes: [{prefix: /api/}]\n"},
	{name: "PlainHTTPLoopback", rule: RuleUpPlainHTTP, yaml: routes("      - prefix: /api/\n")},
	{name: "HTTPSWithoutCA", rule: RuleUpSysRoots, sev: Info, want: []string{"sites[0].upstream.targets[0]"},
		yaml: head + "sites:\n  - host: app.test\n    upstream: {targets: [\"https://10.0.0.5:443\", \"https://10.0.0.6:443\"]}\n    routes: [{prefix: /api/}]\n"},
	{name: "HTTPSWithCA", rule: RuleUpSysRoots,
		yaml: head + "sites:\n  - host: app.test\n    upstream: {targets: [\"https://10.0.0.5:443\"], tls: {ca: ca.pem}}\n    routes: [{prefix: /api/}]\n"},
	{name: "HTTPSInsecureIsNotAlsoSystemRoots", rule: RuleUpSysRoots,
		yaml: head + "sites:\n  - host: app.test\n    upstream: {targets: [\"https://10.0.0.5:443\"], tls: {insecure_skip_verify: true}}\n    routes: [{prefix: /api/}]\n"},

	// overlapping and shadowed routes
	{name: "DuplicateRoute", rule: RuleRouteDup, sev: Error, want: []string{"sites[0].routes[2].prefix"},
		yaml: routes("      - prefix: /api/\n      - exact: /api/\n      - prefix: /api/\n        methods: [POST]\n")},
	{name: "DuplicateDeny", rule: RuleRouteDup, sev: Error, want: []string{"sites[0].deny[1].regex"},
		yaml: head + site + "    deny: [{regex: '^/x'}, {regex: '^/x'}]\n    routes: [{prefix: /api/}]\n"},
	{name: "ExactAndPrefixAreNotDuplicates", rule: RuleRouteDup, yaml: routes("      - exact: /api/\n      - prefix: /api/\n")},
	{name: "DeniedExact", rule: RuleRouteDenied, sev: Warning, want: []string{"sites[0].routes[1].exact"},
		yaml: head + site + "    deny: [{prefix: /old/}]\n    routes:\n      - prefix: /api/\n      - exact: /old/page\n"},
	{name: "DeniedPrefixByRegex", rule: RuleRouteDenied, sev: Warning, want: []string{"sites[0].routes[0].prefix"},
		yaml: head + site + "    deny: [{regex: '^/legacy/.*'}]\n    routes:\n      - prefix: /legacy/x/\n      - prefix: /legacy-api/\n"},
	{name: "DeniedPrefixByUnanchoredRegex", rule: RuleRouteDenied, sev: Warning, want: []string{"sites[0].routes[0].prefix"},
		yaml: head + site + "    deny: [{regex: /internal/}]\n    routes:\n      - prefix: /app/internal/\n      - prefix: /app/\n"},
	{name: "DeniedRegexByPrefix", rule: RuleRouteDenied, sev: Warning, want: []string{"sites[0].routes[0].regex"},
		yaml: head + site + "    deny: [{prefix: /adm}]\n    routes:\n      - regex: '^/adm/[0-9]+$'\n"},
	{name: "DeniedExactByExact", rule: RuleRouteDenied, sev: Warning, want: []string{"sites[0].routes[0].exact", "sites[0].routes[1].regex"},
		yaml: head + site + "    deny: [{exact: /x}]\n    routes:\n      - exact: /x\n      - regex: '^/x$'\n      - prefix: /x\n"},
	{name: "PartlyDeniedIsFine", rule: RuleRouteDenied,
		yaml: head + site + "    deny: [{prefix: /api/internal/}, {regex: '^/api/v[0-9]+/admin$'}]\n    routes:\n      - prefix: /api/\n"},
	{name: "RegexUnderPrefix", rule: RuleRouteShadow, sev: Info, want: []string{"sites[0].routes[1].regex"},
		yaml: routes("      - prefix: /api/\n      - regex: '^/api/User/[^/]+/ClientLog$'\n        methods: [POST]\n")},
	{name: "RegexEqualToExact", rule: RuleRouteShadow, sev: Info, want: []string{"sites[0].routes[1].regex"},
		yaml: routes("      - exact: /a\n      - regex: '^/a$'\n")},
	{name: "RegexAfterBroaderRegex", rule: RuleRouteShadow, sev: Info, want: []string{"sites[0].routes[1].regex"},
		yaml: routes("      - regex: '^/r/.*'\n      - regex: '^/r/x/[0-9]+$'\n")},
	{name: "EverythingUnderRootPrefix", rule: RuleRouteShadow, sev: Info, want: []string{"sites[0].routes[1].regex"},
		yaml: head + site + "    deny: [{prefix: /admin/}, {prefix: /manager/}, {prefix: /idsadmin/}, {prefix: /cfadmin/}, {prefix: /server-status}, {prefix: /actuator/}, {prefix: /WEB-INF/}, {prefix: /console/}, {prefix: /phpmyadmin/}]\n    routes:\n      - prefix: /\n      - regex: '\\.json$'\n"},
	{name: "RegexBeforePrefixOfOtherPath", rule: RuleRouteShadow,
		yaml: routes("      - regex: '^/r/[0-9]+$'\n      - prefix: /static/\n      - regex: '^/api/x'\n      - regex: '^/r/.*'\n")},
	{name: "NestedPrefixOtherMethods", rule: RuleRouteMethods, sev: Info, want: []string{"sites[0].routes[1].methods"},
		yaml: routes("      - prefix: /app/\n        methods: [GET, POST]\n      - prefix: /app/api/\n      - prefix: /app/api/v1/\n      - prefix: /other/\n")},
	{name: "NestedPrefixSameMethods", rule: RuleRouteMethods,
		yaml: routes("      - prefix: /app/\n        methods: [POST, GET]\n      - prefix: /app/api/\n        methods: [get, post]\n")},

	// exposed admin paths
	{name: "RootPrefixExposesAdmin", rule: RuleRouteAdmin, sev: Warning, want: []string{"sites[0].routes[0].prefix"},
		yaml: head + site + "    deny: [{prefix: /admin/}]\n    routes:\n      - prefix: /\n      - prefix: /api/\n"},
	{name: "AdminRegex", rule: RuleRouteAdmin, sev: Warning, want: []string{"sites[0].routes[1].regex"},
		yaml: routes("      - prefix: /manager/status\n      - regex: '^/admin/[a-z]+$'\n")},
	{name: "ManagerPrefix", rule: RuleRouteAdmin, sev: Warning, want: []string{"sites[0].routes[0].prefix"},
		yaml: routes("      - prefix: /manager/\n")},
	{name: "AllAdminPathsDenied", rule: RuleRouteAdmin,
		yaml: head + site + "    deny: [{prefix: /admin/}, {prefix: /manager/}, {prefix: /idsadmin/}, {prefix: /cfadmin/}, {prefix: /server-status}, {prefix: /actuator/}, {prefix: /WEB-INF/}, {prefix: /console/}, {prefix: /phpmyadmin/}]\n    routes:\n      - prefix: /\n"},
	{name: "MatchEverythingReportedOnce", rule: RuleRouteAdmin, yaml: routes("      - regex: '.*'\n")},
	{name: "NarrowRoutes", rule: RuleRouteAdmin, yaml: routes("      - prefix: /api/\n      - prefix: /ids/\n      - exact: /\n")},
	{name: "JSessionID", rule: RuleJSessionID, sev: Warning, want: []string{"sites[0].routes[0].allow_jsessionid"},
		yaml: routes("      - prefix: /app/\n        allow_jsessionid: true\n")},

	// regex routes
	{name: "MatchesEverything", rule: RuleRegexAll, sev: Warning, want: []string{"sites[0].routes[0].regex"}, yaml: routes("      - regex: '.*'\n")},
	{name: "Unanchored", rule: RuleRegexAnchor, sev: Warning, want: []string{"sites[0].routes[0].regex", "sites[0].routes[3].regex"},
		yaml: routes("      - regex: 'report'\n      - regex: '^/report'\n      - regex: '(?i)^/report'\n      - regex: '^/a|/b'\n      - regex: '\\A/c'\n")},
	{name: "UnanchoredMatchEverythingReportedOnce", rule: RuleRegexAnchor, yaml: routes("      - regex: '.*'\n      - regex: '(.*)'\n")},
	{name: "NeverMatches", rule: RuleRegexNever, sev: Warning, want: []string{"sites[0].routes[0].regex"},
		yaml: routes("      - regex: '^api/v1'\n      - regex: '^/api/v1'\n")},
	{name: "EscapesPrefix", rule: RuleRegexEscape, sev: Warning, want: []string{"sites[0].routes[0].regex", "sites[0].routes[1].regex"},
		yaml: routes("      - regex: '^/static/.*|^/[a-z]+$'\n      - regex: '^/api(/.*)?|^/[^/]+/'\n")},
	{name: "BoundToPrefix", rule: RuleRegexEscape,
		yaml: routes("      - regex: '^/api/(v1|v2)/'\n      - regex: '^/apis?/'\n      - regex: '^/reports/[0-9]+$'\n      - regex: '^/a|^/b'\n")},

	// login rate limits
	{name: "LoginRateLimitOff", rule: RuleLoginRate, sev: Warning, want: []string{"sites[0].routes[0].rate_limit"},
		yaml: routes("      - prefix: /login\n        rate_limit: \"off\"\n")},
	{name: "TokenFastClass", rule: RuleLoginRate, sev: Warning, want: []string{"sites[0].routes[0].rate_limit"},
		yaml: head + "rate_limits: {fast: {rate: 100/s, burst: 100}}\n" + site + "    routes:\n      - exact: /oauth/token\n        methods: [POST]\n        rate_limit: fast\n"},
	{name: "UserAuthDefaultClass", rule: RuleLoginRate, sev: Warning, want: []string{"sites[0].routes[0].exact", "sites[0].routes[1].prefix"},
		yaml: routes("      - exact: /finesse/api/UserAuth\n      - prefix: /sso/\n      - prefix: /author/\n      - prefix: /lesson/\n")},
	{name: "SiteRateLimitOff", rule: RuleLoginRate, sev: Warning, want: []string{"sites[0].routes[0].regex"},
		yaml: head + site + "    rate_limit: \"off\"\n    routes:\n      - regex: '^/signin/[a-z]+$'\n"},
	{name: "LoginClass", rule: RuleLoginRate,
		yaml: head + "rate_limits: {slow: {rate: 600/m, burst: 10}}\n" + site + "    routes:\n      - exact: /login\n        rate_limit: login\n      - exact: /token\n        rate_limit: slow\n"},

	// WebSockets
	{name: "WebSocketUncapped", rule: RuleWSUncapped, sev: Warning, want: []string{"sites[0].routes[1].websocket"},
		yaml: routes("      - prefix: /api/\n      - exact: /ws\n        websocket: true\n")},
	{name: "WebSocketRouteCap", rule: RuleWSUncapped,
		yaml: routes("      - exact: /ws\n        websocket: true\n        max_websockets: 100\n")},
	{name: "WebSocketPerClientCapOnly", rule: RuleWSUncapped,
		yaml: routes("      - exact: /ws\n        websocket: true\n        max_websockets_per_client: 4\n")},
	{name: "WebSocketSiteCapNoPerClient", rule: RuleWSPerClient, sev: Info, want: []string{"sites[0].routes[0].websocket"},
		yaml: head + site + "    max_websockets: 100\n    routes:\n      - exact: /ws\n        websocket: true\n"},
	{name: "WebSocketBothCaps", rule: RuleWSPerClient,
		yaml: head + site + "    max_websockets: 100\n    routes:\n      - exact: /ws\n        websocket: true\n        max_websockets_per_client: 4\n"},

	// caches
	{name: "PublicCacheWithAuth", rule: RuleCacheAuth, sev: Warning, want: []string{"sites[0].routes[1].cache.public"},
		yaml: head + site + "    auth: {kind: basic_upstream, verify_url: /api/UserAuth}\n    routes:\n" +
			"      - prefix: /api/\n      - prefix: /assets/\n        cache: {enabled: true, public: true}\n" +
			"      - prefix: /static/\n        auth: {kind: \"off\"}\n        cache: {enabled: true, public: true}\n" +
			"      - prefix: /private/\n        cache: {enabled: true}\n"},
	{name: "PublicCacheWithoutAuth", rule: RuleCacheAuth, yaml: routes("      - prefix: /assets/\n        cache: {enabled: true, public: true}\n")},
	{name: "PublicCachePOST", rule: RuleCacheMethods, sev: Info, want: []string{"sites[0].routes[0].cache.public"},
		yaml: routes("      - prefix: /assets/\n        methods: [GET, POST]\n        cache: {enabled: true, public: true}\n      - prefix: /x/\n        methods: [GET, POST]\n        cache: {enabled: true}\n")},

	// client identity
	{name: "TrustEveryone", rule: RuleProxiesAll, sev: Error, want: []string{"trusted_proxies[0]", "trusted_proxies[2]"},
		yaml: "trusted_proxies: [0.0.0.0/0, 10.0.0.0/8, \"::/0\"]\nclient_ip: {header: X-Forwarded-For}\n" + routes("      - prefix: /api/\n")},
	{name: "TrustTooWide", rule: RuleProxiesBroad, sev: Warning, want: []string{"trusted_proxies[0]", "trusted_proxies[2]"},
		yaml: "trusted_proxies: [0.0.0.0/4, 10.0.0.0/8, \"2001::/16\", \"2001:db8::/32\", 192.0.2.1]\nclient_ip: {header: X-Forwarded-For}\n" + routes("      - prefix: /api/\n")},
	{name: "HeaderWithoutProxies", rule: RuleClientIPNoop, sev: Warning, want: []string{"client_ip.header"},
		yaml: "client_ip: {header: X-Forwarded-For}\n" + routes("      - prefix: /api/\n")},
	{name: "ProxiesWithoutSource", rule: RuleClientIPNoop, sev: Warning, want: []string{"trusted_proxies"},
		yaml: "trusted_proxies: [10.0.0.10]\n" + routes("      - prefix: /api/\n")},
	{name: "ProxiesWithProxyProtocol", rule: RuleClientIPNoop,
		yaml: "trusted_proxies: [10.0.0.10]\nclient_ip: {proxy_protocol: true}\n" + routes("      - prefix: /api/\n")},
	{name: "ExemptTooWide", rule: RuleExemptBroad, sev: Warning, want: []string{"exempt[1]"},
		yaml: "exempt: [192.0.2.10/32, 0.0.0.0/1]\n" + routes("      - prefix: /api/\n")},

	// certificates
	{name: "ExpiredShortLived", rule: RuleCertExpired, sev: Error, want: []string{"tls.cert"}, now: 48 * time.Hour,
		yaml: routes("      - prefix: /api/\n"), setup: selfSignedFor("app.test")},
	{name: "ExpiredSiteCert", rule: RuleCertExpired, sev: Error, want: []string{"sites[0].tls.cert"},
		yaml: head + site + "    tls: {cert: app.pem, key: site-key.pem}\n    routes: [{prefix: /api/}]\n",
		setup: func(t *testing.T, dir string) {
			selfSignedFor("app.test")(t, dir)
			writeCert(t, dir, "app.pem", time.Now().Add(-90*24*time.Hour), time.Now().Add(-time.Hour), "app.test")
		}},
	{name: "NotYetValid", rule: RuleCertNotYet, sev: Warning, want: []string{"tls.cert"}, now: -48 * time.Hour,
		yaml: routes("      - prefix: /api/\n"), setup: selfSignedFor("app.test")},
	{name: "ExpiresIn10Days", rule: RuleCertExpiring, sev: Warning, want: []string{"tls.cert"},
		yaml: routes("      - prefix: /api/\n"), setup: certFor(-80, 10, "app.test")},
	{name: "SiteCertExpiresIn10Days", rule: RuleCertExpiring, sev: Warning, want: []string{"sites[0].tls.cert"},
		yaml: head + site + "    tls: {cert: app.pem, key: site-key.pem}\n    routes: [{prefix: /api/}]\n",
		setup: func(t *testing.T, dir string) {
			certFor(-30, 60, "other.test")(t, dir)
			writeCert(t, dir, "app.pem", time.Now().Add(-80*24*time.Hour), time.Now().Add(10*24*time.Hour), "app.test")
		}},
	{name: "ExpiresIn60Days", rule: RuleCertExpiring, yaml: routes("      - prefix: /api/\n"), setup: certFor(-30, 60, "app.test")},
	{name: "ShortLivedIsInfo", rule: RuleCertExpiring, sev: Info, want: []string{"tls.cert"},
		yaml: routes("      - prefix: /api/\n"), setup: selfSignedFor("app.test")},
	{name: "ShortLivedExpiringSoonIsInfo", rule: RuleCertExpiring, sev: Info, want: []string{"tls.cert"}, now: 20 * time.Hour,
		yaml: routes("      - prefix: /api/\n"), setup: selfSignedFor("app.test")},
	{name: "NameMismatch", rule: RuleCertName, sev: Warning, want: []string{"sites[0].host"},
		yaml: head + site + "    aliases: [www.app.test]\n    routes: [{prefix: /api/}]\n", setup: certFor(-30, 60, "*.app.test")},
	{name: "NameMismatchSecondSite", rule: RuleCertName, sev: Warning, want: []string{"sites[1].host"},
		yaml:  routes("      - prefix: /api/\n") + "  - host: other.test\n    upstream: {targets: [\"http://127.0.0.1:9002\"]}\n    routes: [{prefix: /api/}]\n",
		setup: certFor(-30, 60, "app.test", "www.app.test")},
	{name: "NamesCovered", rule: RuleCertName,
		yaml: head + site + "    aliases: [www.app.test]\n    routes: [{prefix: /api/}]\n", setup: certFor(-30, 60, "app.test", "*.app.test")},
	{name: "NameMismatchShortLivedIsInfo", rule: RuleCertName, sev: Info, want: []string{"sites[0].host"},
		yaml: routes("      - prefix: /api/\n"), setup: selfSignedFor("other.test")},
	{name: "SiteOwnCertCovers", rule: RuleCertName,
		yaml: head + site + "    tls: {cert: app.pem, key: site-key.pem}\n    routes: [{prefix: /api/}]\n",
		setup: func(t *testing.T, dir string) {
			certFor(-30, 60, "other.test")(t, dir)
			writeCert(t, dir, "app.pem", time.Now().Add(-30*24*time.Hour), time.Now().Add(60*24*time.Hour), "app.test")
		}},

	// key files
	{name: "WorldReadableKey", rule: RuleKeyWorld, sev: Error, want: []string{"tls.key", "sites[0].upstream.tls.key"},
		yaml: head + "sites:\n  - host: app.test\n    upstream: {targets: [\"https://10.0.0.5:443\"], tls: {ca: ca.pem, cert: client.pem, key: client-key.pem}}\n    routes: [{prefix: /api/}]\n",
		setup: func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "site-key.pem"), []byte("key"), 0o644)
			writeFile(t, filepath.Join(dir, "client-key.pem"), []byte("key"), 0o604)
		}},
	{name: "GroupReadableKey", rule: RuleKeyGroup, sev: Info, want: []string{"tls.key"},
		yaml:  routes("      - prefix: /api/\n"),
		setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "site-key.pem"), []byte("key"), 0o640) }},
	{name: "PrivateKey", rule: RuleKeyGroup,
		yaml:  routes("      - prefix: /api/\n"),
		setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "site-key.pem"), []byte("key"), 0o600) }},

	// cache_dir
	{name: "CacheDirOpenToOthers", rule: RuleCacheDir, sev: Error, want: []string{"cache_dir"},
		yaml:  "cache_dir: {{DIR}}/cache\n" + routes("      - prefix: /api/\n"),
		setup: cacheDirWith(0o755)},
	{name: "CacheDirALink", rule: RuleCacheDir, sev: Error, want: []string{"cache_dir"},
		yaml: "cache_dir: {{DIR}}/cache\n" + routes("      - prefix: /api/\n"),
		setup: func(t *testing.T, dir string) {
			cacheDirWith(0o700)(t, dir)
			if err := os.Rename(filepath.Join(dir, "cache"), filepath.Join(dir, "real")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "cache")); err != nil {
				t.Fatal(err)
			}
		}},
	{name: "CacheDirOfAnotherUser", rule: RuleCacheDir, sev: Error, want: []string{"cache_dir"},
		yaml:  "user: nobody\ncache_dir: {{DIR}}/cache\n" + routes("      - prefix: /api/\n"),
		setup: cacheDirWith(0o700)},
	{name: "CacheDirPrivate", rule: RuleCacheDir,
		yaml:  "cache_dir: {{DIR}}/cache\n" + routes("      - prefix: /api/\n"),
		setup: cacheDirWith(0o700)},
	{name: "CacheDirNotMadeYet", rule: RuleCacheDir,
		yaml: "cache_dir: {{DIR}}/cache\n" + routes("      - prefix: /api/\n")},
}

// cacheDirWith makes dir/cache with the given mode.
func cacheDirWith(mode os.FileMode) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Mkdir(filepath.Join(dir, "cache"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "cache"), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func selfSignedFor(hosts ...string) func(*testing.T, string) {
	return func(t *testing.T, dir string) { writeSelfSigned(t, dir, hosts...) }
}

// certFor writes a listener certificate valid from `from` to `to` days
// from now.
func certFor(from, to int, hosts ...string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		day := 24 * time.Hour
		writeCert(t, dir, "site.pem", time.Now().Add(time.Duration(from)*day), time.Now().Add(time.Duration(to)*day), hosts...)
		writeFile(t, filepath.Join(dir, "site-key.pem"), []byte("key"), 0o600)
	}
}

func TestRules(t *testing.T) {
	triggered := map[string]bool{}
	for _, tc := range ruleCases {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			var setup func(string)
			if tc.setup != nil {
				setup = func(dir string) { tc.setup(t, dir) }
			}
			all := run(t, tc.yaml, time.Now().Add(tc.now), setup)
			got := byRule(all, tc.rule)
			if !slices.Equal(keys(got), append([]string{}, tc.want...)) {
				t.Fatalf("%s findings at %q, want %q\nall findings:\n%s", tc.rule, keys(got), tc.want, dump(all))
			}
			for _, f := range got {
				if f.Severity != tc.sev {
					t.Errorf("%s: severity %s, want %s", f, f.Severity, tc.sev)
				}
				if f.Line <= 0 || f.Message == "" || f.Fix == "" {
					t.Errorf("%s: want a line, a message and a fix", f)
				}
			}
			if len(got) > 0 {
				triggered[tc.rule] = true
			}
		})
	}
	// Every rule has a case that triggers it, apart from the two that
	// report load and build errors (tested with the report).
	for _, r := range Rules() {
		if !triggered[r.ID] && r.ID != RuleConfigError && r.ID != RuleBuildError && r.ID != RuleConfigWarn && !t.Failed() {
			t.Errorf("no case triggers rule %s", r.ID)
		}
	}
}

func dump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}
