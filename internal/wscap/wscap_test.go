package wscap

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

func TestAcquireCaps(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	type step struct {
		route      int // index into routes
		client     netip.Addr
		wantReason string // "" means admitted
	}
	tests := []struct {
		name   string
		site   int
		routes [][2]int // max, perClient
		steps  []step
	}{
		{"per-client cap", 0, [][2]int{{0, 2}}, []step{
			{0, a, ""}, {0, a, ""}, {0, a, ReasonPerClient}, {0, b, ""},
		}},
		{"route cap", 0, [][2]int{{2, 0}}, []step{
			{0, a, ""}, {0, b, ""}, {0, c, ReasonRoute},
		}},
		{"site cap spans routes", 3, [][2]int{{2, 0}, {2, 0}}, []step{
			{0, a, ""}, {0, b, ""}, {1, c, ""}, {1, a, ReasonSite}, {0, c, ReasonSite},
		}},
		{"site cap is checked before the route cap", 1, [][2]int{{1, 1}}, []step{
			{0, a, ""}, {0, a, ReasonSite},
		}},
		{"route cap is checked before the per-client cap", 0, [][2]int{{1, 1}}, []step{
			{0, a, ""}, {0, a, ReasonRoute},
		}},
		{"per-client caps are per route", 0, [][2]int{{0, 1}, {0, 1}}, []step{
			{0, a, ""}, {1, a, ""}, {0, a, ReasonPerClient},
		}},
		{"IPv6 /64 is one client", 0, [][2]int{{0, 1}}, []step{
			{0, netip.MustParseAddr("2001:db8:1:2::1"), ""},
			{0, netip.MustParseAddr("2001:db8:1:2::2"), ReasonPerClient},
			{0, netip.MustParseAddr("2001:db8:1:3::1"), ""},
		}},
		{"mapped IPv4 is the IPv4 client", 0, [][2]int{{0, 1}}, []step{
			{0, a, ""}, {0, netip.MustParseAddr("::ffff:198.51.100.1"), ReasonPerClient},
		}},
		{"zero caps mean no cap", 0, [][2]int{{0, 0}}, []step{
			{0, a, ""}, {0, a, ""}, {0, a, ""}, {0, a, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := NewSite(tt.site)
			var routes []*Route
			for _, rc := range tt.routes {
				routes = append(routes, site.Route(rc[0], rc[1]))
			}
			var releases []func()
			for i, st := range tt.steps {
				release, reason, ok := routes[st.route].Acquire(st.client)
				if reason != st.wantReason || ok != (st.wantReason == "") {
					t.Fatalf("step %d: Acquire(%s) = %q, %v; want %q", i, st.client, reason, ok, st.wantReason)
				}
				if ok {
					releases = append(releases, release)
				}
			}
			for _, release := range releases {
				release()
				release() // a second call changes nothing
			}
			if site.Open() != 0 {
				t.Fatalf("site.Open() = %d after every release", site.Open())
			}
			for i, r := range routes {
				if r.Open() != 0 || len(r.clients) != 0 {
					t.Fatalf("route %d: Open() = %d, %d clients after every release", i, r.Open(), len(r.clients))
				}
			}
		})
	}
}

func TestUpdateKeepsOpenSockets(t *testing.T) {
	site := NewSite(10)
	route := site.Route(10, 10)
	a := netip.MustParseAddr("198.51.100.1")
	var releases []func()
	for range 3 {
		release, _, ok := route.Acquire(a)
		if !ok {
			t.Fatal("refused under the cap")
		}
		releases = append(releases, release)
	}
	route.Update(10, 2)
	if _, reason, _ := route.Acquire(a); reason != ReasonPerClient {
		t.Fatalf("over the lowered per-client cap: %q", reason)
	}
	site.Update(3)
	if _, reason, _ := route.Acquire(netip.MustParseAddr("198.51.100.2")); reason != ReasonSite {
		t.Fatalf("over the lowered site cap: %q", reason)
	}
	releases[0]()
	releases[1]()
	if _, _, ok := route.Acquire(a); !ok {
		t.Fatal("refused after enough sockets closed")
	}
}

func TestIsUpgrade(t *testing.T) {
	tests := []struct {
		name       string
		connection []string
		upgrade    string
		want       bool
	}{
		{"websocket upgrade", []string{"Upgrade"}, "websocket", true},
		{"token in a list, any case", []string{"keep-alive, UPGRADE"}, "websocket", true},
		{"token on a second line", []string{"keep-alive", "upgrade"}, "websocket", true},
		{"other protocols are counted too", []string{"Upgrade"}, "h2c", true},
		{"no Upgrade header", []string{"Upgrade"}, "", false},
		{"no Connection token", []string{"keep-alive"}, "websocket", false},
		{"token must be whole", []string{"upgraded"}, "websocket", false},
		{"plain request", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.connection != nil {
				req.Header["Connection"] = tt.connection
			}
			if tt.upgrade != "" {
				req.Header.Set("Upgrade", tt.upgrade)
			}
			if got := IsUpgrade(req); got != tt.want {
				t.Fatalf("IsUpgrade = %v, want %v", got, tt.want)
			}
		})
	}
}

