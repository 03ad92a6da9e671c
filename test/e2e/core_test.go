package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pires/go-proxyproto"

	"github.com/rampart-proxy/rampart/internal/egress"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
)

func TestTLS_PolicyOnTheWire(t *testing.T) {
	e := start(t, baseConfig)
	dial := func(c *tls.Config) (*tls.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", e.addr, c)
	}
	for _, tc := range []struct {
		name     string
		min, max uint16
		suites   []uint16
		ok       bool
	}{
		{"TLS10Refused", tls.VersionTLS10, tls.VersionTLS10, nil, false},
		{"TLS11Refused", tls.VersionTLS11, tls.VersionTLS11, nil, false},
		{"TLS12WithCBCRefused", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, false},
		{"TLS12WithRSAKeyExchangeRefused", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, false},
		{"TLS12ECDHEGCMAccepted", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"TLS13Accepted", tls.VersionTLS13, tls.VersionTLS13, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.tlsConf("app.test")
			c.MinVersion, c.MaxVersion, c.CipherSuites = tc.min, tc.max, tc.suites
			conn, err := dial(c)
			if (err == nil) != tc.ok {
				t.Fatalf("handshake err=%v, want ok=%v", err, tc.ok)
			}
			if conn != nil {
				conn.Close()
			}
		})
	}
	t.Run("ALPNOffersHTTP11Only", func(t *testing.T) {
		c := e.tlsConf("app.test")
		c.NextProtos = []string{"h2", "http/1.1"}
		conn, err := dial(c)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("negotiated %q", p)
		}
	})
	t.Run("H2OnlyClientGetsNoH2", func(t *testing.T) {
		c := e.tlsConf("app.test")
		c.NextProtos = []string{"h2"}
		conn, err := dial(c)
		if err != nil {
			return // refusing the handshake is also "nothing"
		}
		defer conn.Close()
		if p := conn.ConnectionState().NegotiatedProtocol; p == "h2" {
			t.Fatal("h2 negotiated")
		}
	})
	t.Run("SessionTicketsOffByDefault", func(t *testing.T) {
		c := e.tlsConf("app.test")
		c.MaxVersion = tls.VersionTLS12
		c.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		for i := 0; i < 2; i++ {
			conn, err := dial(c)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.Handshake()
			resumed := conn.ConnectionState().DidResume
			conn.Close()
			if resumed {
				t.Fatal("session resumed with a ticket")
			}
		}
	})
}

func TestTLS_Only12RefusesTLS13(t *testing.T) {
	e := start(t, strings.Replace(baseConfig, "tls:\n", "tls:\n  versions: [\"1.2\"]\n", 1))
	c := e.tlsConf("app.test")
	c.MinVersion = tls.VersionTLS13
	if conn, err := tls.Dial("tcp", e.addr, c); err == nil {
		conn.Close()
		t.Fatal("TLS 1.3 accepted with versions [1.2]")
	}
	c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS13
	conn, err := tls.Dial("tcp", e.addr, c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if v := conn.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Fatalf("version %x", v)
	}
}

func TestProxy_UpstreamSeesCanonicalPathAndRampartsForwardingHeaders(t *testing.T) {
	e := start(t, baseConfig)
	req, _ := http.NewRequest("GET", "https://app.test/api//%41bc%7e", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Real-IP", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("X-Request-ID", "forged")
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "hop-by-hop")
	resp, err := e.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := e.up.last()
	checks := map[string][2]string{
		"path":              {got.URI, "/api/Abc~"},
		"host":              {got.Host, "app.test"},
		"X-Forwarded-For":   {got.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		"X-Real-IP":         {got.Header.Get("X-Real-IP"), "127.0.0.1"},
		"X-Forwarded-Proto": {got.Header.Get("X-Forwarded-Proto"), "https"},
		"X-Forwarded-Host":  {got.Header.Get("X-Forwarded-Host"), "app.test"},
		"Forwarded":         {got.Header.Get("Forwarded"), ""},
		"X-Secret":          {got.Header.Get("X-Secret"), ""},
		"X-Request-ID":      {got.Header.Get("X-Request-ID"), resp.Header.Get("X-Request-ID")},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: upstream got %q, want %q", name, c[0], c[1])
		}
	}
	if got.Header.Get("X-Forwarded-Port") == "" {
		t.Error("X-Forwarded-Port missing")
	}
	if len(resp.Header.Get("X-Request-ID")) != 32 {
		t.Errorf("request id %q", resp.Header.Get("X-Request-ID"))
	}
	for _, h := range []string{"Server", "X-Powered-By"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("banner %s: %q reached the client", h, v)
		}
	}
	for h, want := range map[string]string{
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "SAMEORIGIN",
		"Referrer-Policy":           "strict-origin-when-cross-origin",
	} {
		if v := resp.Header.Get(h); v != want {
			t.Errorf("%s = %q, want %q", h, v, want)
		}
	}
}

