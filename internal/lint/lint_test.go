package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/profiles/ciscocc"
)

// The config of the e2e test TestCheck_WarnsAboutEveryWeakenedDefault:
// exactly its five weakened defaults are warnings; the short-lived test
// certificate is info.
func TestWeakConfigHasExactlyFiveWarnings(t *testing.T) {
	yaml := `admin: {listen: "0.0.0.0:9901"}
tls: {cert: site.pem, key: site-key.pem, session_tickets: true}
sites:
  - host: app.test
    upstream:
      targets: ["https://127.0.0.1:9"]
      tls: {insecure_skip_verify: true}
    headers: {hsts: "off"}
    routes:
      - regex: ".*"
`
	fs := run(t, yaml, time.Now(), func(dir string) { writeSelfSigned(t, dir, "app.test", "www.app.test", "other.test", "127.0.0.1") })
	var warned []string
	for _, f := range fs {
		if f.Severity == Warning {
			warned = append(warned, f.Rule)
		}
	}
	slices.Sort(warned)
	want := []string{RuleAdminListen, RuleHSTSOff, RuleUpInsecure, RuleRegexAll, RuleTLSTickets}
	slices.Sort(want)
	if !slices.Equal(warned, want) {
		t.Fatalf("warnings %q, want %q\n%s", warned, want, dump(fs))
	}
	if s := Count(fs); s.Error != 0 || s.Warning != 5 {
		t.Fatalf("summary %+v\n%s", s, dump(fs))
	}
}

// Every config.Warning is reported under its own rule, none under the
// catch-all config-warning.
func TestEveryConfigWarningHasARule(t *testing.T) {
	yaml := `admin: {listen: "0.0.0.0:9901"}
sandbox: "off"
tls: {cert: site.pem, key: site-key.pem, session_tickets: true}
sites:
  - host: app.test
    upstream:
      targets: ["http://10.0.0.5:80"]
    headers: {hsts: "off", frame_options: "off", content_type_options: "off"}
    routes:
      - regex: ".*"
        allow_jsessionid: true
  - host: b.test
    upstream:
      targets: ["https://10.0.0.6:443"]
      tls: {insecure_skip_verify: true}
    routes: [{prefix: /b/}]
`
	cfg := parse(t, t.TempDir(), yaml)
	fs := Run(cfg, Options{})
	if n := len(cfg.Warnings()); n != 10 {
		t.Fatalf("the config has %d config.Warnings, want 10: %v", n, cfg.Warnings())
	}
	if got := byRule(fs, RuleConfigWarn); len(got) != 0 {
		t.Fatalf("unmapped config warnings:\n%s", dump(got))
	}
	for _, w := range cfg.Warnings() {
		found := false
		for _, f := range fs {
			found = found || (f.Key == w.Key && f.Line == w.Line && f.Message == w.Msg)
		}
		if !found {
			t.Errorf("config warning %s not reported", w)
		}
	}
}

// The cisco-cc profile must pass `check` with no warnings.
func TestCiscoProfileHasNoWarnings(t *testing.T) {
	var buf bytes.Buffer
	o := ciscocc.Options{Agents: 500, CertDir: "certs"}
	for _, c := range []struct {
		name, v string
		dst     *ciscocc.Component
	}{
		{"finesse", "finesse.example.com=https://10.0.0.5:8445", &o.Finesse},
		{"ids", "ids.example.com=https://10.0.0.6:8553", &o.IdS},
		{"cuic", "cuic.example.com=https://10.0.0.7:8444", &o.CUIC},
		{"livedata", "livedata.example.com=https://10.0.0.8:12005", &o.LiveData},
	} {
		comp, err := ciscocc.ParseComponent(c.name, c.v)
		if err != nil {
			t.Fatal(err)
		}
		*c.dst = comp
	}
	if err := ciscocc.Generate(&buf, o); err != nil {
		t.Fatal(err)
	}
	fs := Run(parse(t, t.TempDir(), buf.String()), Options{})
	if s := Count(fs); s.Error != 0 || s.Warning != 0 {
		t.Fatalf("summary %+v\n%s", s, dump(fs))
	}
}

func TestParseShape(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want shape
	}{
		{`^/api/`, shape{anchored: true, lit: "/api/", anyTail: true}},
		{`^/api/.*`, shape{anchored: true, lit: "/api/", anyTail: true}},
		{`^/api/.*$`, shape{anchored: true, lit: "/api/", anyTail: true}},
		{`^(/api/.*)`, shape{anchored: true, lit: "/api/", anyTail: true}},
		{`^/a$`, shape{anchored: true, lit: "/a", exact: true}},
		{`^/r/[0-9]+$`, shape{anchored: true, lit: "/r/"}},
		{`/admin`, shape{lit: "/admin", anyTail: true}},
		{`.*`, shape{anyTail: true}},
		{`(?i)^/api/`, shape{anchored: true}},
		{`^/a|^/b`, shape{anchored: true}},
		{`^/a|/b`, shape{}},
		{`\A/c`, shape{anchored: true, lit: "/c", anyTail: true}},
		{`(?m)^/c`, shape{anchored: true, lit: "/c", anyTail: true}},
	} {
		got, ok := parseShape(tc.expr)
		if !ok || got != tc.want {
			t.Errorf("parseShape(%q) = %+v, %v; want %+v", tc.expr, got, ok, tc.want)
		}
	}
	if _, ok := parseShape(`(`); ok {
		t.Error("parseShape accepted a broken regexp")
	}
}

