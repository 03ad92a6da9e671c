package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/units"
)

// validYAML is a complete config that loosens no default: it must load and
// produce no warnings.
const validYAML = `listen: 0.0.0.0:443
admin:
  listen: 127.0.0.1:9901
tls:
  cert: certs/site.pem
  key: certs/site.key
  versions: ["1.2", "1.3"]
  ciphers: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
  client_auth: none
limits:
  max_header_bytes: 16KiB
  max_body: 20MiB
  read_header_timeout: 5s
sites:
  - host: app.example.com
    aliases: [www.example.com]
    upstream:
      targets: ["https://10.0.0.5:8445", "https://10.0.0.6:8445/"]
      tls:
        ca: certs/internal-ca.pem
    deny:
      - prefix: /admin
    routes:
      - exact: /
      - prefix: /static/
      - regex: ^/api/[0-9]+$
        methods: [get, POST]
        max_body: 1MiB
      - exact: /ws
        websocket: true
  - host: local.example.com
    upstream:
      targets: ["http://127.0.0.1:9001"]
    routes:
      - prefix: /
`

// minimalYAML names only what has no default.
// afterTLS is minimalYAML without its tls block, for cases that write
// their own.
var afterTLS = strings.TrimPrefix(minimalYAML, "tls:\n  cert: c.pem\n  key: k.pem\n")

const minimalYAML = `tls:
  cert: c.pem
  key: k.pem
sites:
  - host: app.example.com
    upstream:
      targets: ["http://127.0.0.1:9001"]
    routes:
      - prefix: /
`

// lineOf returns the 1-based line of the first line of doc containing sub;
// a sub starting with "=" must be the whole line, spaces aside.
func lineOf(t *testing.T, doc, sub string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if whole, ok := strings.CutPrefix(sub, "="); ok && strings.TrimSpace(l) == whole || !ok && strings.Contains(l, sub) {
			return i + 1
		}
	}
	t.Fatalf("%q not in test document", sub)
	return 0
}

// parseErrors parses doc and returns its errors, failing the test when the
// config loads or the error is not Errors.
func parseErrors(t *testing.T, doc string) Errors {
	t.Helper()
	cfg, err := Parse("rampart.yaml", []byte(doc))
	if err == nil {
		t.Fatalf("config loaded, want an error:\n%s", doc)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config together with an error")
	}
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error is %T %v, want non-empty config.Errors", err, err)
	}
	for _, e := range es {
		if e.File != "rampart.yaml" {
			t.Errorf("error %v: File = %q, want rampart.yaml", e, e.File)
		}
	}
	return es
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	cfg, err := Parse("/etc/rampart/rampart.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return cfg
}

func TestParse_UnknownKeyNamesFileLineAndKey(t *testing.T) {
	doc := `tls:
  cert: c.pem
  key: k.pem
sites:
  - host: app.example.com
    upstream: {targets: ["http://127.0.0.1:9001"]}
    rotes:
      - prefix: /
`
	es := parseErrors(t, doc)
	e := es[0]
	if e.Line != 7 {
		t.Errorf("Line = %d, want 7 (%v)", e.Line, e)
	}
	if e.Key != "sites[0].rotes" {
		t.Errorf("Key = %q, want sites[0].rotes", e.Key)
	}
	if !strings.Contains(e.Msg, "unknown key") {
		t.Errorf("Msg = %q, want it to say unknown key", e.Msg)
	}
	if s := e.Error(); !strings.HasPrefix(s, "rampart.yaml:7: sites[0].rotes: ") {
		t.Errorf("Error() = %q, want file:line: key: prefix", s)
	}
}

func TestParse_UnknownKeysAreAllReported(t *testing.T) {
	cases := []struct {
		name, doc, marker, key string
	}{
		{"top level", "listn: 0.0.0.0:443\n" + minimalYAML, "listn:", "listn"},
		{"in tls", strings.Replace(minimalYAML, "  key: k.pem\n", "  key: k.pem\n  version: [\"1.3\"]\n", 1), "version:", "tls.version"},
		{"in a route", strings.Replace(minimalYAML, "      - prefix: /\n", "      - prefix: /\n        method: [GET]\n", 1), "method:", "sites[0].routes[0].method"},
		{"in upstream tls", strings.Replace(minimalYAML, "    upstream:\n", "    upstream:\n      tls: {insecure: true}\n", 1), "insecure", "sites[0].upstream.tls.insecure"},
		{"key with a space", "lis ten: x\n" + minimalYAML, "lis ten", "lis ten"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, tc.doc)
			want := lineOf(t, tc.doc, tc.marker)
			for _, e := range es {
				if e.Key == tc.key && e.Line == want && strings.Contains(e.Msg, "unknown key") {
					return
				}
			}
			t.Errorf("no unknown-key error for %s at line %d; got %v", tc.key, want, es)
		})
	}
}