func TestProxy_RedirectIsPassedOnNotFollowed(t *testing.T) {
	e := start(t, baseConfig)
	resp := e.get("/api/redirect")
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "169.254.169.254") {
		t.Fatalf("status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if e.up.hits.Load() != 1 {
		t.Fatalf("upstream hits %d", e.up.hits.Load())
	}
}

func TestProxy_StreamedPartsReachTheClientWhenTheUpstreamFlushes(t *testing.T) {
	e := start(t, baseConfig)
	resp := e.get("/api/stream")
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if first, err := br.ReadString('\n'); err != nil || first != "first\n" {
		t.Fatalf("first part %q, %v", first, err)
	}
	e.up.streamAck <- struct{}{}
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Fatalf("rest %q: the flushed part was held back until the upstream gave up waiting", rest)
	}
}

// The upstream sends 103 Early Hints and its final answer only once the
// client has the 103; if rampart held the 103 back, the upstream would wait
// past the route's response_header_timeout (300 ms) and the answer would be
// a 504.
func TestProxy_EarlyHintsReachTheClientBeforeTheFinalAnswer(t *testing.T) {
	e := start(t, baseConfig)
	c, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /api/hints HTTP/1.1\r\nHost: app.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 103 Early Hints\r\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	for line != "\r\n" { // the rest of the 103
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	e.up.streamAck <- struct{}{}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "final" {
		t.Fatalf("final answer %d %q: the 103 was held back until the upstream timed out", resp.StatusCode, body)
	}
}

func TestProxy_SlowUpstreamGets504WithGenericBody(t *testing.T) {
	e := start(t, baseConfig)
	resp := e.get("/slow")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !strings.Contains(string(body), resp.Header.Get("X-Request-ID")) || strings.Contains(string(body), "127.0.0.1") {
		t.Fatalf("body %q", body)
	}
}

// An upstream that stops in the middle of a body is given read_timeout,
// then the client's answer is cut off (the connection closes; what was
// not yet sent of the answer is dropped) and the security log says so —
// on both upstream paths (a GET goes out directly, a POST with a body
// through http.Transport).
func TestProxy_UpstreamPausingInABodyIsCutOffAtReadTimeout(t *testing.T) {
	cfg := strings.Replace(baseConfig, "      response_header_timeout: 300ms", "      response_header_timeout: 300ms\n      read_timeout: 400ms", 1)
	e := start(t, cfg)
	c := e.client()
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader("x=1")
			}
			req, _ := http.NewRequest(method, "https://app.test/api/stall", body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			start := time.Now()
			resp, err := c.Do(req)
			if err == nil {
				var got []byte
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Fatalf("answered %d %q in full; want a cut", resp.StatusCode, got)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("cut after %v, want about read_timeout (400ms)", d)
			}
		})
	}
	waitFor(t, "the cut in the security log", func() bool {
		return strings.Count(e.securityLog(), "response-cut-short") >= 2
	})
}

