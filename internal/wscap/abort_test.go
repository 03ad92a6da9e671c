package wscap

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"
)

// An upgrade request that the upstream answers with an ordinary (large)
// response, and a client that goes away while the body is copied:
// ReverseProxy panics with http.ErrAbortHandler, and the WebSocket slot
// taken by Route.Handler must still be given back.
func TestRoute_SlotIsReleasedWhenTheProxyAborts(t *testing.T) {
	big := strings.Repeat("x", 8<<20)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Ignores the Upgrade header: an ordinary page on a route with websocket: true.
		w.Header().Set("Content-Type", "text/html")
		for i := 0; i < len(big); i += 64 << 10 {
			if _, err := io.WriteString(w, big[i:i+64<<10]); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error { AdoptUpgrade(resp); return nil }
	route := NewSite(0).Route(0, 0)
	srv := httptest.NewServer(route.Handler(time.Minute, proxy))
	t.Cleanup(srv.Close)

	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET /page HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		buf := make([]byte, 1024)
		_, _ = c.Read(buf) // the response has started
		c.Close()          // and the client goes away
	}
	deadline := time.Now().Add(3 * time.Second)
	for route.Open() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := route.Open(); n != 0 {
		t.Fatalf("%d WebSocket slots still taken after the requests ended (leaked on ErrAbortHandler)", n)
	}
}