func TestParse_WrongTypeNamesLineAndKey(t *testing.T) {
	cases := []struct {
		name, doc, marker, key string
	}{
		{"string for a list", strings.Replace(minimalYAML, "  key: k.pem\n", "  key: k.pem\n  versions: \"1.2\"\n", 1), "versions:", "tls.versions"},
		{"string for targets", strings.Replace(minimalYAML, `targets: ["http://127.0.0.1:9001"]`, `targets: http://127.0.0.1:9001`, 1), "targets:", "sites[0].upstream.targets"},
		{"list for a string", strings.Replace(minimalYAML, "- host: app.example.com", "- host: [app.example.com]", 1), "host:", "sites[0].host"},
		{"string for a bool", strings.Replace(minimalYAML, "  key: k.pem\n", "  key: k.pem\n  session_tickets: maybe\n", 1), "session_tickets", "tls.session_tickets"},
		{"string for an int", strings.Replace(minimalYAML, "    routes:", "    deny_status: forbidden\n    routes:", 1), "deny_status", "sites[0].deny_status"},
		{"scalar for a mapping", strings.Replace(minimalYAML, "tls:\n  cert: c.pem\n  key: k.pem\n", "tls: on\n", 1) + "", "tls: on", "tls"},
		{"bad size", "limits:\n  max_body: 15XB\n" + minimalYAML, "max_body", "limits.max_body"},
		{"bare number duration", "limits:\n  idle_timeout: 30\n" + minimalYAML, "idle_timeout", "limits.idle_timeout"},
		{"list for a duration", "limits:\n  send_timeout: [1s]\n" + minimalYAML, "send_timeout", "limits.send_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, tc.doc)
			want := lineOf(t, tc.doc, tc.marker)
			for _, e := range es {
				if e.Line == want && e.Key == tc.key {
					return
				}
			}
			t.Errorf("want an error at line %d key %q; got %v", want, tc.key, es)
		})
	}
}

// keyErrorCase is a config that must fail with an error naming key, at the
// line holding marker, with msg in its message.
type keyErrorCase struct {
	name   string
	doc    string
	marker string // text on the line the error must name
	key    string
	msg    string // substring of the message
}

func checkKeyErrors(t *testing.T, cases []keyErrorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, tc.doc)
			want := lineOf(t, tc.doc, tc.marker)
			for _, e := range es {
				if e.Key == tc.key {
					if e.Line != want {
						t.Errorf("%s: Line = %d, want %d", e.Key, e.Line, want)
					}
					if !strings.Contains(e.Msg, tc.msg) {
						t.Errorf("%s: Msg = %q, want it to contain %q", e.Key, e.Msg, tc.msg)
					}
					return
				}
			}
			t.Errorf("no error for key %q; got:\n%v", tc.key, es)
		})
	}
}

