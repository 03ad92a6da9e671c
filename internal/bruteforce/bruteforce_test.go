package bruteforce

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/units"
)

const site = "finesse.example.com"

// upstream is a login endpoint: the password "right" succeeds, anything
// else is 401. It records what reaches it.
type upstream struct {
	calls  atomic.Int64
	mu     sync.Mutex
	bodies []string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.bodies = append(u.bodies, string(body))
	u.mu.Unlock()
	if _, pw, ok := r.BasicAuth(); ok && pw == "right" {
		io.WriteString(w, "welcome")
		return
	}
	if strings.Contains(string(body), "right") {
		io.WriteString(w, "welcome")
		return
	}
	w.WriteHeader(http.StatusUnauthorized)
}

func (u *upstream) lastBody() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		return ""
	}
	return u.bodies[len(u.bodies)-1]
}

func newMemory(t testing.TB) *state.Memory {
	m := state.NewMemory(state.MemoryOptions{SweepInterval: -1})
	t.Cleanup(func() { m.Close() })
	return m
}

func newGuard(t testing.TB, cfg Config, store state.Store) *Guard {
	t.Helper()
	g, err := New(site, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

type reqOpt func(*http.Request, *reqinfo.Info)

func withBasic(user, pw string) reqOpt {
	return func(r *http.Request, _ *reqinfo.Info) {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pw)))
	}
}

func withForm(body string) reqOpt {
	return func(r *http.Request, _ *reqinfo.Info) {
		r.Method = http.MethodPost
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
	}
}

func withJSON(body string) reqOpt {
	return func(r *http.Request, _ *reqinfo.Info) {
		r.Method = http.MethodPost
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
	}
}

func exempt(_ *http.Request, i *reqinfo.Info) { i.Exempt = true }

func login(client, path string, opts ...reqOpt) (*http.Request, *reqinfo.Info) {
	r := httptest.NewRequest(http.MethodGet, "https://"+site+path, nil)
	info := &reqinfo.Info{ID: "rid", Client: netip.MustParseAddr(client), Site: site, Path: path}
	for _, o := range opts {
		o(r, info)
	}
	return r.WithContext(reqinfo.With(r.Context(), info)), info
}

func serve(h http.Handler, r *http.Request) int {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

func TestGuard_BansAfterNFailuresWithinWindow(t *testing.T) {
	tests := []struct {
		name      string
		banStatus int
	}{
		{"the default ban status is 429", 0},
		{"the Cisco profile answers banned clients with 418", http.StatusTeapot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstream{}
			h := newGuard(t, Config{BanStatus: tt.banStatus}, newMemory(t)).Handler(up)
			for i := range 5 {
				r, _ := login("203.0.113.7", "/api/login", withBasic("alice", "wrong"))
				if code := serve(h, r); code != 401 {
					t.Fatalf("attempt %d: %d, want the upstream's 401", i+1, code)
				}
			}
			want := tt.banStatus
			if want == 0 {
				want = 429
			}
			for _, opt := range []reqOpt{withBasic("alice", "right"), withBasic("bob", "right")} {
				r, _ := login("203.0.113.7", "/api/login", opt)
				if code := serve(h, r); code != want {
					t.Fatalf("after 5 failures: %d, want %d", code, want)
				}
			}
			r, _ := login("203.0.113.7", "/finesse/", nil...)
			if code := serve(h, r); code != want {
				t.Fatalf("another path from the banned client: %d, want %d", code, want)
			}
			if n := up.calls.Load(); n != 5 {
				t.Fatalf("upstream saw %d requests, want 5: banned requests must not reach it", n)
			}
			r, _ = login("203.0.113.8", "/api/login", withBasic("alice", "right"))
			if code := serve(h, r); code != 200 {
				t.Fatalf("another client: %d, want 200", code)
			}
		})
	}
}

