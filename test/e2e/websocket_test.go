package e2e

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WebSocket tunnels through the real server: TLS from the client, plain or
// TLS to the upstream, taken over from the proxy and parked in the poller
// while idle.

// proxyGoroutines counts the goroutines running rampart's own code (the
// test's clients and upstreams run none).
func proxyGoroutines() int {
	buf := make([]byte, 16<<20)
	n := runtime.Stack(buf, true)
	count := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "rampart/internal/") {
			count++
		}
	}
	return count
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func wsDial(t *testing.T, e *env, path string) *websocket.Conn {
	t.Helper()
	c := wsDialNoCleanup(t, e, path)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// wsDialNoCleanup leaves closing to the caller, and keeps no reference.
func wsDialNoCleanup(t *testing.T, e *env, path string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://app.test"+path, &websocket.DialOptions{HTTPClient: e.client()})
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", path, err, resp)
	}
	return c
}

func wsEcho(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != msg {
		t.Fatalf("echo of %d bytes %.40q = %d bytes %.40q, %v", len(msg), msg, len(got), got, err)
	}
}

func wsOpenGauge(e *env) string { return e.metric(`rampart_websockets_open{site="app.test"}`) }

func TestWebSocket_IdleTunnelsHoldNoGoroutinesAndGiveEverythingBack(t *testing.T) {
	// Many sockets from one client in a second: no rate limit on the site.
	e := start(t, strings.Replace(baseConfig, "  - host: app.test\n", "  - host: app.test\n    rate_limit: \"off\"\n", 1))
	// One tunnel first, so that whatever is started once per process (the
	// poller) is counted in the baseline.
	first := wsDialNoCleanup(t, e, "/ws")
	defer func() { first.CloseNow() }()
	wsEcho(t, first, "first")
	time.Sleep(time.Second) // its pumps park
	base := proxyGoroutines()
	fds := openFDs(t)
	live := liveHeap()

	const n = 60
	conns := make([]*websocket.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	for i := range conns {
		conns[i] = wsDialNoCleanup(t, e, "/ws")
		wsEcho(t, conns[i], fmt.Sprint("open ", i))
	}
	// Idle tunnels: no goroutine per tunnel once the pumps have parked.
	waitFor(t, "pumps to park", func() bool { return proxyGoroutines() <= base+2 })
	if got := openFDs(t) - fds; got < 3*n {
		t.Fatalf("%d descriptors more for %d tunnels, want at least 3 each (client, both legs, upstream)", got, n)
	}

	// After being idle, both legs wake up from the poller: the client's
	// message reaches the upstream and its echo comes back, many times.
	for round := range 3 {
		for i, c := range conns {
			wsEcho(t, c, fmt.Sprintf("round %d socket %d", round, i))
		}
	}
	// A message larger than one TLS record and the copy buffer (the
	// client's read limit is 32 KiB).
	big := strings.Repeat("0123456789abcdef", 1900)
	wsEcho(t, conns[0], big)
	waitFor(t, "pumps to park again", func() bool { return proxyGoroutines() <= base+2 })

	// Closing gives back the slots, the descriptors and the goroutines.
	for i, c := range conns {
		if i%2 == 0 {
			_ = c.Close(websocket.StatusNormalClosure, "")
		} else {
			c.CloseNow() // abrupt
		}
		conns[i] = nil // measured below: the test's own ends must go too
	}
	first.CloseNow()
	waitFor(t, "slots released", func() bool { return wsOpenGauge(e) == "0" })
	waitFor(t, "descriptors closed", func() bool {
		http.DefaultClient.CloseIdleConnections() // the metrics requests' keepalive connection
		return openFDs(t) <= fds-3
	})
	waitFor(t, "goroutines", func() bool { return proxyGoroutines() <= base })
	// Nothing of the tunnels stays reachable: each holds more than 10 KiB
	// of TLS state and records on the proxy's side alone, and the clients'
	// and the upstream's ends are gone too. What may stay is bounded by the
	// peak, not by the tunnels: the runtime keeps the records of every
	// goroutine it ever ran (about 450 bytes each), maps keep their size.
	if grew := int64(liveHeap()) - int64(live); grew > n*5<<10 {
		t.Fatalf("live heap grew by %d bytes after %d tunnels closed", grew, n)
	} else {
		t.Logf("live heap after close: %+d bytes", grew)
	}
}

// liveHeap is the heap reachable after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestWebSocket_IdleTimeoutClosesParkedTunnel(t *testing.T) {
	cfg := strings.Replace(baseConfig, "websocket: true", "websocket: true\n        websocket_idle_timeout: 600ms", 1)
	e := start(t, cfg)
	quiet := wsDial(t, e, "/ws")
	busy := wsDial(t, e, "/ws")
	wsEcho(t, quiet, "hello")
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond {
		wsEcho(t, busy, "tick") // traffic keeps this one open
		time.Sleep(150 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, _, err := quiet.Read(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("idle socket: read = %v, want it closed by the idle timeout", err)
	}
	wsEcho(t, busy, "still open")
	waitFor(t, "one slot left", func() bool { return wsOpenGauge(e) == "1" })
}

func TestWebSocket_ShutdownClosesTunnels(t *testing.T) {
	e := start(t, baseConfig)
	c := wsDial(t, e, "/ws")
	wsEcho(t, c, "before drain")
	time.Sleep(time.Second) // parked
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer rcancel()
	if _, _, err := c.Read(rctx); err == nil || rctx.Err() != nil {
		t.Fatalf("read after drain = %v, want the tunnel closed", err)
	}
	waitFor(t, "upstream side closed", func() bool { return e.up.wsOpen.Load() == 0 })
}

func TestWebSocket_TLSUpstream(t *testing.T) {
	var open atomic.Int64
	up := httptest.NewTLSServer(echoWebSocket(&open))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "upstream-ca.pem")
	must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o644))
	cfg := strings.Replace(baseConfig, `      targets: ["{{UP}}"]
      response_header_timeout: 300ms`, `      targets: ["`+up.URL+`"]
      tls: {ca: "`+ca+`", server_name: example.com}`, 1)
	e := start(t, cfg)
	conns := []*websocket.Conn{wsDial(t, e, "/ws"), wsDial(t, e, "/ws")}
	for i, c := range conns {
		wsEcho(t, c, fmt.Sprint("hello ", i))
	}
	time.Sleep(time.Second) // both legs parked, the upstream one on TLS records
	for i, c := range conns {
		wsEcho(t, c, fmt.Sprint("after idle ", i))
		wsEcho(t, c, strings.Repeat("x", 30_000))
	}
	for _, c := range conns {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	waitFor(t, "upstream sockets closed", func() bool { return open.Load() == 0 })
	waitFor(t, "slots released", func() bool { return wsOpenGauge(e) == "0" })
}