func TestParse_ValidationErrorsNameLineAndKey(t *testing.T) {
	site := func(body string) string {
		return "tls:\n  cert: c.pem\n  key: k.pem\nsites:\n  - host: app.example.com\n" + body
	}
	upstream := "    upstream:\n      targets: [\"http://127.0.0.1:9001\"]\n"
	routes := "    routes:\n      - prefix: /\n"
	cases := []keyErrorCase{
		{
			name:   "TLS 1.0 refused at the line of the value",
			doc:    "tls:\n  cert: c.pem\n  key: k.pem\n  versions:\n    - \"1.2\"\n    - \"1.0\"\n" + afterTLS,
			marker: `- "1.0"`, key: "tls.versions[1]", msg: `"1.0" is not accepted`,
		},
		{
			name:   "TLS 1.1 refused at the line of the value",
			doc:    "tls:\n  cert: c.pem\n  key: k.pem\n  versions:\n    - \"1.1\"\n" + afterTLS,
			marker: `- "1.1"`, key: "tls.versions[0]", msg: `"1.1" is not accepted`,
		},
		{
			name:   "TLS version as a number is not 1.2",
			doc:    "tls:\n  cert: c.pem\n  key: k.pem\n  versions: [1.0]\n" + afterTLS,
			marker: "versions:", key: "tls.versions[0]", msg: "not accepted",
		},
		{
			name:   "weak cipher refused",
			doc:    "tls:\n  cert: c.pem\n  key: k.pem\n  ciphers:\n    - TLS_RSA_WITH_AES_128_CBC_SHA\n" + afterTLS,
			marker: "TLS_RSA_WITH", key: "tls.ciphers[0]", msg: "not an allowed suite",
		},
		{
			name:   "missing cert",
			doc:    "tls:\n  key: k.pem\n" + afterTLS,
			marker: "tls:", key: "tls.cert", msg: "missing",
		},
		{
			name:   "missing key",
			doc:    "tls:\n  cert: c.pem\n" + afterTLS,
			marker: "tls:", key: "tls.key", msg: "missing",
		},
		{
			name:   "client_auth require without client_ca",
			doc:    "tls:\n  cert: c.pem\n  key: k.pem\n  client_auth: require\n" + afterTLS,
			marker: "tls:", key: "tls.client_ca", msg: "needs client_ca",
		},
		{
			name:   "client_auth request without client_ca",
			doc:    "tls:\n  cert: c.pem\n  key: k.pem\n  client_auth: request\n" + afterTLS,
			marker: "tls:", key: "tls.client_ca", msg: "needs client_ca",
		},
		{
			name:   "client_auth unknown mode",
			doc:    "tls:\n  cert: c.pem\n  key: k.pem\n  client_auth: optional\n  client_ca: ca.pem\n" + afterTLS,
			marker: "client_auth:", key: "tls.client_auth", msg: "use none, request or require",
		},
		{
			name:   "no sites",
			doc:    "tls:\n  cert: c.pem\n  key: k.pem\nsites: []\n",
			marker: "sites:", key: "sites", msg: "no sites",
		},
		{
			name:   "listen without port",
			doc:    "listen: 0.0.0.0\n" + minimalYAML,
			marker: "listen:", key: "listen", msg: "not host:port",
		},
		{
			name:   "target without scheme",
			doc:    site("    upstream:\n      targets:\n        - 10.0.0.5:80\n" + routes),
			marker: "10.0.0.5:80", key: "sites[0].upstream.targets[0]", msg: "scheme://host:port",
		},
		{
			name:   "target without port",
			doc:    site("    upstream:\n      targets:\n        - http://x\n" + routes),
			marker: "http://x", key: "sites[0].upstream.targets[0]", msg: "scheme://host:port",
		},
		{
			name:   "target with path",
			doc:    site("    upstream:\n      targets:\n        - http://10.0.0.5:80\n        - http://10.0.0.5:80/app\n" + routes),
			marker: "/app", key: "sites[0].upstream.targets[1]", msg: "no path",
		},
		{
			name:   "target with credentials",
			doc:    site("    upstream:\n      targets:\n        - https://user:pw@10.0.0.5:8443\n" + routes),
			marker: "user:pw", key: "sites[0].upstream.targets[0]", msg: "no credentials",
		},
		{
			name:   "target with query",
			doc:    site("    upstream:\n      targets:\n        - https://10.0.0.5:8443?x=1\n" + routes),
			marker: "?x=1", key: "sites[0].upstream.targets[0]", msg: "scheme://host:port",
		},
		{
			name:   "target with fragment",
			doc:    site("    upstream:\n      targets:\n        - https://10.0.0.5:8443#frag\n" + routes),
			marker: "#frag", key: "sites[0].upstream.targets[0]", msg: "scheme://host:port",
		},
		{
			name:   "target with other scheme",
			doc:    site("    upstream:\n      targets:\n        - ftp://10.0.0.5:21\n" + routes),
			marker: "ftp://", key: "sites[0].upstream.targets[0]", msg: "scheme://host:port",
		},
		{
			name:   "target with empty host",
			doc:    site("    upstream:\n      targets:\n        - http://:80\n" + routes),
			marker: "http://:80", key: "sites[0].upstream.targets[0]", msg: "scheme://host:port",
		},
		{
			name:   "target with port out of range",
			doc:    site("    upstream:\n      targets:\n        - http://10.0.0.5:99999\n" + routes),
			marker: "99999", key: "sites[0].upstream.targets[0]", msg: "scheme://host:port",
		},
		{
			name:   "target with port zero",
			doc:    site("    upstream:\n      targets:\n        - http://10.0.0.5:0\n" + routes),
			marker: ":0", key: "sites[0].upstream.targets[0]", msg: "scheme://host:port",
		},
		{
			name:   "no targets",
			doc:    site("    upstream: {}\n" + routes),
			marker: "upstream:", key: "sites[0].upstream.targets", msg: "no upstream targets",
		},
		{
			name:   "upstream client cert without key",
			doc:    site("    upstream:\n      targets: [\"https://10.0.0.5:8443\"]\n      tls:\n        cert: c.pem\n" + routes),
			marker: "      tls:", key: "sites[0].upstream.tls", msg: "both cert and key",
		},
		{
			name:   "site tls without key",
			doc:    site("    tls:\n      cert: s.pem\n" + upstream + routes),
			marker: "    tls:", key: "sites[0].tls", msg: "both cert and key",
		},
		{
			name:   "duplicate host across sites",
			doc:    site(upstream+routes) + "  - host: App.Example.com.\n" + upstream + routes,
			marker: "App.Example.com.", key: "sites[1].host", msg: `already used by sites[0].host`,
		},
		{
			name:   "alias duplicates another site's host",
			doc:    site(upstream+routes) + "  - host: b.example.com\n    aliases: [x.example.com, app.example.com]\n" + upstream + routes,
			marker: "aliases:", key: "sites[1].aliases[1]", msg: `already used by sites[0].host`,
		},
		{
			name:   "alias duplicates its own host",
			doc:    strings.Replace(site(upstream+routes), "  - host: app.example.com\n", "  - host: app.example.com\n    aliases:\n      - APP.example.com\n", 1),
			marker: "APP.example.com", key: "sites[0].aliases[0]", msg: "already used",
		},
		{
			name:   "host with port",
			doc:    strings.Replace(site(upstream+routes), "app.example.com", "app.example.com:443", 1),
			marker: "host:", key: "sites[0].host", msg: "not a host name",
		},
		{
			name:   "wildcard host",
			doc:    strings.Replace(site(upstream+routes), "app.example.com", "\"*.example.com\"", 1),
			marker: "host:", key: "sites[0].host", msg: "not a host name",
		},
		{
			name:   "no routes",
			doc:    site(upstream),
			marker: "- host:", key: "sites[0].routes", msg: "no routes",
		},
		{
			name:   "route with exact and prefix",
			doc:    site(upstream + "    routes:\n      - prefix: /\n      - exact: /a\n        prefix: /b\n"),
			marker: "exact: /a", key: "sites[0].routes[1]", msg: "exactly one of exact, prefix or regex",
		},
		{
			name:   "route with prefix and regex",
			doc:    site(upstream + "    routes:\n      - prefix: /b\n        regex: ^/b\n"),
			marker: "prefix: /b", key: "sites[0].routes[0]", msg: "exactly one of",
		},
		{
			name:   "route with none of exact prefix regex",
			doc:    site(upstream + "    routes:\n      - methods: [GET]\n"),
			marker: "methods:", key: "sites[0].routes[0]", msg: "exactly one of",
		},
		{
			name:   "route prefix not starting with slash",
			doc:    site(upstream + "    routes:\n      - prefix: api/\n"),
			marker: "prefix: api/", key: "sites[0].routes[0].prefix", msg: "must start with /",
		},
		{
			name:   "invalid regex",
			doc:    site(upstream + "    routes:\n      - prefix: /\n      - regex: ^/api/(v1\n"),
			marker: "regex:", key: "sites[0].routes[1].regex", msg: "invalid regular expression",
		},
		{
			name:   "invalid deny regex",
			doc:    site(upstream + routes + "    deny:\n      - regex: \"[z-a]\"\n"),
			marker: "regex:", key: "sites[0].deny[0].regex", msg: "invalid regular expression",
		},
		{
			name:   "TRACE refused",
			doc:    site(upstream + "    routes:\n      - prefix: /\n        methods: [GET, TRACE]\n"),
			marker: "methods:", key: "sites[0].routes[0].methods[1]", msg: "never proxied",
		},
		{
			name:   "trace in lower case refused",
			doc:    site(upstream + "    routes:\n      - prefix: /\n        methods:\n          - trace\n"),
			marker: "- trace", key: "sites[0].routes[0].methods[0]", msg: "TRACE is never proxied",
		},
		{
			name:   "CONNECT refused",
			doc:    site(upstream + "    routes:\n      - prefix: /\n        methods:\n          - GET\n          - CONNECT\n"),
			marker: "CONNECT", key: "sites[0].routes[0].methods[1]", msg: "never proxied",
		},
		{
			name:   "TRACK refused",
			doc:    site(upstream + "    routes:\n      - prefix: /\n        methods: [TRACK]\n"),
			marker: "methods:", key: "sites[0].routes[0].methods[0]", msg: "never proxied",
		},
		{
			name:   "method that is not a token",
			doc:    site(upstream + "    routes:\n      - prefix: /\n        methods: [\"GE T\"]\n"),
			marker: "methods:", key: "sites[0].routes[0].methods[0]", msg: "not an HTTP method",
		},
		{
			name:   "websocket route without GET",
			doc:    site(upstream + "    routes:\n      - exact: /ws\n        websocket: true\n        methods: [POST]\n"),
			marker: "methods:", key: "sites[0].routes[0].methods", msg: "websocket route needs GET",
		},
		{
			name:   "deny status below 400",
			doc:    site(upstream + routes + "    deny_status: 200\n"),
			marker: "deny_status:", key: "sites[0].deny_status", msg: "not an error status",
		},
		{
			name:   "deny status above 599",
			doc:    site(upstream + routes + "    deny_status: 600\n"),
			marker: "deny_status:", key: "sites[0].deny_status", msg: "not an error status",
		},
		{
			name:   "deny entry status out of range",
			doc:    site(upstream + routes + "    deny:\n      - prefix: /admin\n        status: 302\n"),
			marker: "status: 302", key: "sites[0].deny[0].status", msg: "not an error status",
		},
		{
			name:   "max_header_bytes below 1KiB",
			doc:    "limits:\n  max_header_bytes: 512B\n" + minimalYAML,
			marker: "max_header_bytes", key: "limits.max_header_bytes", msg: "between 1KiB and 1MiB",
		},
		{
			name:   "max_uri_length above max_header_bytes",
			doc:    "limits:\n  max_header_bytes: 2KiB\n  max_uri_length: 4KiB\n" + minimalYAML,
			marker: "max_uri_length", key: "limits.max_uri_length", msg: "between 256B and max_header_bytes",
		},
	}
	checkKeyErrors(t, cases)
}

