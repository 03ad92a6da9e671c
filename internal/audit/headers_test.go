package audit

import (
	"net/http"
	"testing"
)

func page(status int, target, body string, hdr ...string) *response {
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	return &response{Status: status, Header: h, Body: []byte(body), Len: len(body), target: target}
}

func TestHeaders(t *testing.T) {
	cases := []struct {
		name     string
		root, nf *response
		want     map[string]Status
	}{
		{"hardened",
			page(200, "/", "home", "X-Content-Type-Options", "nosniff", "X-Frame-Options", "SAMEORIGIN", "Set-Cookie", "s=1; Secure; HttpOnly"),
			page(404, "/nope", "not found"),
			map[string]Status{"headers.server-banner": Pass, "headers.x-powered-by": Pass, "headers.nosniff": Pass, "headers.frame-options": Pass}},
		{"versions",
			page(200, "/", "home", "Server", "Apache/2.4.41 (Ubuntu)", "X-Powered-By", "PHP/7.4.3"),
			page(404, "/nope", "nope"),
			map[string]Status{"headers.server-banner": Fail, "headers.x-powered-by": Fail, "headers.nosniff": Warn, "headers.frame-options": Warn}},
		{"names only",
			page(200, "/", "home", "Server", "cloudflare", "X-Powered-By", "Express", "Content-Security-Policy", "frame-ancestors 'none'"),
			page(404, "/nope", "nope"),
			map[string]Status{"headers.server-banner": Warn, "headers.x-powered-by": Warn, "headers.frame-options": Pass}},
		{"error page banner",
			page(200, "/", "home"),
			page(404, "/nope", "<html><center><h1>404 Not Found</h1></center><hr><center>nginx/1.25.3</center></html>"),
			map[string]Status{"headers.server-banner": Fail}},
		{"odd frame options",
			page(200, "/", "home", "X-Frame-Options", "ALLOW-FROM https://x.example"),
			nil,
			map[string]Status{"headers.frame-options": Warn}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAuditor(t, Options{Target: "https://app.test"})
			a.root, a.notFound = tc.root, tc.nf
			a.runHeaders()
			want(t, checkMap(a), tc.want)
		})
	}
}

func TestHeaders_NoResponse(t *testing.T) {
	a := newTestAuditor(t, Options{Target: "https://app.test"})
	a.root, a.notFound = &response{Closed: true}, &response{Closed: true}
	a.runHeaders()
	want(t, checkMap(a), map[string]Status{"headers.server-banner": Skip, "tls.hsts": Skip})
}

func TestCookies(t *testing.T) {
	for _, tc := range []struct {
		cookies []string
		st      Status
	}{
		{nil, Pass},
		{[]string{"sid=1; Secure; HttpOnly; SameSite=Strict"}, Pass},
		{[]string{"sid=1; Secure"}, Fail},
		{[]string{"sid=1; HttpOnly"}, Fail},
		{[]string{"a=1; Secure; HttpOnly", "JSESSIONID=2; Path=/"}, Fail},
	} {
		a := newTestAuditor(t, Options{Target: "https://app.test"})
		var hdr []string
		for _, c := range tc.cookies {
			hdr = append(hdr, "Set-Cookie", c)
		}
		a.root = page(200, "/", "home", hdr...)
		a.cookies([]*response{page(200, "/api/x", "{}")})
		if got := checkMap(a)["headers.cookies"]; got.Status != tc.st {
			t.Errorf("cookies %q: %s (%s), want %s", tc.cookies, got.Status, got.Evidence, tc.st)
		}
	}
}
