package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// abuseConfig: a tight login class on one route, small WebSocket caps and
// a per-client connection cap.
const abuseConfig = `
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0"}
log: {access: off, security: "{{DIR}}/security.log"}
tls: {cert: "{{DIR}}/site.pem", key: "{{DIR}}/site-key.pem"}
limits:
  connections_per_client: 8
  handshakes_per_client: 1000/s
  read_header_timeout: 3s
rate_limits:
  login: {rate: 1/s, burst: 3}
sites:
  - host: app.test
    upstream: {targets: ["{{UP}}"]}
    max_websockets: 3
    waf: {mode: "off"}
    routes:
      - prefix: /api/
        methods: [GET, POST]
      - exact: /api/login
        methods: [POST]
        rate_limit: login
      - exact: /ws
        websocket: true
        max_websockets: 2
        max_websockets_per_client: 2
`

func TestRateLimit_LoginRouteClassRefusesWith429AndRetryAfter(t *testing.T) {
	e := start(t, abuseConfig)
	c := e.client()
	var codes []int
	var retry string
	for i := 0; i < 5; i++ {
		resp, err := c.Post("https://app.test/api/login", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" {
		t.Fatalf("codes %v", codes)
	}
	if retry == "" || retry == "0" {
		t.Fatalf("Retry-After %q", retry)
	}
	if e.up.hits.Load() != 3 {
		t.Fatalf("upstream saw %d requests", e.up.hits.Load())
	}
	// Other routes of the site use the default class and still pass.
	resp := e.get("/api/x")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("default class: %d", resp.StatusCode)
	}
}

// The per-client cap applies at accept: the extra connection is closed
// before any TLS handshake.
func TestConnectionCap_RefusesBeforeHandshake(t *testing.T) {
	e := start(t, abuseConfig)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 8; i++ {
		c, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := raw.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("the ninth connection was not closed at once: n=%d err=%v", n, err)
	}
	// Closing one frees a slot.
	held[0].Close()
	held = held[1:]
	waitFor(t, "a free slot", func() bool {
		c, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
		if err != nil {
			return false
		}
		held = append(held, c)
		return true
	})
}

