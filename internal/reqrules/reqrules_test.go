package reqrules

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ciscoYAML is the Finesse profile: a Referer must come from the contact
// center's own hosts (417 otherwise, as Finesse answers), and the
// User-Agent must be a supported browser (412).
const ciscoYAML = `
require_header:
  - {header: Referer, match: origin_of_hosts, hosts: [finesse.example.com, ids.example.com], status: 417, allow_missing: true}
  - {header: User-Agent, regex: '(Chrome|Firefox|Edg|Safari)/[0-9]+', status: 412}
`

const (
	uaChrome  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaFirefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
	uaEdge    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51"
	uaSafari  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)

func decode(t *testing.T, src string) Config {
	t.Helper()
	var doc struct {
		RequireHeader Config `yaml:"require_header"`
	}
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.RequireHeader
}

func newHandler(t *testing.T, rules Config) (http.Handler, *int) {
	t.Helper()
	rs, err := New(rules)
	if err != nil {
		t.Fatal(err)
	}
	reached := new(int)
	return rs.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*reached++
		w.WriteHeader(http.StatusOK)
	})), reached
}

func TestCiscoProfile(t *testing.T) {
	h, _ := newHandler(t, decode(t, ciscoYAML))
	tests := []struct {
		name    string
		headers map[string][]string
		want    int
	}{
		{"chrome, own referer", map[string][]string{"User-Agent": {uaChrome}, "Referer": {"https://finesse.example.com/desktop/container/"}}, 200},
		{"firefox, ids referer with port", map[string][]string{"User-Agent": {uaFirefox}, "Referer": {"https://ids.example.com:8553/ids/v1/oauth/authorize"}}, 200},
		{"edge, no referer", map[string][]string{"User-Agent": {uaEdge}}, 200},
		{"safari", map[string][]string{"User-Agent": {uaSafari}}, 200},
		{"referer host in upper case", map[string][]string{"User-Agent": {uaChrome}, "Referer": {"https://FINESSE.example.com/"}}, 200},
		{"referer from another host", map[string][]string{"User-Agent": {uaChrome}, "Referer": {"https://evil.example.net/finesse"}}, 417},
		{"referer over http", map[string][]string{"User-Agent": {uaChrome}, "Referer": {"http://finesse.example.com/"}}, 417},
		{"referer with userinfo trick", map[string][]string{"User-Agent": {uaChrome}, "Referer": {"https://finesse.example.com@evil.example.net/"}}, 417},
		{"referer suffix trick", map[string][]string{"User-Agent": {uaChrome}, "Referer": {"https://finesse.example.com.evil.net/"}}, 417},
		{"referer not a URL", map[string][]string{"User-Agent": {uaChrome}, "Referer": {"finesse.example.com"}}, 417},
		{"second referer line foreign", map[string][]string{"User-Agent": {uaChrome}, "Referer": {"https://finesse.example.com/", "https://evil.example.net/"}}, 417},
		{"curl", map[string][]string{"User-Agent": {"curl/8.0.1"}}, 412},
		{"sqlmap", map[string][]string{"User-Agent": {"sqlmap/1.7.2#stable (https://sqlmap.org)"}}, 412},
		{"python requests", map[string][]string{"User-Agent": {"python-requests/2.31.0"}}, 412},
		{"no user agent", nil, 412},
		{"empty user agent", map[string][]string{"User-Agent": {""}}, 412},
		{"referer rule first", map[string][]string{"User-Agent": {"curl/8.0"}, "Referer": {"https://evil.example.net/"}}, 417},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://finesse.example.com/finesse/api/User/agent1", nil)
			for k, vs := range tt.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if tt.want != 200 && strings.Contains(w.Body.String(), "evil") {
				t.Fatalf("refusal echoes the request: %q", w.Body.String())
			}
		})
	}
}

