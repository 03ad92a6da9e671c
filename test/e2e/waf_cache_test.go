package e2e

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const wafCacheConfig = `
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0"}
log: {access: off, security: "{{DIR}}/security.log"}
tls: {cert: "{{DIR}}/site.pem", key: "{{DIR}}/site-key.pem"}
limits: {handshakes_per_client: 1000/s}
rate_limits:
  static: {rate: 1/m, burst: 5}
sites:
  - host: app.test
    upstream: {targets: ["{{UP}}"]}
    routes:
      - prefix: /api/
        methods: [GET, POST, PUT, DELETE]
        waf:
          exclusions:   # agents' free-text notes: the command-word rules only, this field only
            - {rules: [932230, 932235, 932236, 932250, 932260, 932340, 932370, 932380], routes: [/api/notes], fields: ["ARGS:json.note"]}
      - prefix: /watch/
        methods: [GET, POST]
        waf: {mode: detect}
      - prefix: /static/
        rate_limit: static
        cache: {enabled: true, revalidate_after: 5m}
`

func TestWAF_BlocksAttacksBeforeTheUpstream(t *testing.T) {
	e := start(t, wafCacheConfig)
	c := e.client()
	send := func(method, path, ctype, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://app.test"+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("User-Agent", chromeUA)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
	}{
		{"SQLiInQuery", "GET", "/api/users?id=" + url.QueryEscape("1' OR '1'='1' --"), "", "", 403},
		{"XSSInForm", "POST", "/api/comment", "application/x-www-form-urlencoded", "text=" + url.QueryEscape("<script>alert(document.cookie)</script>"), 403},
		{"SQLiInJSON", "POST", "/api/search", "application/json", `{"q":"1 UNION SELECT username, password FROM users--"}`, 403},
		{"XXE", "POST", "/api/import", "application/xml", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>`, 403},
		{"ShellInjection", "GET", "/api/ping?host=" + url.QueryEscape("127.0.0.1; cat /etc/passwd"), "", "", 403},
		{"RESTPutWithXML", "PUT", "/api/User/1001", "application/xml", `<User><state>READY</state></User>`, 200},
		{"AgentNoteJSON", "POST", "/api/notes", "application/json", `{"note":"Customer asked about delivery time, will call back tomorrow"}`, 200},
		{"AgentNoteStillCheckedForXSS", "POST", "/api/notes", "application/json", `{"note":"<script>alert(1)</script>"}`, 403},
		{"NoteRulesStillActiveOnOtherFields", "POST", "/api/notes", "application/json", `{"subject":"Customer asked about delivery time, will call back tomorrow"}`, 403},
		{"DeleteAllowedByRoute", "DELETE", "/api/User/1001/dialog", "", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.up.hits.Load()
			resp, body := send(tc.method, tc.path, tc.ctype, tc.body)
			if resp.StatusCode != tc.status {
				waitFor(t, "log", func() bool { return strings.Contains(e.securityLog(), resp.Header.Get("X-Request-ID")) })
				t.Fatalf("status %d, want %d: %s\n%s", resp.StatusCode, tc.status, body, e.securityLog())
			}
			if tc.status == 403 {
				if e.up.hits.Load() != before {
					t.Fatal("blocked request reached the upstream")
				}
				if id := resp.Header.Get("X-Request-ID"); id == "" || !strings.Contains(body, id) {
					t.Fatalf("refusal without its request id: %q", body)
				}
			}
		})
	}
	// detect mode logs and forwards.
	before := e.up.hits.Load()
	if resp, _ := send("GET", "/watch/x?id="+url.QueryEscape("1' OR '1'='1' --"), "", ""); resp.StatusCode != 200 || e.up.hits.Load() != before+1 {
		t.Fatalf("detect mode: %d", resp.StatusCode)
	}
	waitFor(t, "WAF events", func() bool {
		log := e.securityLog()
		return strings.Contains(log, `"stage":"waf","reason":"rules"`) && strings.Contains(log, `"reason":"detect"`) && strings.Contains(log, `"reason":"xxe"`)
	})
}

func TestCache_ThroughTheProxy(t *testing.T) {
	e := start(t, wafCacheConfig)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp := e.get(path)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	r1, b1 := get("/static/app.js")
	r2, b2 := get("/static/app.js")
	if r1.StatusCode != 200 || b1 != b2 {
		t.Fatalf("status %d, bodies differ", r1.StatusCode)
	}
	if !strings.Contains(r1.Header.Get("Cache-Status"), "stored") || r2.Header.Get("Cache-Status") != "rampart; hit" {
		t.Fatalf("Cache-Status %q then %q", r1.Header.Get("Cache-Status"), r2.Header.Get("Cache-Status"))
	}
	if e.up.hits.Load() != 1 {
		t.Fatalf("upstream saw %d requests for one cached asset", e.up.hits.Load())
	}
	// Purge through the admin API: the next request goes upstream.
	resp, err := http.Post("http://"+e.srv.AdminAddr().String()+"/cache/purge?site=app.test&prefix=/static/", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("purge: %v %v", err, resp)
	}
	resp.Body.Close()
	if r, _ := get("/static/app.js"); !strings.Contains(r.Header.Get("Cache-Status"), "fwd=") || e.up.hits.Load() != 2 {
		t.Fatalf("after purge: %q, upstream hits %d", r.Header.Get("Cache-Status"), e.up.hits.Load())
	}
	// Cache hits still pass the host gate, the route match and the rate limit.
	if out, _ := e.raw("app.test", "GET /static/app.js HTTP/1.1\r\nHost: evil.example\r\n\r\n"); statusOf(out) != 421 {
		t.Fatalf("cached asset for an unknown host: %d", statusOf(out))
	}
	if out, _ := e.raw("app.test", "GET /static/../static/app.js HTTP/1.1\r\nHost: app.test\r\n\r\n"); statusOf(out) != 400 {
		t.Fatalf("cached asset through a traversal: %d", statusOf(out))
	}
	codes := map[int]int{}
	for i := 0; i < 5; i++ {
		r, _ := get("/static/app.js")
		codes[r.StatusCode]++
	}
	if codes[429] == 0 {
		t.Fatalf("rate limit did not apply to cache hits: %v", codes)
	}
}