func TestParse_AcceptsTLS12Only(t *testing.T) {
	doc := strings.Replace(minimalYAML, "  key: k.pem\n", "  key: k.pem\n  versions: [\"1.2\"]\n", 1)
	cfg := mustParse(t, doc)
	if len(cfg.TLS.Versions) != 1 || cfg.TLS.Versions[0] != "1.2" {
		t.Errorf("Versions = %v, want [1.2]", cfg.TLS.Versions)
	}
}

func TestParse_AcceptsTargetForms(t *testing.T) {
	for _, target := range []string{
		"http://127.0.0.1:9001",
		"https://10.0.0.5:8445/",
		"https://app-backend.internal:443",
		"http://[::1]:8080",
		"https://[fd00::5]:8443",
	} {
		t.Run(target, func(t *testing.T) {
			mustParse(t, strings.Replace(minimalYAML, "http://127.0.0.1:9001", target, 1))
		})
	}
}

func TestParse_RejectsEmptyFile(t *testing.T) {
	for name, doc := range map[string]string{
		"no bytes":      "",
		"blank lines":   "\n\n  \n",
		"comments only": "# rampart\n# nothing here\n",
	} {
		t.Run(name, func(t *testing.T) {
			es := parseErrors(t, doc)
			if len(es) != 1 || !strings.Contains(es[0].Msg, "empty") {
				t.Errorf("got %v, want one error saying the file is empty", es)
			}
		})
	}
}

