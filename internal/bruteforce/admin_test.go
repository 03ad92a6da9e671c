package bruteforce

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/state/statetest"
)

func adminDo(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAdmin_ManualBanThenLift(t *testing.T) {
	store := newMemory(t)
	admin := AdminHandler(store)
	up := &upstream{}
	h := newGuard(t, Config{}, store).Handler(up)
	pass := func(client string) int {
		r, _ := login(client, "/api/login", withBasic("a", "right"))
		return serve(h, r)
	}

	w := adminDo(t, admin, "POST", "/bans", `{"ip":"203.0.113.7","duration":"1h","reason":"scanner"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	if code := pass("203.0.113.7"); code != 429 {
		t.Fatalf("manually banned client: %d, want 429", code)
	}
	w = adminDo(t, admin, "POST", "/bans", `{"key":"user:FINESSE.example.com:Mallory","duration":"30m"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST user: %d %s", w.Code, w.Body)
	}
	r, _ := login("192.0.2.50", "/api/login", withBasic("mallory", "right"))
	if code := serve(newGuard(t, Config{Username: UsernameConfig{Basic: true}}, store).Handler(up), r); code != 429 {
		t.Fatalf("manually banned user: %d, want 429", code)
	}

	w = adminDo(t, admin, "GET", "/bans", "")
	var list []BanView
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	if len(list) != 2 || list[0].Key != "user:finesse.example.com:mallory" || list[1].Key != "ip:203.0.113.7" ||
		!list[1].Manual || list[1].Reason != "scanner" || list[1].Until == nil || list[1].Remaining == "" {
		t.Fatalf("list %+v", list)
	}

	if w = adminDo(t, admin, "DELETE", "/bans/ip:203.0.113.7", ""); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if code := pass("203.0.113.7"); code != 200 {
		t.Fatalf("after the ban was lifted: %d, want 200", code)
	}
	if w = adminDo(t, admin, "DELETE", "/bans/203.0.113.7", ""); w.Code != http.StatusNotFound {
		t.Fatalf("DELETE of a lifted ban: %d, want 404", w.Code)
	}
}

func TestAdmin_RefusesBadRequests(t *testing.T) {
	admin := AdminHandler(newMemory(t))
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"a body that is not JSON", "POST", "/bans", `ip=1.2.3.4`, 400},
		{"an unknown field", "POST", "/bans", `{"ip":"192.0.2.1","duration":"1h","forever":true}`, 400},
		{"no target", "POST", "/bans", `{"duration":"1h"}`, 400},
		{"both key and ip", "POST", "/bans", `{"ip":"192.0.2.1","key":"ip:192.0.2.2","duration":"1h"}`, 400},
		{"an address that is not one", "POST", "/bans", `{"ip":"192.0.2.300","duration":"1h"}`, 400},
		{"a key of an unknown kind", "POST", "/bans", `{"key":"cookie:abc","duration":"1h"}`, 400},
		{"no duration", "POST", "/bans", `{"ip":"192.0.2.1"}`, 400},
		{"a negative duration", "POST", "/bans", `{"ip":"192.0.2.1","duration":"-1h"}`, 400},
		{"a duration over a year", "POST", "/bans", `{"ip":"192.0.2.1","duration":"9000h"}`, 400},
		{"deleting a malformed key", "DELETE", "/bans/nonsense", ``, 400},
		{"an unsupported method", "PUT", "/bans", `{}`, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if w := adminDo(t, admin, tt.method, tt.path, tt.body); w.Code != tt.want {
				t.Fatalf("got %d, want %d: %s", w.Code, tt.want, w.Body)
			}
		})
	}
}

func TestNormalizeKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.7", "ip:203.0.113.7"},
		{"ip:203.0.113.7", "ip:203.0.113.7"},
		{"::ffff:203.0.113.7", "ip:203.0.113.7"},
		{"2001:db8::1", "ip:2001:db8::/64"},
		{"ip:2001:db8:0:0::/64", "ip:2001:db8::/64"},
		{"user:Finesse.Example.com:Alice", "user:finesse.example.com:alice"},
		{"user:site", ""},
		{"ip:2001:db8::/48", ""},
		{"example.com", ""},
	}
	for _, tt := range tests {
		got, err := NormalizeKey(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%q: got %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestCLI(t *testing.T) {
	store := newMemory(t)
	srv := httptest.NewServer(AdminHandler(store))
	defer srv.Close()
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := RunCLI(args, srv.URL+"/", &out, &errb)
		return code, out.String(), errb.String()
	}
	steps := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"list with no bans says so", []string{"list"}, 0, "no bans", ""},
		{"add bans an address", []string{"add", "203.0.113.7", "1h", "port", "scan"}, 0, "banned ip:203.0.113.7 until", ""},
		{"add accepts a user key", []string{"bans", "add", "user:site:bob", "10m"}, 0, "banned user:site:bob", ""},
		{"list shows the bans", []string{"list"}, 0, "ip:203.0.113.7", ""},
		{"remove lifts a ban", []string{"remove", "203.0.113.7"}, 0, "lifted ban on ip:203.0.113.7", ""},
		{"remove of a ban that is not there fails", []string{"remove", "203.0.113.7"}, 1, "", "no ban on ip:203.0.113.7"},
		{"add with a bad duration fails with the API's reason", []string{"add", "203.0.113.9", "soon"}, 1, "", "duration"},
		{"a missing argument is a usage error", []string{"add", "203.0.113.9"}, 2, "", "usage:"},
		{"an unknown command is a usage error", []string{"ban", "x"}, 2, "", "unknown command"},
		{"no command is a usage error", nil, 2, "", "usage:"},
	}
	for _, s := range steps {
		code, out, errOut := run(s.args...)
		if code != s.wantCode || !strings.Contains(out, s.wantStdout) || !strings.Contains(errOut, s.wantStderr) {
			t.Fatalf("%s: exit %d stdout %q stderr %q", s.name, code, out, errOut)
		}
	}
	_, out, _ := run("list")
	if !strings.Contains(out, "user:site:bob") || strings.Contains(out, "203.0.113.7") || !strings.Contains(out, "KEY") {
		t.Fatalf("final list:\n%s", out)
	}
	if bans, _ := store.Bans(t.Context()); len(bans) != 1 || !bans[0].Manual {
		t.Fatalf("store holds %+v", bans)
	}
	if code := RunCLI([]string{"list"}, "http://127.0.0.1:1", &bytes.Buffer{}, &bytes.Buffer{}); code != 1 {
		t.Fatalf("unreachable admin API: exit %d, want 1", code)
	}
}

