package e2e

import (
	"crypto/tls"
	"strings"
	"testing"
)

// Every row is a hostile request. None may reach the upstream; each gets
// the status given (0: the connection is closed without an answer).
func TestAttacks_AreRefusedBeforeTheUpstream(t *testing.T) {
	e := start(t, baseConfig)
	long := strings.Repeat("a", 5000)
	big := strings.Repeat("X-Pad: "+strings.Repeat("b", 100)+"\r\n", 90)
	cases := []struct {
		name   string
		sni    string
		req    string
		status int
	}{
		// Paths: traversal and normalisation bypasses of the allowlist.
		{"TomcatPathParameterTraversal", "app.test", "GET /api/..;/admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"EncodedDotDot", "app.test", "GET /api/%2e%2e/admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"MixedEncodedDotDot", "app.test", "GET /api/.%2E/admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"DoubleEncodedDot", "app.test", "GET /api/%252e%252e/admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"DoubleEncodedSlash", "app.test", "GET /api%252fadmin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"EncodedSlash", "app.test", "GET /api%2f..%2fadmin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"EncodedBackslash", "app.test", "GET /api/..%5cadmin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"RawBackslash", "app.test", "GET /api/..\\admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"EncodedNUL", "app.test", "GET /api/x%00.json HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"OverlongUTF8Dot", "app.test", "GET /api/%c0%ae%c0%ae/admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"InvalidUTF8", "app.test", "GET /api/%ff HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"DotSegment", "app.test", "GET /api/./x HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"PlainDotDot", "app.test", "GET /api/../admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"PathParameter", "app.test", "GET /api/x;foo=1 HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"JSessionIDWhereNotAllowed", "app.test", "GET /api/x;jsessionid=ABC HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"Fragment", "app.test", "GET /api/x#frag HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		{"DenyEntryBeatsRoute", "app.test", "GET /admin/users HTTP/1.1\r\nHost: app.test\r\n\r\n", 403},
		{"DoubleSlashStillDenied", "app.test", "GET //admin/users HTTP/1.1\r\nHost: app.test\r\n\r\n", 403},
		{"NoRouteDeniedByDefault", "app.test", "GET /WEB-INF/web.xml HTTP/1.1\r\nHost: app.test\r\n\r\n", 404},
		{"CaseVariantIsNoRoute", "app.test", "GET /API/x HTTP/1.1\r\nHost: app.test\r\n\r\n", 404},
		{"MethodNotListed", "app.test", "DELETE /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n", 405},
		{"Trace", "app.test", "TRACE /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n", 405},
		{"Track", "app.test", "TRACK /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n", 405},
		{"UpgradeOnNonWebSocketRoute", "app.test", "GET /api/x HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 403},
		{"H2CUpgradeOnWebSocketRoute", "app.test", "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", 400},
		{"AsteriskForm", "app.test", "OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n", 400},
		// Hosts.
		{"UnknownHost", "app.test", "GET /api/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", 421},
		{"DomainFrontingSNIOtherSite", "other.test", "GET /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n", 421},
		{"MissingSNI", "", "GET /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n", 421},
		{"MissingHost", "app.test", "GET /api/x HTTP/1.1\r\nUser-Agent: x\r\n\r\n", 400},
		{"DuplicateHost", "app.test", "GET /api/x HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n", 400},
		{"AbsoluteFormOtherHost", "app.test", "GET http://internal.corp/api/x HTTP/1.1\r\nHost: app.test\r\n\r\n", 421},
		{"Connect", "app.test", "CONNECT internal.corp:443 HTTP/1.1\r\nHost: internal.corp:443\r\n\r\n", 405},
		{"HostPortMismatch", "app.test", "GET /api/x HTTP/1.1\r\nHost: app.test:9999\r\n\r\n", 421},
		{"HostWithUserinfo", "app.test", "GET /api/x HTTP/1.1\r\nHost: a@app.test\r\n\r\n", 400},
		// Protocol and smuggling.
		{"ContentLengthAndTransferEncoding", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TransferEncodingGzip", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"TransferEncodingList", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400},
		{"TransferEncodingTwice", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TransferEncodingObfuscated", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
		{"DuplicateContentLengthEqual", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nA", 400},
		{"ConflictingContentLength", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nAB", 400},
		{"ContentLengthList", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1, 1\r\n\r\nA", 400},
		{"ContentLengthPlusSign", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: +1\r\n\r\nA", 400},
		{"ObsFold", "app.test", "GET /api/x HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n  folded\r\n\r\n", 400},
		{"SpaceBeforeColon", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"BareLF", "app.test", "GET /api/x HTTP/1.1\nHost: app.test\n\n", 400},
		{"NULInHeader", "app.test", "GET /api/x HTTP/1.1\r\nHost: app.test\r\nX-A: a\x00b\r\n\r\n", 400},
		{"HTTP10", "app.test", "GET /api/x HTTP/1.0\r\nHost: app.test\r\n\r\n", 505},
		{"HTTP09", "app.test", "GET /api/x\r\n\r\n", 505},
		{"HTTP2Version", "app.test", "GET /api/x HTTP/2.0\r\nHost: app.test\r\n\r\n", 505},
		{"HTTP2Preface", "app.test", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0},
		{"HeaderTooLarge", "app.test", "GET /api/x HTTP/1.1\r\nHost: app.test\r\n" + big + "\r\n", 431},
		{"URITooLong", "app.test", "GET /api/" + long + " HTTP/1.1\r\nHost: app.test\r\n\r\n", 414},
		{"BodyOverLimit", "app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 70000\r\n\r\n", 413},
	}
	if len(cases) < 40 {
		t.Fatalf("the battery must hold at least 40 cases, has %d", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.up.hits.Load()
			out, closed := e.raw(tc.sni, tc.req)
			got := statusOf(out)
			if got != tc.status {
				t.Fatalf("status %d, want %d; response:\n%.300s", got, tc.status, out)
			}
			if n := e.up.hits.Load() - before; n != 0 {
				t.Fatalf("%d request(s) reached the upstream", n)
			}
			if tc.status == 0 {
				if out != "" || !closed {
					t.Fatalf("want the connection closed without an answer, got %q (closed=%v)", out, closed)
				}
				return
			}
			if !strings.Contains(out, "X-Request-Id: ") {
				t.Fatalf("refusal without X-Request-ID:\n%.300s", out)
			}
			if strings.Contains(out, "Apache-Coyote") || strings.Contains(strings.ToLower(out), "<html") {
				t.Fatalf("refusal leaks internals or an HTML page:\n%.300s", out)
			}
		})
	}
	// Every refusal is a security event naming the stage and reason.
	waitFor(t, "security events", func() bool {
		log := e.securityLog()
		return strings.Contains(log, `"stage":"route","reason":"dot-segment"`) &&
			strings.Contains(log, `"stage":"protocol","reason":"content-length-and-transfer-encoding"`) &&
			strings.Contains(log, `"stage":"hostgate","reason":"sni-host-mismatch"`) &&
			strings.Contains(log, `"stage":"protocol","reason":"http2-preface"`)
	})
}

// A smuggled second request hidden behind a valid one is refused and the
// connection closed; the valid one is served.
func TestSmuggling_PipelinedAfterValidRequestIsRefused(t *testing.T) {
	e := start(t, baseConfig)
	out, closed := e.raw("app.test",
		"GET /api/one HTTP/1.1\r\nHost: app.test\r\n\r\n"+
			"POST /api/two HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG")
	if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.Contains(out, "HTTP/1.1 400") {
		t.Fatalf("want 200 then 400, got:\n%s", out)
	}
	if !closed {
		t.Fatal("connection stayed open after a smuggling attempt")
	}
	if e.up.hits.Load() != 1 || e.up.last().URI != "/api/one" {
		t.Fatalf("upstream saw %d requests, last %q", e.up.hits.Load(), e.up.last().URI)
	}
}

// Plain HTTP on the TLS port gets no page: the connection just closes.
func TestPlainHTTPOnTLSPortIsClosedWithoutAPage(t *testing.T) {
	e := start(t, baseConfig)
	c, err := dialTCP(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"))
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	if n != 0 {
		t.Fatalf("got %d bytes back: %q", n, buf[:n])
	}
}

// A chunked body has no length to check up front. It is streamed, and the
// stream is cut at max_body: the client gets 413 and the upstream never
// receives a complete request.
func TestChunkedBodyOverLimit_NeverCompletesUpstream(t *testing.T) {
	e := start(t, baseConfig)
	out, _ := e.raw("app.test", "POST /api/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n11170\r\n"+strings.Repeat("z", 70000)+"\r\n0\r\n\r\n")
	if got := statusOf(out); got != 413 {
		t.Fatalf("status %d, want 413:\n%.300s", got, out)
	}
	if l := e.up.last(); l.URI != "" && l.BodyLen >= 70000 {
		t.Fatalf("upstream received the whole over-limit body (%d bytes)", l.BodyLen)
	}
}

// Clients that send a request and hang up at once race net/http's
// background read against Close; the proxy must keep serving.
func TestHangUpAfterRequest_DoesNotCrash(t *testing.T) {
	e := start(t, baseConfig)
	for i := 0; i < 300; i++ {
		c, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		_, _ = c.Write([]byte("GET /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n"))
		c.Close()
	}
	resp := e.get("/api/x") // fails the test if the proxy is gone
	resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 429 { // 300 requests in a burst meet the default rate limit
		t.Fatalf("status %d", resp.StatusCode)
	}
}