func TestParse_RejectsTwoYAMLDocuments(t *testing.T) {
	cases := []struct {
		name, doc, marker string
	}{
		{"two configs", minimalYAML + "---\n" + minimalYAML, "---"},
		{"empty second document", minimalYAML + "---\n", "---"},
		{"second document with a syntax error", minimalYAML + "---\nsites: [\n", "sites: ["},
		{"garbage after document end marker", minimalYAML + "...\nlisten: [\n", "=..."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, tc.doc)
			if es[0].Line < lineOf(t, tc.doc, tc.marker) {
				t.Errorf("Line = %d, want the line of the second document (>= %d): %v", es[0].Line, lineOf(t, tc.doc, tc.marker), es)
			}
		})
	}
	t.Run("message names the rule", func(t *testing.T) {
		es := parseErrors(t, minimalYAML+"---\n"+minimalYAML)
		if !strings.Contains(es[0].Msg, "more than one YAML document") {
			t.Errorf("Msg = %q", es[0].Msg)
		}
	})
}

func TestParse_RejectsSyntaxErrorsWithLine(t *testing.T) {
	doc := minimalYAML + "listen: [unterminated\n"
	es := parseErrors(t, doc)
	if es[0].Line == 0 {
		t.Errorf("syntax error without a line: %v", es)
	}
}

func TestParse_ReportsEveryProblemInFileOrder(t *testing.T) {
	doc := `tls:
  versions: ["1.0"]
sites:
  - host: app.example.com
    upstream:
      targets: ["10.0.0.5:80"]
    deny_status: 302
    routes:
      - prefix: /
        methods: [TRACE]
`
	es := parseErrors(t, doc)
	want := []string{"tls.cert", "tls.key", "tls.versions[0]", "sites[0].upstream.targets[0]", "sites[0].deny_status", "sites[0].routes[0].methods[0]"}
	var got []string
	for _, e := range es {
		got = append(got, e.Key)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys = %v, want %v", got, want)
	}
}