// rig is an echo WebSocket upstream behind httputil.ReverseProxy behind
// route handlers: "/a" and "/b" go to two routes of one site. The test
// client names itself in X-Test-Client, which stands in for stage 6.
type rig struct {
	site     *Site
	a, b     *Route
	upgrades atomic.Int64 // upgrade requests that reached the upstream
	front    *httptest.Server
}

func newRig(t *testing.T, siteMax int, a, b [2]int, idle time.Duration) *rig {
	t.Helper()
	r := &rig{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if IsUpgrade(req) {
			r.upgrades.Add(1)
		}
		c, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if string(msg) == "close" {
				_ = c.Close(websocket.StatusNormalClosure, "")
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error { AdoptUpgrade(resp); return nil }
	r.site = NewSite(siteMax).Named("test.example")
	r.a = r.site.Route(a[0], a[1])
	r.b = r.site.Route(b[0], b[1])
	mux := http.NewServeMux()
	mux.Handle("/a", r.a.Handler(idle, proxy))
	mux.Handle("/b", r.b.Handler(idle, proxy))
	r.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		info := &reqinfo.Info{ID: "test"}
		if c := req.Header.Get("X-Test-Client"); c != "" {
			info.Client = netip.MustParseAddr(c)
		}
		mux.ServeHTTP(w, req.WithContext(reqinfo.With(req.Context(), info)))
	}))
	t.Cleanup(r.front.Close)
	return r
}

