package audit

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// lenientServer is net/http serving one page to any host, method and
// version, with HTTP/2 on: a naive front end.
func lenientServer(t *testing.T) (*httptest.Server, Options) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "Apache/2.4.41 (Ubuntu)")
		w.Header().Set("X-Powered-By", "PHP/7.4.3")
		http.SetCookie(w, &http.Cookie{Name: "PHPSESSID", Value: "abc", Path: "/"})
		fmt.Fprint(w, "<h1>Welcome</h1>")
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, Options{Target: srv.URL, Hosts: []string{"app.test", "other.test"}, Insecure: true, HandshakeRate: 1000, Timeout: 2 * time.Second}
}

func TestProtocol_Lenient(t *testing.T) {
	_, o := lenientServer(t)
	a := newTestAuditor(t, o)
	a.runProtocol(ctxT(t))
	got := checkMap(a)
	want(t, got, map[string]Status{
		"protocol.http2":          Fail,
		"protocol.http10":         Fail,
		"protocol.plain-http":     Fail,
		"protocol.trace":          Fail,
		"protocol.options":        Warn,
		"protocol.unknown-method": Warn,
	})
	if ev := got["protocol.plain-http"].Evidence; !strings.Contains(ev, "400") {
		t.Errorf("plain-http evidence %q", ev)
	}
}

func TestProtocol_Strict(t *testing.T) {
	var f *fake
	f = startFake(t, nil, func(r *rawReq) rawResp { return strictSite(portOf(f))(r) })
	a := newTestAuditor(t, testOptions(f))
	a.runProtocol(ctxT(t))
	want(t, checkMap(a), map[string]Status{
		"protocol.http2":          Pass,
		"protocol.http10":         Pass,
		"protocol.plain-http":     Pass,
		"protocol.trace":          Pass,
		"protocol.options":        Pass,
		"protocol.unknown-method": Pass,
	})
}

// A plain listener that answers anything with an HTTP page: the probe
// must see it as a failure even without TLS in the way.
func TestProtocol_PlainHTTPAnswered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				_, _ = c.Read(buf)
				_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
			}()
		}
	}()
	a := newTestAuditor(t, Options{Target: "https://" + ln.Addr().String(), HandshakeRate: 1000})
	a.plainHTTP(ctxT(t))
	want(t, checkMap(a), map[string]Status{"protocol.plain-http": Fail})
}
