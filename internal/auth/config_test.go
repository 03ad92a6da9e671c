package auth

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-proxy/rampart/internal/units"
)

type siteDoc struct {
	Auth   *Config `yaml:"auth"`
	Routes []struct {
		Path string  `yaml:"path"`
		Auth *Config `yaml:"auth"`
	} `yaml:"routes"`
}

func decodeSite(src string) (siteDoc, error) {
	var doc siteDoc
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	err := dec.Decode(&doc)
	return doc, err
}

const finesseSite = `
auth:
  kind: either
  verify_url: /finesse/api/UserAuth
  cache: 15m
  max_entries: 10000
  keys_url: https://ids.internal:8553/ids/v1/keys
  refresh: 5m
  issuer: https://ids.example.com:8553/ids/v1
  audience: finesse
  leeway: 30s
  websocket: {protocol_credentials: true, recent_auth_window: 2h}
routes:
  - path: /desktop/
    auth: off
  - path: /finesse/api/
  - path: /cuic/
    auth: {kind: jwt, audience: [cuic, finesse], cache: 5m}
`

func TestConfigYAML(t *testing.T) {
	doc, err := decodeSite(finesseSite)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Auth.Validate(); err != nil {
		t.Fatal(err)
	}
	site := Defaults().Merge(doc.Auth)
	if err := site.ValidateEffective(); err != nil {
		t.Fatal(err)
	}
	on := true
	want := Config{
		Kind: KindEither, VerifyURL: "/finesse/api/UserAuth", VerifyTimeout: units.Duration(DefaultVerifyTimeout),
		Cache: units.Duration(15 * time.Minute), MaxEntries: 10000,
		KeysURL: "https://ids.internal:8553/ids/v1/keys", Refresh: units.Duration(5 * time.Minute),
		Issuer: "https://ids.example.com:8553/ids/v1", Audience: Strings{"finesse"},
		Leeway: units.Duration(30 * time.Second), UsernameClaim: "sub",
		WebSocket: WebSocketConfig{ProtocolCredentials: &on, RecentAuthWindow: units.Duration(2 * time.Hour), MaxClients: DefaultMaxClients},
	}
	if !reflect.DeepEqual(site, want) {
		t.Fatalf("site config\n got %+v\nwant %+v", site, want)
	}

	desktop := site.Merge(doc.Routes[0].Auth)
	if desktop.Enabled() {
		t.Fatal("auth: off on a route did not switch authentication off")
	}
	api := site.Merge(doc.Routes[1].Auth)
	if api.Kind != KindEither {
		t.Fatal("route without auth did not inherit the site's")
	}
	cuic := site.Merge(doc.Routes[2].Auth)
	if cuic.Kind != KindJWT || len(cuic.Audience) != 2 || cuic.Cache.D() != 5*time.Minute || cuic.Issuer != site.Issuer {
		t.Fatalf("route override merged wrong: %+v", cuic)
	}
	if err := cuic.ValidateEffective(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigYAMLErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown key", "auth:\n  kind: jwt\n  isuer: x\n", "line 3: field isuer not found in auth"},
		{"unknown nested key", "auth:\n  websocket:\n    protocol_creds: true\n", "line 3: field protocol_creds not found in auth.websocket"},
		{"other word", "auth: none\n", "expected off or a mapping"},
		{"list", "auth: [basic]\n", "expected off or a mapping"},
		{"bad duration", "auth:\n  cache: 15\n", "invalid duration"},
		{"audience map", "auth:\n  audience: {a: b}\n", "expected a string or a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeSite(tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	jwtOK := func() Config {
		return Config{Kind: KindJWT, KeysURL: "https://ids.internal:8553/ids/v1/keys", Issuer: testIssuer, Audience: Strings{"finesse"}}
	}
	tests := []struct {
		name      string
		cfg       Config
		effective bool   // check with ValidateEffective
		want      string // "" = valid
	}{
		{"empty", Config{}, true, ""},
		{"off", Config{Kind: KindOff}, true, ""},
		{"basic", basicConfig(), true, ""},
		{"jwt", jwtOK(), true, ""},
		{"jwt from file", Config{Kind: KindJWT, KeysFile: "certs/ids.pem", Issuer: "x", Audience: Strings{"y"}}, true, ""},
		{"route fragment", Config{Audience: Strings{"cuic"}}, false, ""},
		{"unknown kind", Config{Kind: "ldap"}, false, "kind"},
		{"verify_url with host", Config{VerifyURL: "https://finesse/finesse/api/UserAuth"}, false, "verify_url"},
		{"verify_url protocol-relative", Config{VerifyURL: "//evil/x"}, false, "verify_url"},
		{"verify_url with space", Config{VerifyURL: "/a b"}, false, "verify_url"},
		{"both key sources", Config{KeysURL: "https://a/k", KeysFile: "k.pem"}, false, "set one, not both"},
		{"keys_url not http", Config{KeysURL: "file:///etc/keys"}, false, "keys_url"},
		{"keys_url with credentials", Config{KeysURL: "https://u:p@ids/keys"}, false, "keys_url"},
		{"cache too long", Config{Cache: units.Duration(48 * time.Hour)}, false, "cache"},
		{"negative max_entries", Config{MaxEntries: -1}, false, "max_entries"},
		{"leeway too long", Config{Leeway: units.Duration(time.Hour)}, false, "leeway"},
		{"empty audience list", Config{Audience: Strings{}}, false, "audience"},
		{"bad cookie name", Config{Cookie: "a b"}, false, "cookie"},
		{"basic without verify_url", Config{Kind: KindBasic}, true, "verify_url: required"},
		{"either without keys", Config{Kind: KindEither, VerifyURL: "/x"}, true, "keys_url or keys_file: required"},
		{"jwt without issuer", func() Config { c := jwtOK(); c.Issuer = ""; return c }(), true, "issuer: required"},
		{"jwt without audience", func() Config { c := jwtOK(); c.Audience = nil; return c }(), true, "audience: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.effective {
				err = Defaults().Merge(&tt.cfg).ValidateEffective()
			} else {
				err = tt.cfg.Validate()
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "auth.") {
				t.Fatalf("error %v does not name the key", err)
			}
		})
	}
}