func TestApparentPrefix(t *testing.T) {
	for expr, want := range map[string]string{
		`^/api/v[0-9]+/`: "/api/v",
		`^/apis?/`:       "/api",
		`^/a\.json$`:     "/a.json",
		`^\/x\/y`:        "/x/y",
		`^/x\d+`:         "/x",
		`(?i)^/Admin`:    "/Admin",
		`\A/c/`:          "/c/",
		`/api/`:          "",
		`^/static/.*|^/`: "/static/",
		`(?P<x>^/a)`:     "",
	} {
		if got := apparentPrefix(expr); got != want {
			t.Errorf("apparentPrefix(%q) = %q, want %q", expr, got, want)
		}
	}
}

func TestRegexCovers(t *testing.T) {
	for _, tc := range []struct {
		expr, prefix string
		want         bool
	}{
		{`^/legacy/.*`, "/legacy/x/", true},
		{`^/legacy/`, "/legacy/", true},
		{`^/legacy/`, "/legacy", false},
		{`/internal/`, "/app/internal/", true},
		{`/internal/`, "/app/", false},
		{`^/legacy/[a-z]+`, "/legacy/x/", false},
		{`^/legacy/.*\.php$`, "/legacy/", false},
		{`^/a$`, "/a", false},
		{`.*`, "/", true},
	} {
		if got := regexCovers(tc.expr, tc.prefix); got != tc.want {
			t.Errorf("regexCovers(%q, %q) = %v, want %v", tc.expr, tc.prefix, got, tc.want)
		}
	}
}