// Connections that complete the TLS handshake and then send nothing (or
// half a head) are closed at read_header_timeout, so that a client cannot
// hold its connection slots, or a crowd of clients the server's, for good.
func TestSilentConnectionsAfterTheHandshakeAreClosedAtTheHeaderTimeout(t *testing.T) {
	e := start(t, abuseConfig) // read_header_timeout: 3s, connections_per_client: 8
	var conns []*tls.Conn
	for i := 0; i < 8; i++ {
		c, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		if i%2 == 1 {
			_, _ = io.WriteString(c, "GET /api/x HTTP/1.1\r\nHost: app.test\r\n")
		}
		conns = append(conns, c)
	}
	start := time.Now()
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(6 * time.Second))
		b, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d still open after %v", i, time.Since(start))
		}
		if i%2 == 1 && len(b) > 0 && !strings.Contains(string(b), "408") {
			t.Errorf("connection %d answered %q", i, b)
		}
	}
	if d := time.Since(start); d < 2*time.Second || d > 5*time.Second {
		t.Errorf("closed after %v, want about read_header_timeout (3 s)", d)
	}
	// The slots are free again.
	c, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestWebSocketCaps_RefuseOverCapAndCountersReturnToZero(t *testing.T) {
	e := start(t, abuseConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dial := func() (*websocket.Conn, int) {
		c, resp, err := websocket.Dial(ctx, "wss://app.test/ws", &websocket.DialOptions{HTTPClient: e.client()})
		if err != nil {
			if resp != nil {
				return nil, resp.StatusCode
			}
			t.Fatal(err)
		}
		return c, 101
	}
	a, _ := dial()
	b, _ := dial()
	before := e.up.hits.Load()
	if _, st := dial(); st != http.StatusServiceUnavailable {
		t.Fatalf("third socket: %d, want 503", st)
	}
	if e.up.hits.Load() != before {
		t.Fatal("refused upgrade reached the upstream")
	}
	a.Close(websocket.StatusNormalClosure, "")
	b.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "counters back to zero", func() bool {
		m := e.metrics()
		return strings.Contains(m, `rampart_websockets_open{site="app.test"} 0`)
	})
	c, st := dial()
	if st != 101 {
		t.Fatalf("after close: %d", st)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// 1,000 slowloris connections (headers one byte at a time, from 20
// addresses) and a 10x over-limit flood from one address leave a normal
// client's success rate at 100%.
func TestSlowlorisAndFlood_NormalClientStillServed(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	e := start(t, strings.Replace(abuseConfig, "connections_per_client: 8", "connections_per_client: 64", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var opened atomic.Int64
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(10+i%20))}, Timeout: 2 * time.Second}
			raw, err := d.DialContext(ctx, "tcp", e.addr)
			if err != nil {
				return
			}
			defer raw.Close()
			c := tls.Client(raw, e.tlsConf("app.test"))
			if c.HandshakeContext(ctx) != nil {
				return
			}
			opened.Add(1)
			for _, b := range []byte("GET /api/x HTTP/1.1\r\nHost: app.test\r\nX-Slow: ") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}(i)
	}
	// The flood: one address at 10x the login class.
	flood := e.clientFrom("127.0.0.3")
	floodCodes := map[int]int{}
	var fmu sync.Mutex
	var fwg sync.WaitGroup
	for w := 0; w < 4; w++ {
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			for i := 0; i < 15; i++ {
				resp, err := flood.Post("https://app.test/api/login", "text/plain", strings.NewReader("x"))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					fmu.Lock()
					floodCodes[resp.StatusCode]++
					fmu.Unlock()
				}
			}
		}()
	}
	time.Sleep(time.Second) // let the slowloris connections pile up
	normal := e.client()
	ok := 0
	var failures []string
	for i := 0; i < 20; i++ {
		resp, err := normal.Get("https://app.test/api/normal")
		if err != nil {
			failures = append(failures, err.Error())
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok++
			} else {
				failures = append(failures, resp.Status)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	fwg.Wait()
	cancel()
	wg.Wait()
	t.Logf("slowloris connections open: %d; flood answers: %v", opened.Load(), floodCodes)
	if ok != 20 {
		t.Fatalf("normal client served %d/20: %q", ok, failures)
	}
	if floodCodes[429] == 0 {
		t.Fatalf("flood never limited: %v", floodCodes)
	}
	if opened.Load() < 500 {
		t.Fatalf("only %d slowloris connections got through the handshake; the test did not load the server", opened.Load())
	}
}

// The admin listener is bounded like the public one: an idle keepalive
// connection is closed at idle_timeout, a request whose body never comes
// at read_header_timeout + body_read_timeout.
func TestAdminListenerConnectionsAreBounded(t *testing.T) {
	cfg := strings.Replace(abuseConfig, "  read_header_timeout: 3s\n", "  read_header_timeout: 500ms\n  idle_timeout: 700ms\n  body_read_timeout: 500ms\n", 1)
	e := start(t, cfg)
	admin := e.srv.AdminAddr().String()
	for name, send := range map[string]string{
		"idle after a request": "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n",
		"body never sent":      "POST /bans HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", admin)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			if _, err := io.WriteString(c, send); err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("admin connection still open after %v", time.Since(start))
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Errorf("closed after %v, want about 1 s", d)
			}
		})
	}
}

// A slow POST (R.U.D.Y.): 10 clients each send a 20,000-byte body 10 bytes
// at a time, every pause well inside body_read_timeout. body_min_rate
// closes every one of them shortly after the first body_read_timeout of
// waiting, with the WAF holding the body and with the body streamed to the
// upstream: each gets at most a 408 before the close, none of the bodies
// reaches the upstream whole, each is logged as protocol/body-too-slow and
// counted, and a normal POST on the same server goes through.
func TestSlowPOST_BelowBodyMinRateIsClosedAndLogged(t *testing.T) {
	for _, mode := range []string{"block", "off"} {
		t.Run("waf "+mode, func(t *testing.T) { slowPOST(t, mode) })
	}
}