func TestGuard_FailuresSpreadBeyondTheWindowDoNotBan(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, Config{Window: units.Duration(150 * time.Millisecond)}, newMemory(t)).Handler(up)
	fail := func() int {
		r, _ := login("203.0.113.7", "/api/login", withBasic("alice", "wrong"))
		return serve(h, r)
	}
	for range 4 {
		fail()
	}
	time.Sleep(200 * time.Millisecond)
	for i := range 4 {
		if code := fail(); code != 401 {
			t.Fatalf("failure %d of the second window: %d, want 401", i+1, code)
		}
	}
	if code := fail(); code != 401 {
		t.Fatalf("the fifth failure of the second window is still answered by the upstream: %d", code)
	}
	if code := fail(); code != 429 {
		t.Fatalf("after five failures in one window: %d, want 429", code)
	}
}

func TestGuard_BanEnds(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, Config{Failures: 2, Ban: units.Duration(200 * time.Millisecond)}, newMemory(t)).Handler(up)
	for range 2 {
		r, _ := login("203.0.113.7", "/api/login", withBasic("alice", "wrong"))
		serve(h, r)
	}
	r, _ := login("203.0.113.7", "/api/login", withBasic("alice", "right"))
	if code := serve(h, r); code != 429 {
		t.Fatalf("during the ban: %d", code)
	}
	time.Sleep(250 * time.Millisecond)
	r, _ = login("203.0.113.7", "/api/login", withBasic("alice", "right"))
	if code := serve(h, r); code != 200 {
		t.Fatalf("after the ban: %d, want 200", code)
	}
	r, _ = login("203.0.113.7", "/api/login", withBasic("alice", "wrong"))
	if code := serve(h, r); code != 401 {
		t.Fatalf("the count starts again after a ban: %d, want 401", code)
	}
}

func TestGuard_PerUsernameLockAcrossManyAddresses(t *testing.T) {
	up := &upstream{}
	cfg := Config{Username: UsernameConfig{FormField: "username"}, Routes: []string{"/api/login"}}
	h := newGuard(t, cfg, newMemory(t)).Handler(up)
	ips := []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"}
	for _, ip := range ips {
		body := "username=alice&password=wrong"
		r, info := login(ip, "/api/login", withForm(body))
		if code := serve(h, r); code != 401 {
			t.Fatalf("%s: %d", ip, code)
		}
		if info.Username != "alice" {
			t.Fatalf("reqinfo Username %q", info.Username)
		}
		if got := up.lastBody(); got != body {
			t.Fatalf("upstream received %q, want the body unchanged %q", got, body)
		}
	}
	tests := []struct {
		name   string
		client string
		body   string
		want   int
	}{
		{"the locked user is refused from a new address", "192.0.2.99", "username=alice&password=right", 429},
		{"the locked user is refused from an address that failed once", ips[0], "username=alice&password=right", 429},
		{"the lock ignores the case of the name", "192.0.2.98", "username=ALICE&password=right", 429},
		{"another user from the same addresses still logs in", ips[0], "username=bob&password=right", 200},
		{"another user from every address still logs in", ips[4], "username=bob&password=right", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := login(tt.client, "/api/login", withForm(tt.body))
			if code := serve(h, r); code != tt.want {
				t.Fatalf("got %d, want %d", code, tt.want)
			}
		})
	}
}