func TestParse_AppliesSecureDefaults(t *testing.T) {
	cfg := mustParse(t, minimalYAML+"    deny:\n      - prefix: /admin\n")
	s := cfg.Sites[0]
	r := s.Routes[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Listen, DefaultListen},
		{"admin listen", cfg.Admin.Listen, DefaultAdmin},
		{"tls versions", strings.Join(cfg.TLS.Versions, ","), "1.2,1.3"},
		{"client auth", cfg.TLS.ClientAuth, "none"},
		{"session tickets", cfg.TLS.SessionTickets, false},
		{"handshake timeout", cfg.TLS.HandshakeTimeout.D(), 10 * time.Second},
		{"max header bytes", cfg.Limits.MaxHeaderBytes, units.ByteSize(8 << 10)},
		{"max uri length", cfg.Limits.MaxURILength, units.ByteSize(4 << 10)},
		{"max body", cfg.Limits.MaxBody, units.ByteSize(15 << 20)},
		{"read header timeout", cfg.Limits.ReadHeaderTimeout.D(), 10 * time.Second},
		{"idle timeout", cfg.Limits.IdleTimeout.D(), 20 * time.Second},
		{"body read timeout", cfg.Limits.BodyReadTimeout.D(), 10 * time.Second},
		{"send timeout", cfg.Limits.SendTimeout.D(), 10 * time.Second},
		{"body min rate", cfg.Limits.MinBodyRate(), int64(1 << 10)},
		{"body buffer total", cfg.Limits.BodyBufferTotal, units.ByteSize(256 << 20)},
		{"drain timeout", cfg.Limits.DrainTimeout.D(), 15 * time.Second},
		{"access log", cfg.Log.Access, "stdout"},
		{"security log", cfg.Log.Security, "stderr"},
		{"deny status", s.DenyStatus, 404},
		{"deny entry status", s.Deny[0].Status, 403},
		{"site max body", s.MaxBody, units.ByteSize(15 << 20)},
		{"connect timeout", s.Upstream.ConnectTimeout.D(), 5 * time.Second},
		{"response header timeout", s.Upstream.ResponseHeaderTimeout.D(), 60 * time.Second},
		{"upstream read timeout", s.Upstream.ReadTimeout.D(), 60 * time.Second},
		{"upstream send timeout", s.Upstream.SendTimeout.D(), 60 * time.Second},
		{"fail timeout", s.Upstream.FailTimeout.D(), 10 * time.Second},
		{"keepalive", s.Upstream.Keepalive, 128},
		{"hsts", *s.Headers.HSTS, DefaultHSTS},
		{"hsts value", *s.Headers.HSTS, "max-age=31536000; includeSubDomains"},
		{"frame options", *s.Headers.FrameOptions, "SAMEORIGIN"},
		{"referrer policy", *s.Headers.ReferrerPolicy, "strict-origin-when-cross-origin"},
		{"content type options", *s.Headers.ContentTypeOptions, "nosniff"},
		{"route methods", strings.Join(r.Methods, ","), "GET,HEAD"},
		{"route max body", r.MaxBody, units.ByteSize(15 << 20)},
		{"websocket", r.WebSocket, false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParse_DefaultsInheritFromLimitsAndSite(t *testing.T) {
	doc := "limits:\n  max_body: 2MiB\n" + strings.Replace(minimalYAML, "      - prefix: /\n",
		"      - prefix: /\n      - prefix: /upload/\n        max_body: 100MiB\n        methods: [post, put]\n", 1)
	cfg := mustParse(t, doc)
	s := cfg.Sites[0]
	if s.MaxBody != 2<<20 || s.Routes[0].MaxBody != 2<<20 {
		t.Errorf("site/route max_body = %v/%v, want limits.max_body 2MiB", s.MaxBody, s.Routes[0].MaxBody)
	}
	if s.Routes[1].MaxBody != 100<<20 {
		t.Errorf("route override = %v, want 100MiB", s.Routes[1].MaxBody)
	}
	if got := strings.Join(s.Routes[1].Methods, ","); got != "POST,PUT" {
		t.Errorf("methods = %s, want upper-cased POST,PUT", got)
	}
}

func TestParse_NormalisesHostNames(t *testing.T) {
	doc := strings.Replace(minimalYAML, "- host: app.example.com", "- host: App.Example.COM.\n    aliases: [WWW.example.com.]", 1)
	cfg := mustParse(t, doc)
	if cfg.Sites[0].Host != "app.example.com" || cfg.Sites[0].Aliases[0] != "www.example.com" {
		t.Errorf("host %q aliases %v, want lower case without the trailing dot", cfg.Sites[0].Host, cfg.Sites[0].Aliases)
	}
}

func TestParse_ExplicitHeaderOffIsKept(t *testing.T) {
	doc := strings.Replace(minimalYAML, "    routes:", "    headers:\n      hsts: \"off\"\n    routes:", 1)
	cfg := mustParse(t, doc)
	if got := *cfg.Sites[0].Headers.HSTS; got != "off" {
		t.Errorf("hsts = %q, want off (an explicit value is not replaced by the default)", got)
	}
}

func TestParse_SHA256IsStableAndDistinct(t *testing.T) {
	a1 := mustParse(t, minimalYAML)
	a2 := mustParse(t, minimalYAML)
	b := mustParse(t, minimalYAML+"# a comment changes the bytes\n")
	sum := sha256.Sum256([]byte(minimalYAML))
	if a1.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 = %s, want the hex SHA-256 of the bytes", a1.SHA256)
	}
	if a1.SHA256 != a2.SHA256 {
		t.Errorf("same bytes, different fingerprints: %s %s", a1.SHA256, a2.SHA256)
	}
	if a1.SHA256 == b.SHA256 {
		t.Errorf("different bytes, same fingerprint %s", a1.SHA256)
	}
}

func TestParse_ResolvesPathsAgainstConfigDirectory(t *testing.T) {
	cfg := mustParse(t, minimalYAML)
	if cfg.File != "/etc/rampart/rampart.yaml" {
		t.Errorf("File = %q", cfg.File)
	}
	for in, want := range map[string]string{
		"certs/a.pem":   "/etc/rampart/certs/a.pem",
		"/abs/a.pem":    "/abs/a.pem",
		"":              "",
		"../x/ca.pem":   "/etc/x/ca.pem",
		"./local/k.pem": "/etc/rampart/local/k.pem",
	} {
		if got := cfg.Path(in); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParse_ListenAddrs(t *testing.T) {
	cfg := mustParse(t, "listeners: [\"0.0.0.0:443\", \"[::]:443\"]\n"+minimalYAML)
	if got := strings.Join(cfg.ListenAddrs(), " "); got != "0.0.0.0:443 [::]:443" {
		t.Errorf("ListenAddrs = %s", got)
	}
	if cfg.Listen != "" {
		t.Errorf("Listen = %q, want no default when listeners are set", cfg.Listen)
	}
	es := parseErrors(t, "listeners: [\"0.0.0.0:443\", \"nope\"]\n"+minimalYAML)
	if es[0].Key != "listeners[1]" || es[0].Line != 1 {
		t.Errorf("got %v, want listeners[1] at line 1", es[0])
	}
}

func TestParseWithCert_NeedsNoCertFiles(t *testing.T) {
	doc := afterTLS
	if _, err := Parse("x.yaml", []byte(doc)); err == nil {
		t.Fatal("Parse without tls.cert loaded")
	}
	cfg, err := ParseWithCert("x.yaml", []byte(doc), &CertPEM{Cert: []byte("c"), Key: []byte("k")})
	if err != nil {
		t.Fatalf("ParseWithCert: %v", err)
	}
	if cfg.TLS.InMemory == nil {
		t.Error("InMemory not kept")
	}
}

func TestLoad_ReportsUnreadableFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("err = %v, want it to name the file", err)
	}
}

func TestLoad_ReadsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rampart.yaml")
	if err := os.WriteFile(path, []byte(validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path || cfg.Path("certs/site.pem") != filepath.Join(filepath.Dir(path), "certs/site.pem") {
		t.Errorf("File %q, Path %q", cfg.File, cfg.Path("certs/site.pem"))
	}
}

func TestLoad_ExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "rampart.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("the shipped example does not load:\n%v", err)
	}
	for _, w := range cfg.Warnings() {
		t.Logf("example warning: %s", w)
	}
}