func TestMergeKeySources(t *testing.T) {
	site := Config{KeysURL: "https://ids/keys"}
	route := site.Merge(&Config{KeysFile: "k.pem"})
	if route.KeysURL != "" || route.KeysFile != "k.pem" {
		t.Fatalf("route keys_file did not replace the site's keys_url: %+v", route)
	}
	if err := route.Validate(); err != nil {
		t.Fatal(err)
	}
	off := false
	ws := Defaults().Merge(&Config{WebSocket: WebSocketConfig{ProtocolCredentials: &off}})
	if ws.protocolCredentials() {
		t.Fatal("protocol_credentials: false not merged")
	}
	off = true
	if ws.protocolCredentials() {
		t.Fatal("Merge shares the override's pointer")
	}
}

func TestEither(t *testing.T) {
	k := rsaKey(t, "k")
	srv := newKeyServer(t, jwks(k))
	up := newUpstream(map[string]string{"agent1": "pw"})
	cfg := jwtConfig(srv.URL)
	cfg.Kind, cfg.VerifyURL = KindEither, "/finesse/api/UserAuth"
	a := mustNew(t, cfg, Deps{FetchKeys: fetch, Verify: up.Verify})
	next := &counter{}
	h := a.Handler(next)
	if w := do(h, withAuth(basicAuth("agent1", "pw"))); w.Code != 200 {
		t.Fatalf("basic: %d", w.Code)
	}
	if w := do(h, withAuth("Bearer "+k.sign(t, nil))); w.Code != 200 {
		t.Fatalf("bearer: %d", w.Code)
	}
	w := do(h, nil)
	if w.Code != 401 {
		t.Fatalf("anonymous: %d", w.Code)
	}
	if got := w.Header().Values("WWW-Authenticate"); len(got) != 2 || got[0] != `Basic realm="rampart"` || got[1] != `Bearer realm="rampart"` {
		t.Fatalf("challenges %q", got)
	}
}