func TestMatchKinds(t *testing.T) {
	tests := []struct {
		name  string
		rule  Rule
		value string // "" = header absent
		want  int
	}{
		{"equals hit", Rule{Header: "X-Client", Values: []string{"desktop", "gadget"}}, "gadget", 200},
		{"equals miss", Rule{Header: "X-Client", Values: []string{"desktop"}}, "Desktop", 403},
		{"equals explicit", Rule{Header: "X-Client", Match: MatchEquals, Values: []string{"a"}, Status: 400}, "b", 400},
		{"missing refused by default", Rule{Header: "X-Client", Values: []string{"a"}}, "", 403},
		{"missing allowed", Rule{Header: "X-Client", Values: []string{"a"}, AllowMissing: true}, "", 200},
		{"regex unanchored", Rule{Header: "X-V", Regex: "[0-9]+"}, "v12", 200},
		{"regex anchored", Rule{Header: "X-V", Regex: "^[0-9]+$"}, "v12", 403},
		{"regex case-insensitive flag", Rule{Header: "X-V", Regex: "(?i)^chrome$"}, "CHROME", 200},
		{"origin of IP host", Rule{Header: "Origin", Hosts: []string{"192.0.2.10"}}, "https://192.0.2.10:8445", 200},
		{"origin null", Rule{Header: "Origin", Hosts: []string{"finesse.example.com"}}, "null", 403},
		{"origin trailing dot", Rule{Header: "Origin", Hosts: []string{"finesse.example.com"}}, "https://finesse.example.com.", 200},
		{"header name case", Rule{Header: "x-client", Values: []string{"a"}}, "a", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, reached := newHandler(t, Config{tt.rule})
			r := httptest.NewRequest("GET", "/", nil)
			if tt.value != "" {
				r.Header.Set(tt.rule.Header, tt.value)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if (*reached == 1) != (tt.want == 200) {
				t.Fatalf("next reached %d times with status %d", *reached, w.Code)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		err  string // "" = valid
	}{
		{"regex", Rule{Header: "User-Agent", Regex: "Chrome/"}, ""},
		{"hosts", Rule{Header: "Referer", Hosts: []string{"a.example.com"}}, ""},
		{"values", Rule{Header: "X", Values: []string{""}}, ""},
		{"no header", Rule{Regex: "x"}, "header: required"},
		{"bad header", Rule{Header: "Bad Header", Regex: "x"}, "not a header name"},
		{"host header", Rule{Header: "host", Regex: "x"}, "host gate"},
		{"bad regex", Rule{Header: "X", Regex: "("}, "regex:"},
		{"nothing to match", Rule{Header: "X"}, "exactly one"},
		{"two kinds", Rule{Header: "X", Regex: "x", Values: []string{"x"}}, "exactly one"},
		{"kind mismatch", Rule{Header: "X", Match: MatchRegex, Hosts: []string{"a"}}, "hosts: only with match: origin_of_hosts"},
		{"unknown kind", Rule{Header: "X", Match: "prefix", Regex: "x"}, "must be regex"},
		{"regex kind without regex", Rule{Header: "X", Match: MatchRegex}, "regex: required"},
		{"empty hosts", Rule{Header: "X", Match: MatchOriginOfHosts, Hosts: []string{}}, "at least one host"},
		{"host with scheme", Rule{Header: "X", Hosts: []string{"https://a.example.com"}}, "not a host name"},
		{"host with port", Rule{Header: "X", Hosts: []string{"a.example.com:443"}}, "not a host name"},
		{"status 200", Rule{Header: "X", Regex: "x", Status: 200}, "not a 4xx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{tt.rule}.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := New([]Rule{tt.rule}); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
			if !strings.Contains(err.Error(), "require_header[0]") {
				t.Fatalf("error %v does not name the rule", err)
			}
			if _, err := New([]Rule{tt.rule}); err == nil {
				t.Fatal("New accepted an invalid rule")
			}
		})
	}
}

func TestMerge(t *testing.T) {
	site := decode(t, ciscoYAML)
	if got := Merge(site, nil); len(got) != 2 {
		t.Fatalf("route without require_header: %d rules, want the site's 2", len(got))
	}
	cleared := decode(t, "require_header: []\n")
	if cleared == nil {
		t.Fatal("require_header: [] decoded as unset")
	}
	if got := Merge(site, cleared); len(got) != 0 {
		t.Fatalf("require_header: [] on the route: %d rules, want 0", len(got))
	}
	own := Config{{Header: "X", Values: []string{"a"}}}
	if got := Merge(site, own); len(got) != 1 || got[0].Header != "X" {
		t.Fatalf("route list does not replace the site's: %+v", got)
	}
}

func TestNoRulesIsNext(t *testing.T) {
	rs, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	next := http.NotFoundHandler()
	if h := rs.Handler(next); h == nil {
		t.Fatal("nil handler")
	}
	h, reached := newHandler(t, nil)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if *reached != 1 {
		t.Fatal("empty rule list refused a request")
	}
}

func TestRefusalIsGeneric(t *testing.T) {
	h, _ := newHandler(t, Config{{Header: "User-Agent", Regex: "Chrome/", Status: 412}})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("User-Agent", "<script>alert(1)</script>")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 412 {
		t.Fatalf("status %d", w.Code)
	}
	if strings.Contains(w.Body.String(), "script") || strings.Contains(w.Body.String(), "User-Agent") {
		t.Fatalf("body reveals the request or the rule: %q", w.Body.String())
	}
}