func TestParse_BodyMinRateZeroSwitchesItOff(t *testing.T) {
	for _, c := range []struct {
		set  string
		want int64
	}{{"0", 0}, {"4KiB", 4 << 10}, {"500", 500}} {
		cfg := mustParse(t, "limits:\n  body_min_rate: "+c.set+"\n"+minimalYAML)
		if got := cfg.Limits.MinBodyRate(); got != c.want {
			t.Errorf("body_min_rate: %s gives %d, want %d", c.set, got, c.want)
		}
	}
	es := parseErrors(t, "limits:\n  body_min_rate: fast\n"+minimalYAML)
	if es[0].Line != 2 || !strings.Contains(es[0].Key, "body_min_rate") {
		t.Errorf("error %v, want line 2 naming limits.body_min_rate", es[0])
	}
}

func TestParse_BodyBufferTotalBelow1MiBIsAnError(t *testing.T) {
	es := parseErrors(t, "limits:\n  body_buffer_total: 512KiB\n"+minimalYAML)
	if es[0].Line != 2 || !strings.Contains(es[0].Key, "body_buffer_total") || !strings.Contains(es[0].Msg, "1MiB") {
		t.Errorf("error %v, want line 2 naming limits.body_buffer_total and the minimum", es[0])
	}
}

func TestParse_CacheDiskDefaults(t *testing.T) {
	cfg := mustParse(t, minimalYAML)
	if cfg.CacheDir != "" || cfg.Sites[0].CacheDiskSize != 0 || cfg.Sites[0].CacheDiskMaxObject != 0 {
		t.Errorf("no disk tier by default: cache_dir %q, cache_disk_size %v, cache_disk_max_object %v",
			cfg.CacheDir, cfg.Sites[0].CacheDiskSize, cfg.Sites[0].CacheDiskMaxObject)
	}
	for _, c := range []struct {
		size string
		want units.ByteSize
	}{
		{"10GiB", 256 << 20},  // the default
		{"512MiB", 128 << 20}, // a quarter of the disk budget
	} {
		cfg := mustParse(t, "cache_dir: /var/cache/rampart\n"+minimalYAML+"    cache_disk_size: "+c.size+"\n")
		if got := cfg.Sites[0].CacheDiskMaxObject; got != c.want {
			t.Errorf("cache_disk_size %s: cache_disk_max_object defaults to %v, want %v", c.size, got, c.want)
		}
	}
	cfg = mustParse(t, "cache_dir: /var/cache/rampart\n"+minimalYAML+"    cache_disk_size: 4GiB\n    cache_disk_max_object: 1GiB\n")
	if got := cfg.Sites[0].CacheDiskMaxObject; got != 1<<30 {
		t.Errorf("cache_disk_max_object = %v, want the 1GiB written", got)
	}
}