func TestGuard_FindsTheUsername(t *testing.T) {
	big := `{"username":"carol","pad":"` + strings.Repeat("x", maxBodyPeek) + `"}`
	tests := []struct {
		name string
		cfg  UsernameConfig
		path string
		opt  reqOpt
		want string
	}{
		{"from Basic credentials", UsernameConfig{Basic: true}, "/api/login", withBasic("Alice", "x"), "Alice"},
		{"not from Basic credentials unless configured", UsernameConfig{FormField: "u"}, "/api/login", withBasic("alice", "x"), ""},
		{"from a form field", UsernameConfig{FormField: "j_username"}, "/api/login", withForm("j_username=dave&j_password=x"), "dave"},
		{"from a JSON member", UsernameConfig{JSONField: "username"}, "/api/login", withJSON(`{"username":" erin ","password":"x"}`), "erin"},
		{"from a nested JSON member", UsernameConfig{JSONField: "credentials.user"}, "/api/login", withJSON(`{"credentials":{"user":"frank"}}`), "frank"},
		{"not from a JSON number", UsernameConfig{JSONField: "username"}, "/api/login", withJSON(`{"username":42}`), ""},
		{"not from a body over 64 KiB", UsernameConfig{JSONField: "username"}, "/api/login", withJSON(big), ""},
		{"not from a form posted as JSON", UsernameConfig{FormField: "username"}, "/api/login", withJSON(`{"username":"x"}`), ""},
		{"not from the body of an uncounted route", UsernameConfig{FormField: "username"}, "/upload", withForm("username=gina"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstream{}
			h := newGuard(t, Config{Username: tt.cfg, Routes: []string{"/api/login"}}, newMemory(t)).Handler(up)
			r, info := login("203.0.113.7", tt.path, tt.opt)
			var sent string
			if r.Body != nil {
				b, _ := io.ReadAll(r.Body)
				sent = string(b)
				r.Body = io.NopCloser(strings.NewReader(sent))
			}
			serve(h, r)
			if info.Username != tt.want {
				t.Fatalf("Username %q, want %q", info.Username, tt.want)
			}
			if got := up.lastBody(); got != sent {
				t.Fatalf("upstream received %d bytes, want the %d sent, unchanged", len(got), len(sent))
			}
		})
	}
}

func TestGuard_CountsOnlyConfiguredRoutesAndStatuses(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		path     string
		route    string
		status   int
		wantBans bool
	}{
		{"401 on a listed path counts", Config{Routes: []string{"/api/login"}}, "/api/login", "", 401, true},
		{"401 elsewhere does not count", Config{Routes: []string{"/api/login"}}, "/api/user", "", 401, false},
		{"a listed prefix ending in / counts below it", Config{Routes: []string{"/auth/"}}, "/auth/token", "", 401, true},
		{"a listed route pattern counts", Config{Routes: []string{"exact:/j_security_check"}}, "/j_security_check", "exact:/j_security_check", 401, true},
		{"403 does not count by default", Config{}, "/api/login", "", 403, false},
		{"403 counts when listed", Config{Statuses: []int{401, 403}}, "/api/login", "", 403, true},
		{"any route counts when none are listed", Config{}, "/whatever", "", 401, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) })
			h := newGuard(t, tt.cfg, newMemory(t)).Handler(next)
			setRoute := func(_ *http.Request, i *reqinfo.Info) { i.Route = tt.route }
			for range 5 {
				r, _ := login("203.0.113.7", tt.path, setRoute)
				serve(h, r)
			}
			r, _ := login("203.0.113.7", tt.path, setRoute)
			banned := serve(h, r) == 429
			if banned != tt.wantBans {
				t.Fatalf("banned=%v, want %v", banned, tt.wantBans)
			}
		})
	}
}

func TestGuard_ExemptClientsAreNotExemptFromBans(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, Config{}, newMemory(t)).Handler(up)
	for range 5 {
		r, _ := login("10.0.0.5", "/api/login", withBasic("a", "wrong"), exempt)
		serve(h, r)
	}
	r, _ := login("10.0.0.5", "/api/login", withBasic("a", "right"), exempt)
	if code := serve(h, r); code != 429 {
		t.Fatalf("exempt client after 5 failures: %d, want 429", code)
	}
}

func TestGuard_NormalUserIsNeverBanned(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, Config{Username: UsernameConfig{Basic: true}}, newMemory(t)).Handler(up)
	// Two typos, a success, then a working day of requests.
	for _, pw := range []string{"wrong", "wrong", "right"} {
		r, _ := login("203.0.113.7", "/api/login", withBasic("agent1", pw))
		serve(h, r)
	}
	for i := range 500 {
		r, _ := login("203.0.113.7", "/finesse/api/User/agent1", withBasic("agent1", "right"))
		if code := serve(h, r); code != 200 {
			t.Fatalf("request %d: %d", i+1, code)
		}
	}
}