func slowPOST(t *testing.T, wafMode string) {
	cfg := strings.Replace(abuseConfig, "  read_header_timeout: 3s\n", "  read_header_timeout: 3s\n  body_read_timeout: 400ms\n  body_min_rate: 1KiB\n", 1)
	cfg = strings.Replace(cfg, "connections_per_client: 8", "connections_per_client: 32", 1)
	cfg = strings.Replace(cfg, `waf: {mode: "off"}`, `waf: {mode: `+wafMode+`}`, 1)
	e := start(t, cfg)
	const clients = 10
	var wg sync.WaitGroup
	type result struct {
		after  time.Duration
		answer string
	}
	results := make(chan result, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(8 * time.Second))
			start := time.Now()
			if _, err := io.WriteString(c, "POST /api/upload HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n"); err != nil {
				t.Error(err)
				return
			}
			stop := make(chan struct{})
			go func() {
				for sent := 0; sent < 20000; sent += 10 {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := io.WriteString(c, strings.Repeat("a", 10)); err != nil {
						return
					}
				}
			}()
			b, err := io.ReadAll(c)
			close(stop)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("connection still open after %v", time.Since(start))
				return
			}
			results <- result{time.Since(start), string(b)}
		}()
	}
	wg.Wait()
	close(results)
	var slowest time.Duration
	n, answered := 0, 0
	for r := range results {
		n++
		slowest = max(slowest, r.after)
		if r.answer != "" {
			answered++
			if !strings.HasPrefix(r.answer, "HTTP/1.1 408 ") {
				t.Errorf("answer %.60q, want a 408 or none", r.answer)
			}
		}
	}
	if answered == 0 {
		t.Errorf("no client got a 408 before the close")
	}
	// 400 ms free, then 100 B/s pays for 0.1 s per second waited: about
	// 450 ms; 3 s leaves room for a loaded machine, far below the 200 s
	// the body would take.
	if n != clients || slowest > 3*time.Second {
		t.Fatalf("%d of %d slow POSTs closed, slowest after %v; want all within 3s", n, clients, slowest)
	}
	waitFor(t, "body-too-slow events", func() bool {
		return strings.Count(e.securityLog(), `"reason":"body-too-slow"`) == clients
	})
	if got := e.metric(`rampart_refusals_total{reason="body-too-slow",stage="protocol"}`); got == "" {
		t.Errorf("no body-too-slow refusals counted")
	}
	if strings.Contains(e.securityLog(), `"upstream-timeout"`) || strings.Contains(e.securityLog(), `"upstream-error"`) {
		t.Errorf("a client's slow body was logged as an upstream failure:\n%s", e.securityLog())
	}
	for _, r := range e.up.reqs {
		if r.BodyLen == 20000 {
			t.Errorf("a slow body reached the upstream whole")
		}
	}
	for _, l := range strings.Split(e.metrics(), "\n") {
		if strings.HasPrefix(l, "rampart_upstream_requests_total") && strings.Contains(l, `outcome="error"`) && !strings.HasSuffix(l, " 0") {
			t.Errorf("a client's slow body was counted as an upstream error: %s", l)
		}
	}
	body := `{"note":"` + strings.Repeat("b", 20000-11) + `"}`
	resp, err := e.client().Post("https://app.test/api/upload", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || e.up.last().BodyLen != 20000 {
		t.Errorf("normal POST: %d, upstream body %d bytes; want 200 and 20000", resp.StatusCode, e.up.last().BodyLen)
	}
}

// The bodies the WAF holds for inspection are bounded together
// (limits.body_buffer_total): while one client holds 600 KiB of a body it
// has not finished, another 600 KiB body does not fit in 1 MiB and gets a
// 503 with Retry-After; the first, once finished, goes through.
func TestBodyBufferTotal_BoundsTheBodiesHeldTogether(t *testing.T) {
	cfg := strings.Replace(abuseConfig, "  read_header_timeout: 3s\n", "  read_header_timeout: 3s\n  body_buffer_total: 1MiB\n", 1)
	cfg = strings.Replace(cfg, `waf: {mode: "off"}`, `waf: {mode: block}`, 1)
	e := start(t, cfg)
	body := `{"note":"` + strings.Repeat("a", 600<<10-11) + `"}`
	c, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(8 * time.Second))
	head := fmt.Sprintf("POST /api/upload HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	if _, err := io.WriteString(c, head+body[:len(body)-10]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first body held", func() bool {
		v, _ := strconv.ParseFloat(e.metric("rampart_waf_body_bytes_buffered"), 64)
		return v >= 500<<10
	})
	resp, err := e.client().Post("https://app.test/api/upload", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second body: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if _, err := io.WriteString(c, body[len(body)-10:]); err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK || e.up.last().BodyLen != len(body) {
		t.Errorf("first body: %d, upstream got %d bytes; want 200 and all %d", r.StatusCode, e.up.last().BodyLen, len(body))
	}
	if !strings.Contains(e.securityLog(), `"reason":"buffer-budget"`) {
		t.Errorf("no waf/buffer-budget event")
	}
}