func TestParse_CacheDiskErrorsNameLineAndKey(t *testing.T) {
	cases := []keyErrorCase{
		{
			name:   "disk size without cache_dir",
			doc:    minimalYAML + "    cache_disk_size: 1GiB\n",
			marker: "cache_disk_size:", key: "sites[0].cache_disk_size", msg: "needs cache_dir",
		},
		{
			name:   "max object over a quarter of the disk size",
			doc:    "cache_dir: /var/cache/rampart\n" + minimalYAML + "    cache_disk_size: 1GiB\n    cache_disk_max_object: 512MiB\n",
			marker: "cache_disk_max_object:", key: "sites[0].cache_disk_max_object", msg: "more than a quarter",
		},
		{
			name:   "max object without disk size",
			doc:    "cache_dir: /var/cache/rampart\n" + minimalYAML + "    cache_disk_max_object: 512MiB\n",
			marker: "cache_disk_max_object:", key: "sites[0].cache_disk_max_object", msg: "no effect without cache_disk_size",
		},
		{
			name:   "max object within the memory tier's",
			doc:    "cache_dir: /var/cache/rampart\n" + minimalYAML + "    cache_disk_size: 1GiB\n    cache_disk_max_object: 8MiB\n",
			marker: "cache_disk_max_object:", key: "sites[0].cache_disk_max_object", msg: "not above the memory tier's largest object",
		},
		{
			name:   "disk size too small for anything to go to disk",
			doc:    "cache_dir: /var/cache/rampart\n" + minimalYAML + "    cache_disk_size: 16MiB\n",
			marker: "- host:", key: "sites[0].cache_disk_max_object", msg: "raise cache_disk_size",
		},
		{
			name:   "relative cache_dir",
			doc:    "cache_dir: cache\n" + minimalYAML,
			marker: "cache_dir:", key: "cache_dir", msg: "absolute path",
		},
		{
			name:   "cache_dir at the root",
			doc:    "cache_dir: /\n" + minimalYAML,
			marker: "cache_dir:", key: "cache_dir", msg: "absolute path",
		},
		{
			name:   "cache_disk_size not a size",
			doc:    "cache_dir: /var/cache/rampart\n" + minimalYAML + "    cache_disk_size: lots\n",
			marker: "cache_disk_size:", key: "sites[0].cache_disk_size", msg: "size",
		},
	}
	checkKeyErrors(t, cases)
}
