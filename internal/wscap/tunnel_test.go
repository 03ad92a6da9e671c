package wscap

import (
	"bufio"
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

// rawRig is a front (Route.Handler over httputil.ReverseProxy with
// AdoptUpgrade) and an upstream that answers an upgrade with 101 and then
// runs serve on the raw connection. Clients speak raw TCP, so that the
// test controls every byte and every half-close.
func rawRig(t *testing.T, idle time.Duration, serve func(c net.Conn, br *bufio.Reader)) (front string, route *Route) {
	t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
		serve(c, brw.Reader)
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error { AdoptUpgrade(resp); return nil }
	route = NewSite(0).Route(0, 0)
	srv := httptest.NewServer(route.Handler(idle, proxy))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), route
}

// upgrade opens a raw connection through the front and reads the 101.
func upgrade(t *testing.T, front string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c.(*net.TCPConn), br
}

func TestTunnelIsTakenOverAndParksBothLegs(t *testing.T) {
	front, route := rawRig(t, 0, func(c net.Conn, br *bufio.Reader) {
		// Line echo, upper-cased so that the answer is the upstream's.
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, strings.ToUpper(line)); err != nil {
				return
			}
		}
	})
	open := tunnelsOpen.Load()
	c, br := upgrade(t, front)
	waitFor(t, "tunnel taken over", func() bool { return tunnelsOpen.Load() == open+1 })
	for i := range 3 {
		time.Sleep(2 * linger) // both legs parked: the next bytes wake them
		_, _ = io.WriteString(c, "ping\n")
		if got, err := br.ReadString('\n'); got != "PING\n" {
			t.Fatalf("round %d: got %q, %v", i, got, err)
		}
	}
	if route.Open() != 1 {
		t.Fatalf("route Open() = %d while the tunnel is open, want 1", route.Open())
	}
	c.Close()
	waitFor(t, "slot released", func() bool { return route.Open() == 0 && tunnelsOpen.Load() == open })
}

func TestTunnelPassesTheClientHalfCloseOn(t *testing.T) {
	// The upstream reads to the end of stream, then answers and closes: the
	// answer must still reach the client after the client's half-close.
	front, route := rawRig(t, 0, func(c net.Conn, br *bufio.Reader) {
		data, _ := io.ReadAll(br)
		_, _ = io.WriteString(c, "got "+string(data))
	})
	c, br := upgrade(t, front)
	time.Sleep(2 * linger)
	_, _ = io.WriteString(c, "last words")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	if err != nil || string(got) != "got last words" {
		t.Fatalf("after half-close: %q, %v", got, err)
	}
	waitFor(t, "slot released", func() bool { return route.Open() == 0 })
}

func TestTunnelEndsWhenTheUpstreamCloses(t *testing.T) {
	front, route := rawRig(t, 0, func(c net.Conn, br *bufio.Reader) {
		_, _ = br.ReadString('\n')
		_, _ = io.WriteString(c, "bye\n")
	})
	c, br := upgrade(t, front)
	time.Sleep(2 * linger)
	_, _ = io.WriteString(c, "hello\n")
	got, err := io.ReadAll(br)
	if err != nil || string(got) != "bye\n" {
		t.Fatalf("got %q, %v; want the upstream's last line, then the end", got, err)
	}
	waitFor(t, "slot released", func() bool { return route.Open() == 0 })
}

func TestParkedTunnelIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	front, route := rawRig(t, idle, func(c net.Conn, br *bufio.Reader) {
		_, _ = io.Copy(c, br)
	})
	_, br := upgrade(t, front)
	start := time.Now()
	_, _ = io.ReadAll(br) // until the idle timeout closes the tunnel
	if took := time.Since(start); took < idle*15/16 || took > idle+time.Second {
		t.Fatalf("closed after %v, want about %v", took, idle)
	}
	waitFor(t, "slot released", func() bool { return route.Open() == 0 })
}

func TestUpstreamRefusalReleasesTheSlot(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error { AdoptUpgrade(resp); return nil }
	route := NewSite(0).Route(1, 0)
	srv := httptest.NewServer(route.Handler(time.Minute, proxy))
	t.Cleanup(srv.Close)
	for range 3 { // a slot held by a refusal would refuse the next with 503
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want the upstream's 403", resp.StatusCode)
		}
	}
	if route.Open() != 0 {
		t.Fatalf("route Open() = %d after refusals", route.Open())
	}
}
