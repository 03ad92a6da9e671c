package config

import (
	"strings"
	"testing"
)

func TestWarnings_FullyValidConfigHasNone(t *testing.T) {
	cfg := mustParse(t, validYAML)
	if ws := cfg.Warnings(); len(ws) != 0 {
		t.Errorf("want no warnings, got %v", ws)
	}
}

func TestWarnings_FlagEveryLoosenedDefault(t *testing.T) {
	withTLS := func(line string) string {
		return strings.Replace(validYAML, "  client_auth: none\n", "  client_auth: none\n"+line, 1)
	}
	withSite := func(old, new string) string {
		if !strings.Contains(validYAML, old) {
			panic("test document lacks " + old)
		}
		return strings.Replace(validYAML, old, new, 1)
	}
	cases := []struct {
		name   string
		doc    string
		key    string
		marker string // text on the warning's line
		msg    string
	}{
		{
			name: "session tickets on", doc: withTLS("  session_tickets: true\n"),
			key: "tls.session_tickets", marker: "session_tickets", msg: "forward secrecy",
		},
		{
			name: "insecure skip verify", doc: withSite("        ca: certs/internal-ca.pem\n", "        ca: certs/internal-ca.pem\n        insecure_skip_verify: true\n"),
			key: "sites[0].upstream.tls.insecure_skip_verify", marker: "insecure_skip_verify", msg: "not verified",
		},
		{
			name: "hsts off", doc: withSite("    deny:\n", "    headers:\n      hsts: \"off\"\n    deny:\n"),
			key: "sites[0].headers.hsts", marker: "hsts:", msg: "HSTS is off",
		},
		{
			name: "hsts empty", doc: withSite("    deny:\n", "    headers:\n      hsts: \"\"\n    deny:\n"),
			key: "sites[0].headers.hsts", marker: "hsts:", msg: "HSTS is off",
		},
		{
			name: "frame options off", doc: withSite("    deny:\n", "    headers:\n      frame_options: \"off\"\n    deny:\n"),
			key: "sites[0].headers.frame_options", marker: "frame_options:", msg: "X-Frame-Options is off",
		},
		{
			name: "content type options not nosniff", doc: withSite("    deny:\n", "    headers:\n      content_type_options: \"off\"\n    deny:\n"),
			key: "sites[0].headers.content_type_options", marker: "content_type_options:", msg: "nosniff is off",
		},
		{
			name: "regex route dot star", doc: withSite("      - regex: ^/api/[0-9]+$\n", "      - regex: ^/api/[0-9]+$\n      - regex: .*\n"),
			key: "sites[0].routes[3].regex", marker: "regex: .*", msg: "matches every path",
		},
		{
			name: "regex route caret slash", doc: withSite("      - regex: ^/api/[0-9]+$\n", "      - regex: ^/api/[0-9]+$\n      - regex: ^/\n"),
			key: "sites[0].routes[3].regex", marker: "=- regex: ^/", msg: "matches every path",
		},
		{
			name: "regex route unanchored slash", doc: withSite("      - regex: ^/api/[0-9]+$\n", "      - regex: ^/api/[0-9]+$\n      - regex: /\n"),
			key: "sites[0].routes[3].regex", marker: "=- regex: /", msg: "matches every path",
		},
		{
			name: "allow jsessionid", doc: withSite("      - exact: /\n", "      - exact: /\n        allow_jsessionid: true\n"),
			key: "sites[0].routes[0].allow_jsessionid", marker: "allow_jsessionid", msg: "session ids in URLs",
		},
		{
			name: "admin on all interfaces", doc: withSite("  listen: 127.0.0.1:9901\n", "  listen: 0.0.0.0:9901\n"),
			key: "admin.listen", marker: "0.0.0.0:9901", msg: "not on loopback",
		},
		{
			name: "admin with empty host", doc: withSite("  listen: 127.0.0.1:9901\n", "  listen: \":9901\"\n"),
			key: "admin.listen", marker: ":9901", msg: "not on loopback",
		},
		{
			name: "admin on a private address", doc: withSite("  listen: 127.0.0.1:9901\n", "  listen: 10.1.2.3:9901\n"),
			key: "admin.listen", marker: "10.1.2.3:9901", msg: "not on loopback",
		},
		{
			name: "plain http to a non-loopback target", doc: withSite(`targets: ["https://10.0.0.5:8445", "https://10.0.0.6:8445/"]`, `targets: ["https://10.0.0.5:8445", "http://10.0.0.6:8080"]`),
			key: "sites[0].upstream.targets[1]", marker: "http://10.0.0.6:8080", msg: "plain http to 10.0.0.6:8080",
		},
		{
			name: "plain http to a host name", doc: withSite(`targets: ["http://127.0.0.1:9001"]`, `targets: ["http://backend.internal:9001"]`),
			key: "sites[1].upstream.targets[0]", marker: "backend.internal", msg: "plain http",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, tc.doc)
			ws := cfg.Warnings()
			if len(ws) != 1 {
				t.Fatalf("want exactly one warning, got %v", ws)
			}
			w := ws[0]
			if w.Key != tc.key {
				t.Errorf("Key = %q, want %q", w.Key, tc.key)
			}
			if want := lineOf(t, tc.doc, tc.marker); w.Line != want {
				t.Errorf("Line = %d, want %d", w.Line, want)
			}
			if !strings.Contains(w.Msg, tc.msg) {
				t.Errorf("Msg = %q, want it to contain %q", w.Msg, tc.msg)
			}
			if s := w.String(); !strings.HasPrefix(s, "line ") || !strings.Contains(s, tc.key) {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

func TestWarnings_AdminOffAndLoopbackAreQuiet(t *testing.T) {
	for _, listen := range []string{"\"off\"", "127.0.0.1:9901", "\"[::1]:9901\"", "127.0.0.2:9901"} {
		t.Run(listen, func(t *testing.T) {
			cfg := mustParse(t, strings.Replace(validYAML, "  listen: 127.0.0.1:9901\n", "  listen: "+listen+"\n", 1))
			if ws := cfg.Warnings(); len(ws) != 0 {
				t.Errorf("want no warnings, got %v", ws)
			}
		})
	}
}

func TestWarnings_PlainHTTPToLoopbackIsQuiet(t *testing.T) {
	for _, target := range []string{"http://127.0.0.1:9001", "http://[::1]:9001", "http://127.9.9.9:80"} {
		t.Run(target, func(t *testing.T) {
			cfg := mustParse(t, strings.Replace(validYAML, "http://127.0.0.1:9001", target, 1))
			if ws := cfg.Warnings(); len(ws) != 0 {
				t.Errorf("want no warnings, got %v", ws)
			}
		})
	}
}

func TestWarnings_EveryLooseningIsListed(t *testing.T) {
	doc := strings.NewReplacer(
		"  client_auth: none\n", "  client_auth: none\n  session_tickets: true\n",
		"  listen: 127.0.0.1:9901\n", "  listen: 0.0.0.0:9901\n",
		"        ca: certs/internal-ca.pem\n", "        insecure_skip_verify: true\n",
		"    deny:\n", "    headers: {hsts: \"off\"}\n    deny:\n",
		"      - exact: /\n", "      - regex: .*\n",
	).Replace(validYAML)
	cfg := mustParse(t, doc)
	var keys []string
	for _, w := range cfg.Warnings() {
		keys = append(keys, w.Key)
	}
	want := []string{
		"tls.session_tickets",
		"admin.listen",
		"sites[0].upstream.tls.insecure_skip_verify",
		"sites[0].headers.hsts",
		"sites[0].routes[0].regex",
	}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("warnings for %v, want %v", keys, want)
	}
}

func TestRegexMatchesEverything(t *testing.T) {
	cases := []struct {
		expr string
		want bool
	}{
		{".*", true},
		{"^/", true},
		{"/", true},
		{"", true},
		{"^/.*$", true},
		{"(?i)^/", true},
		{"^/api/[0-9]+$", false},
		{"^/api/", false},
		{"^/$", false},
		{"^/static/.+\\.(css|js)$", false},
		{"(", false}, // invalid: validation reports it, not this check
	}
	for _, tc := range cases {
		if got := RegexMatchesEverything(tc.expr); got != tc.want {
			t.Errorf("RegexMatchesEverything(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}