func TestGuard_BanIsSharedAcrossProxiesThroughRedis(t *testing.T) {
	srv := statetest.StartRedis(t)
	storeA := state.NewRedis(state.RedisOptions{Address: srv.Addr})
	storeB := state.NewRedis(state.RedisOptions{Address: srv.Addr})
	defer storeA.Close()
	defer storeB.Close()
	upA, upB := &upstream{}, &upstream{}
	cfg := Config{Username: UsernameConfig{JSONField: "user"}}
	a := newGuard(t, cfg, storeA).Handler(upA)
	b := newGuard(t, cfg, storeB).Handler(upB)

	// Failures spread over both proxies add up.
	for i := range 5 {
		h := a
		if i%2 == 1 {
			h = b
		}
		r, _ := login("203.0.113.7", "/api/login", withJSON(`{"user":"alice","pw":"wrong"}`))
		if code := serve(h, r); code != 401 {
			t.Fatalf("failure %d: %d", i+1, code)
		}
	}
	for name, h := range map[string]http.Handler{"A": a, "B": b} {
		r, _ := login("203.0.113.7", "/api/login", withJSON(`{"user":"bob","pw":"right"}`))
		if code := serve(h, r); code != 429 {
			t.Fatalf("proxy %s after 5 failures: %d, want 429", name, code)
		}
		r, _ = login("192.0.2.1", "/api/login", withJSON(`{"user":"alice","pw":"right"}`))
		if code := serve(h, r); code != 429 {
			t.Fatalf("proxy %s, locked user from another address: %d, want 429", name, code)
		}
	}
	if n := upA.calls.Load() + upB.calls.Load(); n != 5 {
		t.Fatalf("upstreams saw %d requests, want 5", n)
	}
	// Lifted through B's admin API, lifted on A.
	if w := adminDo(t, AdminHandler(storeB), "DELETE", "/bans/ip:203.0.113.7", ""); w.Code != 204 {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	r, _ := login("203.0.113.7", "/api/login", withJSON(`{"user":"bob","pw":"right"}`))
	if code := serve(a, r); code != 200 {
		t.Fatalf("A after the ban was lifted through B: %d", code)
	}
}

var rfc5424 = regexp.MustCompile(`^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[(rampart@32473(?: [a-z_]+="(?:[^"\\\]]|\\.)*")*)\] (.*)$`)

func TestSyslog_BanNoticeIsReceived(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run("over "+network, func(t *testing.T) {
			lines := make(chan string, 1)
			var addr string
			if network == "udp" {
				pc, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				addr = pc.LocalAddr().String()
				go func() {
					buf := make([]byte, 4096)
					pc.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, _, err := pc.ReadFrom(buf)
					if err == nil {
						lines <- string(buf[:n])
					}
				}()
			} else {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				addr = l.Addr().String()
				go func() {
					c, err := l.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := readOctetCount(c)
					if err != nil || n > 4096 {
						return
					}
					buf := make([]byte, n)
					if _, err := io.ReadFull(c, buf); err == nil {
						lines <- string(buf)
					}
				}()
			}
			cfg := Config{Failures: 2, Syslog: SyslogConfig{Address: addr, Network: network, Facility: "authpriv"}}
			h := newGuard(t, cfg, newMemory(t)).Handler(&upstream{})
			for range 2 {
				r, _ := login("203.0.113.7", "/api/login", withBasic("a", "wrong"))
				serve(h, r)
			}
			var line string
			select {
			case line = <-lines:
			case <-time.After(5 * time.Second):
				t.Fatal("no syslog message")
			}
			m := rfc5424.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("not an RFC 5424 message: %q", line)
			}
			if m[1] != "84" { // authpriv (10) * 8 + warning (4)
				t.Errorf("PRI %s, want 84", m[1])
			}
			if _, err := time.Parse(time.RFC3339Nano, m[2]); err != nil {
				t.Errorf("timestamp %q: %v", m[2], err)
			}
			if m[4] != "rampart" || m[6] != "ban" {
				t.Errorf("app %q msgid %q", m[4], m[6])
			}
			for _, want := range []string{`key="ip:203.0.113.7"`, `kind="ip"`, `reason="brute-force"`, `site="finesse.example.com"`, `failures="2"`} {
				if !strings.Contains(m[7], want) {
					t.Errorf("structured data %q lacks %s", m[7], want)
				}
			}
			if !strings.Contains(m[8], "banned ip:203.0.113.7") {
				t.Errorf("message %q", m[8])
			}
		})
	}
}

func TestFormatRFC5424(t *testing.T) {
	ts := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	tests := []struct {
		name   string
		host   string
		params []sdParam
		msg    string
		want   string
	}{
		{"a plain message", "px1", []sdParam{{"key", "ip:192.0.2.1"}}, "hello",
			`<36>1 2026-03-01T12:00:00.123456Z px1 rampart 42 ban [rampart@32473 key="ip:192.0.2.1"] hello`},
		{"quotes, backslashes and brackets in values are escaped", "px1", []sdParam{{"user", `a"b\c]d`}}, "m",
			`<36>1 2026-03-01T12:00:00.123456Z px1 rampart 42 ban [rampart@32473 user="a\"b\\c\]d"] m`},
		{"spaces in the host and newlines in the message are replaced", "my host", nil, "two\nlines",
			`<36>1 2026-03-01T12:00:00.123456Z my_host rampart 42 ban - two lines`},
		{"an empty host is the nil value", "", nil, "",
			`<36>1 2026-03-01T12:00:00.123456Z - rampart 42 ban -`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatRFC5424(ts, 4, 4, tt.host, "rampart", "42", "ban", tt.params, tt.msg); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestConfig_DecodesTheDocumentedExample(t *testing.T) {
	src := `
brute_force:
  failures: 5
  window: 30s
  ban: 30m
  ban_status: 418
  statuses: [401]
  routes: [/api/login]
  username: {basic: true, form_field: username, json_field: username}
  syslog: {address: "127.0.0.1:514", network: udp}
`
	var doc struct {
		BruteForce Config `yaml:"brute_force"`
	}
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	c := doc.BruteForce
	if c.Failures != 5 || c.Window.D() != 30*time.Second || c.Ban.D() != 30*time.Minute || c.BanStatus != 418 ||
		len(c.Routes) != 1 || !c.Username.Basic || c.Username.FormField != "username" || c.Syslog.Network != "udp" {
		t.Fatalf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