// failingStore is a store whose backend is down under the deny policy.
type failingStore struct{ state.Store }

func (failingStore) Banned(context.Context, string) (state.Ban, bool, error) {
	return state.Ban{}, false, state.ErrUnavailable
}

func TestGuard_StoreUnavailableRefusesWith503(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, Config{}, failingStore{}).Handler(up)
	r, _ := login("203.0.113.7", "/api/login", withBasic("a", "right"))
	if code := serve(h, r); code != 503 || up.calls.Load() != 0 {
		t.Fatalf("got %d with %d upstream calls, want 503 and none", code, up.calls.Load())
	}
}

func TestGuard_KeepsFlushAndHijackWorking(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			io.WriteString(w, "first\n")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
			if _, ok := w.(http.Flusher); !ok {
				t.Error("not an http.Flusher")
			}
			io.WriteString(w, "second\n")
		case "/upgrade":
			if _, ok := w.(http.Hijacker); !ok {
				t.Error("not an http.Hijacker")
			}
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nhello")
			brw.Flush()
		}
	})
	srv := httptest.NewServer(newGuard(t, Config{}, newMemory(t)).Handler(next))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "first\nsecond\n" {
		t.Fatalf("stream body %q", body)
	}

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	c.SetDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	status, _ := br.ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("upgrade status %q", status)
	}
	rest, _ := io.ReadAll(br)
	if !strings.HasSuffix(string(rest), "hello") {
		t.Fatalf("after upgrade %q", rest)
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"an empty section takes the defaults", Config{}, ""},
		{"the Cisco profile is valid", Config{BanStatus: 418, Routes: []string{"/j_security_check"}}, ""},
		{"zero-or-less failures are refused", Config{Failures: -1}, "failures"},
		{"a 2xx ban status is refused", Config{BanStatus: 200}, "ban_status"},
		{"a 2xx failure status is refused", Config{Statuses: []int{302}}, "statuses"},
		{"a route that is not a path is refused", Config{Routes: []string{"api/login"}}, "routes"},
		{"a window over a day is refused", Config{Window: units.Duration(25 * time.Hour)}, "window"},
		{"a syslog address without a port is refused", Config{Syslog: SyslogConfig{Address: "loghost"}}, "syslog.address"},
		{"an unknown syslog network is refused", Config{Syslog: SyslogConfig{Address: "loghost:514", Network: "sctp"}}, "syslog.network"},
		{"an unknown facility is refused", Config{Syslog: SyslogConfig{Address: "loghost:514", Facility: "security"}}, "syslog.facility"},
		{"a malformed JSON member path is refused", Config{Username: UsernameConfig{JSONField: "a..b"}}, "json_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
	d := Config{}.WithDefaults()
	if d.Failures != 5 || d.Window.D() != 30*time.Second || d.Ban.D() != 30*time.Minute || d.BanStatus != 429 || len(d.Statuses) != 1 || d.Statuses[0] != 401 {
		t.Fatalf("defaults %+v", d)
	}
}

// BenchmarkGuard_CleanRequest is the cost of the stage for a request from
// a client that is not banned, on a route where failures are not counted.
func BenchmarkGuard_CleanRequest(b *testing.B) {
	g := newGuard(b, Config{Routes: []string{"/api/login"}}, newMemory(b))
	h := g.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r, _ := login("203.0.113.7", "/finesse/")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkGuard_CountedLoginWithUsername adds a Basic user name (a second
// ban lookup) and the status-observing writer.
func BenchmarkGuard_CountedLoginWithUsername(b *testing.B) {
	g := newGuard(b, Config{Username: UsernameConfig{Basic: true}}, newMemory(b))
	h := g.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r, _ := login("203.0.113.7", "/api/login", withBasic("agent1", "pw"))
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