// dial opens a WebSocket to path as client; it returns the 503 response
// when refused.
func (r *rig) dial(t *testing.T, path, client string) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.front.URL, "http")+path, &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Test-Client": {client}},
	})
	if err != nil {
		return nil, resp
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != msg {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gaugeValue(t *testing.T, site string) float64 {
	t.Helper()
	var m dto.Metric
	if err := openGauge.WithLabelValues(site).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.Gauge.GetValue()
}

func TestCapsWithRealWebSocketsThroughReverseProxy(t *testing.T) {
	gauge0 := gaugeValue(t, "test.example")
	// Site: 3 sockets. Route a: 2 sockets, 1 per client. Route b: no own caps.
	r := newRig(t, 3, [2]int{2, 1}, [2]int{0, 0}, 0)
	steps := []struct {
		name       string
		path       string
		client     string
		wantReason string
	}{
		{"first socket of client 1 on route a", "/a", "198.51.100.1", ""},
		{"second socket of client 1 on route a is over the per-client cap", "/a", "198.51.100.1", ReasonPerClient},
		{"client 2 on route a", "/a", "198.51.100.2", ""},
		{"client 3 on route a is over the route cap", "/a", "198.51.100.3", ReasonRoute},
		{"client 3 on route b", "/b", "198.51.100.3", ""},
		{"client 4 on route b is over the site cap", "/b", "198.51.100.4", ReasonSite},
	}
	var open []*websocket.Conn
	for _, st := range steps {
		before := r.upgrades.Load()
		c, resp := r.dial(t, st.path, st.client)
		if st.wantReason == "" {
			if c == nil {
				t.Fatalf("%s: refused (%v)", st.name, resp)
			}
			echo(t, c, st.name)
			open = append(open, c)
			continue
		}
		if c != nil {
			t.Fatalf("%s: admitted, want refusal %s", st.name, st.wantReason)
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s: response %v, want 503", st.name, resp)
		}
		if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "503 Service Unavailable") {
			t.Fatalf("%s: body %q, want the generic refusal", st.name, body)
		}
		if got := r.upgrades.Load(); got != before {
			t.Fatalf("%s: the refused upgrade reached the upstream", st.name)
		}
	}
	if got := r.upgrades.Load(); got != 3 {
		t.Fatalf("upstream saw %d upgrades, want the 3 admitted", got)
	}
	if r.site.Open() != 3 || r.a.Open() != 2 || r.b.Open() != 1 {
		t.Fatalf("open: site %d, a %d, b %d; want 3, 2, 1", r.site.Open(), r.a.Open(), r.b.Open())
	}
	if got := gaugeValue(t, "test.example") - gauge0; got != 3 {
		t.Fatalf("rampart_websockets_open{site=test.example} = +%v, want +3", got)
	}

	// Closing from the client side, and from the upstream side, both free the slots.
	_ = open[0].Close(websocket.StatusNormalClosure, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = open[1].Write(ctx, websocket.MessageText, []byte("close")) // upstream closes
	_, _, _ = open[1].Read(ctx)
	open[2].CloseNow() // abrupt close
	waitFor(t, "counters back to zero", func() bool {
		return r.site.Open() == 0 && r.a.Open() == 0 && r.b.Open() == 0
	})
	if len(r.a.clients) != 0 || len(r.b.clients) != 0 {
		t.Fatalf("per-client entries left: %v %v", r.a.clients, r.b.clients)
	}
	if got := gaugeValue(t, "test.example") - gauge0; got != 0 {
		t.Fatalf("rampart_websockets_open{site=test.example} = +%v after all closed, want +0", got)
	}

	// The freed slots are usable again.
	c, _ := r.dial(t, "/a", "198.51.100.1")
	if c == nil {
		t.Fatal("refused after every socket closed")
	}
	echo(t, c, "again")
}

func TestSlotIsHeldWhileTheTunnelIsOpen(t *testing.T) {
	r := newRig(t, 0, [2]int{1, 0}, [2]int{0, 0}, 0)
	c, _ := r.dial(t, "/a", "198.51.100.1")
	if c == nil {
		t.Fatal("refused")
	}
	for i := range 5 {
		time.Sleep(20 * time.Millisecond)
		echo(t, c, "still here")
		if r.a.Open() != 1 {
			t.Fatalf("round %d: route Open() = %d while the socket is open, want 1", i, r.a.Open())
		}
	}
	if c2, resp := r.dial(t, "/a", "198.51.100.2"); c2 != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatal("second socket admitted while the first holds the only slot")
	}
	c.CloseNow()
	waitFor(t, "release", func() bool { return r.a.Open() == 0 })
}

func TestPlainRequestsAreNotCounted(t *testing.T) {
	r := newRig(t, 1, [2]int{1, 1}, [2]int{0, 0}, 0)
	c, _ := r.dial(t, "/a", "198.51.100.1")
	if c == nil {
		t.Fatal("refused")
	}
	// The site is full, yet an ordinary request goes through to the upstream
	// (which answers it with its own 426, not a 503 from the cap).
	resp, err := http.Get(r.front.URL + "/a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		t.Fatal("a plain request was refused by the WebSocket cap")
	}
}

func TestIdleWebSocketIsClosed(t *testing.T) {
	const idle = 300 * time.Millisecond
	r := newRig(t, 0, [2]int{0, 0}, [2]int{0, 0}, idle)
	quiet, _ := r.dial(t, "/a", "198.51.100.1")
	busy, _ := r.dial(t, "/a", "198.51.100.2")
	if quiet == nil || busy == nil {
		t.Fatal("refused")
	}
	start := time.Now()
	for time.Since(start) < 3*idle {
		echo(t, busy, "tick")
		time.Sleep(idle / 5)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, _, err := quiet.Read(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle socket: read = %v, want the connection closed by the idle timeout", err)
	}
	echo(t, busy, "still open") // traffic kept the busy one alive
	waitFor(t, "release of the idle socket", func() bool { return r.a.Open() == 1 })
	busy.CloseNow()
	waitFor(t, "release of the busy socket", func() bool { return r.a.Open() == 0 })
}

func TestIdleTimeoutConn(t *testing.T) {
	const idle = 200 * time.Millisecond
	tests := []struct {
		name     string
		traffic  func(peer net.Conn, stop <-chan struct{}) // what the peer does meanwhile
		wait     time.Duration
		wantOpen bool
	}{
		{"silent connection times out", func(net.Conn, <-chan struct{}) {}, 2 * idle, false},
		{"incoming data keeps it open", func(peer net.Conn, stop <-chan struct{}) {
			for {
				select {
				case <-stop:
					return
				case <-time.After(idle / 4):
					_, _ = peer.Write([]byte("x"))
				}
			}
		}, 3 * idle, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			peer, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			raw, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			c := IdleTimeoutConn(raw, idle)
			defer c.Close()
			stop := make(chan struct{})
			defer close(stop)
			go tt.traffic(peer, stop)
			errc := make(chan error, 1)
			go func() {
				buf := make([]byte, 16)
				for {
					if _, err := c.Read(buf); err != nil {
						errc <- err
						return
					}
				}
			}()
			select {
			case err := <-errc:
				var ne net.Error
				if tt.wantOpen {
					t.Fatalf("closed after traffic: %v", err)
				}
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("read error %v, want a timeout", err)
				}
			case <-time.After(tt.wait):
				if !tt.wantOpen {
					t.Fatalf("still open after %v without traffic", tt.wait)
				}
			}
		})
	}
	if c := (net.Conn)(nil); IdleTimeoutConn(c, 0) != nil {
		t.Fatal("IdleTimeoutConn with idle 0 wrapped the connection")
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	route := NewSite(1000).Route(600, 4)
	client := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	for b.Loop() {
		release, _, _ := route.Acquire(client)
		release()
	}
}