func TestProxy_DeadTargetIsSkippedAndRequestsSucceed(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	cfg := strings.Replace(baseConfig, `targets: ["{{UP}}"]
      response_header_timeout`, `targets: ["http://`+deadAddr+`", "{{UP}}"]
      response_header_timeout`, 1)
	e := start(t, cfg)
	for i := 0; i < 6; i++ {
		resp := e.get("/api/x")
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if e.up.hits.Load() != 6 {
		t.Fatalf("live target served %d of 6", e.up.hits.Load())
	}
}

func TestProxy_AllTargetsDownGives502(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	e := start(t, strings.Replace(baseConfig, `targets: ["{{UP}}"]
      response_header_timeout`, `targets: ["http://`+deadAddr+`"]
      response_header_timeout`, 1))
	resp := e.get("/api/x")
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// The only dialer refuses every destination that is not a configured target,
// even on loopback and even with a listener there.
func TestEgress_RefusesUnlistedDestinations(t *testing.T) {
	allowed, _ := net.Listen("tcp", "127.0.0.1:0")
	defer allowed.Close()
	other, _ := net.Listen("tcp", "127.0.0.1:0")
	defer other.Close()
	d, err := egress.New(context.Background(), []string{allowed.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.DialContext(context.Background(), "tcp", allowed.Addr().String())
	if err != nil {
		t.Fatalf("allowed target refused: %v", err)
	}
	c.Close()
	for _, dst := range []string{other.Addr().String(), "127.0.0.2:" + strings.Split(allowed.Addr().String(), ":")[1], "localhost:22"} {
		if c, err := d.DialContext(context.Background(), "tcp", dst); err == nil {
			c.Close()
			t.Fatalf("dialled %s", dst)
		}
	}
}

func TestWebSocket_ProxiesBothWaysAndSurvivesReload(t *testing.T) {
	e := start(t, baseConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://app.test/ws", &websocket.DialOptions{HTTPClient: e.client()})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer c.CloseNow()
	echo := func(typ websocket.MessageType, msg string) {
		t.Helper()
		if err := c.Write(ctx, typ, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		gt, got, err := c.Read(ctx)
		if err != nil || gt != typ || string(got) != msg {
			t.Fatalf("echo: %v %v %q", err, gt, got)
		}
	}
	echo(websocket.MessageText, "hello")
	echo(websocket.MessageBinary, "\x00\x01\x02")
	if err := e.srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	echo(websocket.MessageText, "after reload")
	c.CloseRead(ctx) // a reader must run for the pong to arrive
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestReload_BrokenConfigKeepsRunningOne(t *testing.T) {
	e := start(t, baseConfig)
	good, _ := os.ReadFile(e.cfgFile)
	must(t, os.WriteFile(e.cfgFile, []byte("sites:\n  - host: app.test\n    rotes: []\n"), 0o644))
	err := e.srv.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "rampart.yaml:3") {
		t.Fatalf("reload error %v, want file:line", err)
	}
	resp := e.get("/api/x")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d after failed reload", resp.StatusCode)
	}
	// A good new config takes effect: /newroute becomes reachable.
	must(t, os.WriteFile(e.cfgFile, []byte(strings.Replace(string(good), "      - exact: /\n", "      - exact: /\n      - exact: /newroute\n", 1)), 0o644))
	if err := e.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp = e.get("/newroute")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("new route: status %d", resp.StatusCode)
	}
	waitFor(t, "reload failure logged", func() bool { return strings.Contains(e.securityLog(), "reload failed") })
}

func TestReload_SwapsCertificates(t *testing.T) {
	e := start(t, baseConfig)
	serial := func() string {
		conn, err := tls.Dial("tcp", e.addr, &tls.Config{ServerName: "app.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	ca, _ := selfsigned.NewCA("second CA")
	cert, key, _ := ca.Leaf("app.test", "other.test")
	must(t, os.WriteFile(filepath.Join(e.dir, "site.pem"), cert, 0o644))
	must(t, os.WriteFile(filepath.Join(e.dir, "site-key.pem"), key, 0o600))
	if err := e.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := serial(); after == before {
		t.Fatal("certificate not reloaded")
	}
}

func TestShutdown_DrainsInFlightRequests(t *testing.T) {
	e := start(t, strings.Replace(baseConfig, "response_header_timeout: 300ms", "response_header_timeout: 5s", 1))
	done := make(chan int, 1)
	go func() {
		resp, err := e.client().Get("https://app.test/slow")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	time.Sleep(150 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if st := <-done; st != 200 {
		t.Fatalf("in-flight request got %d", st)
	}
	if _, err := net.DialTimeout("tcp", e.addr, 200*time.Millisecond); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestAdmin_HealthAndMetrics(t *testing.T) {
	e := start(t, baseConfig)
	resp := e.get("/nothing")
	resp.Body.Close()
	base := "http://" + e.srv.AdminAddr().String()
	r, err := http.Get(base + "/healthz")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, r)
	}
	r.Body.Close()
	r, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{
		`rampart_config_info{sha256="` + e.srv.Config().SHA256 + `"} 1`,
		`rampart_refusals_total{reason="no-route",stage="route"}`,
		`rampart_tls_handshakes_total{result="ok",version="1.3"}`,
		`rampart_request_duration_seconds_bucket`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// client_auth: require refuses a handshake without a client certificate
// signed by client_ca, and accepts one with it.
func TestTLS_ClientCertificatesRequired(t *testing.T) {
	e := start(t, strings.Replace(baseConfig, "tls:\n", "tls:\n  client_ca: \"{{DIR}}/ca.pem\"\n  client_auth: require\n", 1))
	c := e.tlsConf("app.test")
	if conn, err := tls.Dial("tcp", e.addr, c); err == nil {
		// TLS 1.3 reports the refusal on the first read.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("served a client without a certificate")
		}
		conn.Close()
	}
	cert, key, err := e.ca.Leaf("agent-1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	c.Certificates = []tls.Certificate{pair}
	conn, err := tls.Dial("tcp", e.addr, c)
	if err != nil {
		t.Fatalf("client with a certificate refused: %v", err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET /api/x HTTP/1.1\r\nHost: app.test\r\n\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 12)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("got %q %v", buf, err)
	}
}

// Behind a trusted load balancer the client is the address it reports;
// anyone else's forwarding headers are ignored.
func TestClientIdentity_TrustedProxyOnly(t *testing.T) {
	e := start(t, strings.Replace(baseConfig, "sites:\n", "trusted_proxies: [127.0.0.1/32]\nclient_ip: {header: X-Forwarded-For}\nsites:\n", 1))
	for _, tc := range []struct{ from, want string }{
		{"127.0.0.1", "203.0.113.7"}, // the load balancer
		{"127.0.0.2", "127.0.0.2"},   // anyone else
	} {
		req, _ := http.NewRequest("GET", "https://app.test/api/x", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.7")
		resp, err := e.clientFrom(tc.from).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := e.up.last().Header.Get("X-Forwarded-For"); got != tc.want {
			t.Errorf("from %s: upstream saw X-Forwarded-For %q, want %q", tc.from, got, tc.want)
		}
	}
}

// With proxy_protocol, the client is the address in the PROXY header sent
// by a trusted load balancer; a connection without the header is refused.
func TestClientIdentity_ProxyProtocolThroughTheServer(t *testing.T) {
	e := start(t, strings.Replace(baseConfig, "sites:\n", "trusted_proxies: [127.0.0.1/32]\nclient_ip: {proxy_protocol: true}\nsites:\n", 1))
	dial := func(header bool) (*tls.Conn, error) {
		raw, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			return nil, err
		}
		if header {
			h := &proxyproto.Header{Version: 1, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
				SourceAddr: &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 40000}, DestinationAddr: raw.RemoteAddr()}
			if _, err := h.WriteTo(raw); err != nil {
				return nil, err
			}
		}
		c := tls.Client(raw, e.tlsConf("app.test"))
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		return c, c.Handshake()
	}
	c, err := dial(true)
	if err != nil {
		t.Fatalf("with PROXY header: %v", err)
	}
	_, _ = c.Write([]byte("GET /api/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"))
	_, _ = io.Copy(io.Discard, c)
	c.Close()
	if got := e.up.last().Header.Get("X-Forwarded-For"); got != "203.0.113.9" {
		t.Fatalf("upstream saw X-Forwarded-For %q", got)
	}
	if c, err := dial(false); err == nil {
		c.Close()
		t.Fatal("a trusted peer without a PROXY header was served")
	}

	// Turning the PROXY protocol off takes a restart: the reload is
	// refused, naming the key, and the running config stays.
	cfg, _ := os.ReadFile(e.cfgFile)
	must(t, os.WriteFile(e.cfgFile, []byte(strings.Replace(string(cfg), "client_ip: {proxy_protocol: true}\n", "", 1)), 0o644))
	if err := e.srv.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "client_ip.proxy_protocol") {
		t.Fatalf("reload that switches the PROXY protocol off: %v, want a refusal naming client_ip.proxy_protocol", err)
	}
	if c, err := dial(true); err != nil {
		t.Fatalf("after the refused reload, with PROXY header: %v", err)
	} else {
		c.Close()
	}
	// Taking the proxy out of trusted_proxies applies at once: its next
	// connection is refused, PROXY header or not.
	must(t, os.WriteFile(e.cfgFile, []byte(strings.Replace(string(cfg), "trusted_proxies: [127.0.0.1/32]", "trusted_proxies: [10.9.9.9/32]", 1)), 0o644))
	if err := e.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := dial(true); err == nil {
		c.Close()
		t.Fatal("a proxy removed from trusted_proxies by a reload still named its client")
	}
}

// A reload applies what it can and says which changed keys wait for a
// restart (here the access log's destination and the listen address).
func TestReload_NamesTheKeysThatTakeARestart(t *testing.T) {
	e := start(t, baseConfig)
	cfg, _ := os.ReadFile(e.cfgFile)
	next := strings.Replace(string(cfg), "log: {access: off,", "log: {access: stdout,", 1)
	next = strings.Replace(next, `listen: "127.0.0.1:0"`, `listen: "127.0.0.1:0"`+"\nlisteners: []", 1)
	next = strings.Replace(next, "      - exact: /\n", "      - exact: /\n      - exact: /newroute\n", 1)
	must(t, os.WriteFile(e.cfgFile, []byte(next), 0o644))
	if err := e.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp := e.get("/newroute")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("new route: status %d, want the rest of the reload applied", resp.StatusCode)
	}
	waitFor(t, "the restart-only keys named", func() bool {
		return strings.Contains(e.securityLog(), "take effect only when rampart is restarted") && strings.Contains(e.securityLog(), `"log.access"`)
	})
	if strings.Contains(e.securityLog(), `"listen"`) {
		t.Errorf("listen named although the addresses did not change:\n%s", e.securityLog())
	}
}