// TestAnonymousNeverReachesNext sends every kind of unauthenticated
// request to every kind of protected route.
func TestAnonymousNeverReachesNext(t *testing.T) {
	k := rsaKey(t, "k")
	srv := newKeyServer(t, jwks(k))
	up := newUpstream(map[string]string{"agent1": "pw"})
	forged := rsaKey(t, "k")
	requests := map[string]func(r *http.Request){
		"nothing":             nil,
		"empty basic":         withAuth("Basic "),
		"wrong password":      withAuth(basicAuth("agent1", "guess")),
		"unknown user":        withAuth(basicAuth("admin", "admin")),
		"forged token":        withAuth("Bearer " + forged.sign(t, nil)),
		"token as cookie":     func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "access_token", Value: forged.sign(t, nil)}) },
		"bare upgrade":        upgrade("xmpp"),
		"forged in protocol":  upgrade(ProtocolBearerPrefix + raw64(forged.sign(t, nil))),
		"guess in protocol":   upgrade(ProtocolBasicPrefix + raw64("agent1:guess")),
		"x-forwarded-user":    func(r *http.Request) { r.Header.Set("X-Forwarded-User", "agent1") },
		"query access_token":  func(r *http.Request) { r.URL.RawQuery = "access_token=" + k.sign(t, nil) },
		"proxy-authorization": func(r *http.Request) { r.Header.Set("Proxy-Authorization", basicAuth("agent1", "pw")) },
	}
	for _, kind := range []Kind{KindBasic, KindJWT, KindEither} {
		cfg := jwtConfig(srv.URL)
		cfg.Kind, cfg.VerifyURL = kind, "/finesse/api/UserAuth"
		cfg.WebSocket.RecentAuthWindow = units.Duration(time.Hour)
		a := mustNew(t, cfg, Deps{FetchKeys: fetch, Verify: up.Verify})
		next := &counter{}
		h := a.Handler(next)
		for name, mutate := range requests {
			for _, method := range []string{"GET", "POST", "OPTIONS", "HEAD"} {
				w := do(h, both(func(r *http.Request) { r.Method = method }, func(r *http.Request) {
					if mutate != nil {
						mutate(r)
					}
				}))
				if w.Code != http.StatusUnauthorized {
					t.Errorf("%s, %s %s: status %d", kind, name, method, w.Code)
				}
			}
		}
		if n := next.n.Load(); n != 0 {
			t.Fatalf("%s: %d anonymous requests reached next", kind, n)
		}
	}
}

func TestSetShares(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	s := NewSet()
	defer s.Close()
	a1, err := s.Get("finesse.example.com", basicConfig(), Deps{Verify: up.Verify})
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := s.Get("finesse.example.com", Defaults().Merge(func() *Config { c := basicConfig(); return &c }()), Deps{Verify: up.Verify})
	a3, _ := s.Get("cuic.example.com", basicConfig(), Deps{Verify: up.Verify})
	if a1 != a2 {
		t.Fatal("equal configs of one site got two authenticators")
	}
	if a1 == a3 {
		t.Fatal("two sites share an authenticator")
	}
	do(a1.Handler(&counter{}), withAuth(basicAuth("agent1", "pw")))
	do(a2.Handler(&counter{}), withAuth(basicAuth("agent1", "pw")))
	if up.calls.Load() != 1 {
		t.Fatal("routes sharing a config do not share the cache")
	}
	if _, err := s.Get("x", Config{Kind: KindBasic}, Deps{Verify: up.Verify}); err == nil {
		t.Fatal("invalid config accepted")
	}
}

func TestCloseStopsRefresh(t *testing.T) {
	srv := newKeyServer(t, jwks(rsaKey(t, "k")))
	cfg := jwtConfig(srv.URL)
	cfg.Refresh = units.Duration(10 * time.Millisecond)
	a, err := New(cfg, Deps{FetchKeys: fetch})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "background refreshes", func() bool { return srv.fetches.Load() >= 3 })
	a.Close()
	a.Close()
	n := srv.fetches.Load()
	time.Sleep(50 * time.Millisecond)
	if srv.fetches.Load() != n {
		t.Fatal("keys fetched after Close")
	}
}

func TestCORSPreflight(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	preflight := func(r *http.Request) {
		r.Method = http.MethodOptions
		r.Header.Set("Origin", "https://cuic.example.com")
		r.Header.Set("Access-Control-Request-Method", "PUT")
	}
	plainOptions := func(r *http.Request) { r.Method = http.MethodOptions }
	allow := true
	tests := []struct {
		name   string
		allow  *bool
		mutate func(r *http.Request)
		want   int
	}{
		{"preflight refused by default", nil, preflight, 401},
		{"preflight allowed", &allow, preflight, 200},
		{"OPTIONS without preflight headers", &allow, plainOptions, 401},
		{"GET with Origin", &allow, func(r *http.Request) { r.Header.Set("Origin", "https://cuic.example.com") }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := basicConfig()
			cfg.AllowCORSPreflight = tt.allow
			a := mustNew(t, cfg, Deps{Verify: up.Verify})
			next := &counter{}
			if w := do(a.Handler(next), tt.mutate); w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
		})
	}
	if up.calls.Load() != 0 {
		t.Fatal("verify called")
	}
}