func TestLooksLikeLogin(t *testing.T) {
	yes := []string{"/login", "/Login.do", "/api/v1/auth/", "/oauth2/token", "/finesse/api/UserAuth", "/sso/start",
		"/desktop/sso/token", "/user/signin", "/SignOn", "/saml2/acs", "/j_security_check", "/authorize", "/account/reset-password", "^/signin/[a-z]+$"}
	no := []string{"/", "/api/", "/author/list", "/authors", "/lesson/", "/finesse/api/User/x/ClientLog", "/static/", "/blog/catalog"}
	for _, s := range yes {
		if !LooksLikeLogin(s) {
			t.Errorf("LooksLikeLogin(%q) = false", s)
		}
	}
	for _, s := range no {
		if LooksLikeLogin(s) {
			t.Errorf("LooksLikeLogin(%q) = true", s)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, path := range [][]any{
		{"tls", "key"},
		{"sites", 0, "routes", 12, "regex"},
		{"sites", 3, "upstream", "targets", 1},
		{"rate_limits", "login"},
	} {
		s := config.KeyString(path...)
		got, ok := parseKey(s)
		if !ok || !slices.Equal(got, path) {
			t.Errorf("parseKey(%q) = %v, %v; want %v", s, got, ok, path)
		}
	}
	for _, bad := range []string{"", "app.test", "a[", "a[x]", "a[1]b", "Tls.key", "a..b"} {
		if _, ok := parseKey(bad); ok && bad != "app.test" {
			t.Errorf("parseKey(%q) accepted", bad)
		}
	}
}

const reportYAML = head + site + `    routes:
      - prefix: /login
        rate_limit: "off"
      - exact: /ws
        websocket: true
`

func TestReportText(t *testing.T) {
	dir := t.TempDir()
	cfg := parse(t, dir, reportYAML)
	rep := NewReport("rampart.yaml", cfg.SHA256, len(cfg.Sites), Run(cfg, Options{}))
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	line := regexp.MustCompile(`^rampart\.yaml:(\d+): (error|warning|info)\[([a-z0-9-]+)\]: ([a-z_\[\]0-9.]+): .+ \(fix: .+\)$`)
	for _, l := range lines[:len(lines)-1] {
		if !line.MatchString(l) {
			t.Errorf("finding line %q is not FILE:LINE: severity[rule]: key: message (fix: hint)", l)
		}
	}
	for _, want := range []string{
		"rampart.yaml:7: warning[login-rate-limit]: sites[0].routes[0].rate_limit: ",
		"rampart.yaml:9: warning[websocket-uncapped]: sites[0].routes[1].websocket: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	summary := "rampart.yaml: ok, 1 site(s), 0 error(s), 2 warning(s), 0 info, sha256 " + cfg.SHA256
	if lines[len(lines)-1] != summary {
		t.Errorf("summary %q, want %q", lines[len(lines)-1], summary)
	}
	rep = NewReport("x.yaml", "abc", 1, []Finding{{Rule: RuleKeyWorld, Severity: Error, Message: "m"}})
	b.Reset()
	_ = rep.WriteText(&b)
	if want := "x.yaml: error[key-world-readable]: m\nx.yaml: failed, 1 site(s), 1 error(s), 0 warning(s), 0 info, sha256 abc\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestReportJSON(t *testing.T) {
	cfg := parse(t, t.TempDir(), reportYAML)
	var b bytes.Buffer
	if err := NewReport("rampart.yaml", cfg.SHA256, 1, Run(cfg, Options{})).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		File     string
		SHA256   string `json:"sha256"`
		Findings []map[string]any
		Summary  map[string]int
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.File != "rampart.yaml" || doc.SHA256 != cfg.SHA256 || len(doc.Findings) != 2 {
		t.Fatalf("document %+v", doc)
	}
	for _, f := range doc.Findings {
		for _, k := range []string{"rule", "severity", "line", "key", "message", "fix"} {
			if _, ok := f[k]; !ok {
				t.Errorf("finding %v lacks %q", f, k)
			}
		}
	}
	if doc.Summary["error"] != 0 || doc.Summary["warning"] != 2 || doc.Summary["info"] != 0 || len(doc.Summary) != 3 {
		t.Errorf("summary %v", doc.Summary)
	}
	// No findings: an empty list, not null.
	b.Reset()
	_ = NewReport("x", "y", 0, nil).WriteJSON(&b)
	if !strings.Contains(b.String(), `"findings": []`) {
		t.Errorf("empty report: %s", b.String())
	}
}

func TestLoadFindings(t *testing.T) {
	_, err := config.Parse("bad.yaml", []byte("tls:\n  cert: a\n  key: b\n  versions: [\"1.1\"]\nsites:\n  - host: app.test\n    rotes: []\n"))
	if err == nil {
		t.Fatal("config loaded")
	}
	fs := LoadFindings(err)
	if len(fs) == 0 {
		t.Fatal("no findings")
	}
	for _, f := range fs {
		if f.Rule != RuleConfigError || f.Severity != Error || f.Line == 0 || f.Key == "" {
			t.Errorf("finding %+v", f)
		}
	}
	if fs := LoadFindings(errors.New("cannot read")); len(fs) != 1 || fs[0].Message != "cannot read" {
		t.Errorf("plain error: %+v", fs)
	}
}

func TestBuildFinding(t *testing.T) {
	cfg := parse(t, t.TempDir(), head+"sites:\n  - host: app.test\n    upstream: {targets: [\"https://10.0.0.5:443\"], tls: {ca: ca.pem}}\n    routes:\n      - prefix: /api/\n        waf: {mode: block}\n")
	for _, tc := range []struct {
		err       string
		key, msg  string
		wantsLine bool
	}{
		{"tls.key: private key k.pem is world-readable", "tls.key", "private key k.pem is world-readable", true},
		{"sites[0] (app.test): app.test: upstream.tls.ca: open ca.pem: no such file", "sites[0].upstream.tls.ca", "open ca.pem: no such file", true},
		{"sites[0] (app.test): routes[0]: waf: bad rule", "sites[0].routes[0].waf", "bad rule", true},
		{"route: route exact:/x is listed twice", "", "route: route exact:/x is listed twice", false},
	} {
		f := BuildFinding(cfg, errors.New(tc.err))
		if f.Rule != RuleBuildError || f.Severity != Error || f.Key != tc.key || f.Message != tc.msg || (f.Line > 0) != tc.wantsLine {
			t.Errorf("BuildFinding(%q) = %+v", tc.err, f)
		}
	}
}

func TestExplained(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site-key.pem"), []byte("key"), 0o644)
	fs := Run(parse(t, dir, routes("      - prefix: /a/\n      - prefix: /a/\n")), Options{})
	if !Explained(fs, errors.New("tls.key: private key /x/site-key.pem is world-readable (mode 644)")) {
		t.Error("world-readable key reported twice")
	}
	if !Explained(fs, errors.New("route: route prefix:/a/ is listed twice")) {
		t.Error("duplicate route reported twice")
	}
	if Explained(fs, errors.New("sites[0].tls: cannot load certificate")) {
		t.Error("an unrelated build error is hidden")
	}
}

// README.md describes every rule under its id.
func TestREADMEDocumentsEveryRule(t *testing.T) {
	doc, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Rules() {
		if !strings.Contains(string(doc), "### `"+r.ID+"`") {
			t.Errorf("README.md has no section ### `%s`", r.ID)
		}
		if !strings.Contains(string(doc), "| `"+r.ID+"` | "+string(r.Severity)) {
			t.Errorf("README.md's table lacks | `%s` | %s", r.ID, r.Severity)
		}
	}
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.ID] {
			t.Errorf("rule %s listed twice", r.ID)
		}
		seen[r.ID] = true
	}
}
