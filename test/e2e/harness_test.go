// Package e2e tests rampart whole, over real sockets: real TLS handshakes,
// raw bytes on the wire, a real upstream that counts what reaches it.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
	"github.com/rampart-proxy/rampart/internal/server"
)

// seen is one request as the upstream received it.
type seen struct {
	Method, URI, Host string
	Header            http.Header
	BodyLen           int
}

// upstream is an internal app that records every request reaching it.
type upstream struct {
	*httptest.Server
	hits   atomic.Int64
	wsOpen atomic.Int64 // WebSockets open at the upstream
	mu     sync.Mutex
	reqs   []seen
	// streamAck lets /api/stream go on once the client has its first part.
	streamAck chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{streamAck: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), BodyLen: len(body)})
		u.mu.Unlock()
		u.hits.Add(1)
		w.Header().Set("Server", "Apache-Coyote/1.1")
		w.Header().Set("X-Powered-By", "Servlet/3.0")
		switch {
		case strings.HasPrefix(r.URL.Path, "/slow"):
			time.Sleep(500 * time.Millisecond)
		case strings.HasPrefix(r.URL.Path, "/static/"):
			w.Header().Set("Content-Type", "application/javascript")
			w.Header().Set("ETag", `"v1"`)
			_, _ = w.Write([]byte("console.log('static asset');\n"))
			return
		case r.URL.Path == "/api/stream":
			// A streamed answer of unknown length: the part flushed here
			// must reach the client while the upstream still waits.
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "first\n")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-u.streamAck:
				_, _ = io.WriteString(w, "second\n")
			case <-time.After(2 * time.Second):
				_, _ = io.WriteString(w, "late\n")
			}
			return
		case r.URL.Path == "/api/hints":
			// 103 Early Hints, then the final answer once the client has
			// them (or after 2 s).
			w.Header().Set("Link", "</app.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			select {
			case <-u.streamAck:
			case <-time.After(2 * time.Second):
			}
			_, _ = io.WriteString(w, "final")
			return
		case r.URL.Path == "/api/stall":
			// Part of a body, then silence: the proxy's read_timeout ends it.
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, "0123456789")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
			return
		case r.URL.Path == "/api/fail401":
			w.WriteHeader(http.StatusUnauthorized)
			return
		case r.URL.Path == "/api/redirect":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "len": len(body)})
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		echoWebSocket(&u.wsOpen)(w, r)
	})
	u.Server = httptest.NewServer(mux)
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last() seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return seen{}
	}
	return u.reqs[len(u.reqs)-1]
}

// env is a running rampart with its certificates and upstream.
type env struct {
	t       *testing.T
	srv     *server.Server
	addr    string
	dir     string
	roots   *x509.CertPool
	ca      *selfsigned.CA
	up      *upstream
	cfgFile string
}

// baseConfig is the config most tests run: two sites, deny entries, a
// WebSocket route. {{UP}} is the upstream, {{DIR}} the cert folder.
const baseConfig = `
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0"}
log: {access: off, security: "{{DIR}}/security.log"}
tls:
  cert: "{{DIR}}/site.pem"
  key: "{{DIR}}/site-key.pem"
limits:
  max_body: 64KiB
  handshakes_per_client: 1000/s   # the tests handshake often from one address
sites:
  - host: app.test
    aliases: [www.app.test]
    upstream:
      targets: ["{{UP}}"]
      response_header_timeout: 300ms
    deny:
      - prefix: /admin/
        status: 403
    routes:
      - exact: /
      - prefix: /api/
        methods: [GET, POST, PUT]
      - prefix: /slow
      - prefix: /jsp/
        allow_jsessionid: true
      - exact: /ws
        websocket: true
  - host: other.test
    upstream:
      targets: ["{{UP}}"]
    routes:
      - prefix: /
`

func writeCerts(t *testing.T, dir string) *selfsigned.CA {
	ca, err := selfsigned.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Leaf("app.test", "www.app.test", "other.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "site.pem"), cert, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "site-key.pem"), key, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o644))
	return ca
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func render(tmpl, dir, up string) string {
	return strings.NewReplacer("{{DIR}}", dir, "{{UP}}", up).Replace(tmpl)
}

// start runs rampart in-process with cfgTmpl.
func start(t *testing.T, cfgTmpl string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, up: newUpstream(t)}
	e.ca = writeCerts(t, dir)
	e.roots = x509.NewCertPool()
	e.roots.AddCert(e.ca.Cert)
	e.cfgFile = filepath.Join(dir, "rampart.yaml")
	must(t, os.WriteFile(e.cfgFile, []byte(render(cfgTmpl, dir, e.up.URL)), 0o644))
	cfg, err := config.Load(e.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Load = func() (*config.Config, error) { return config.Load(e.cfgFile) }
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	e.srv = srv
	e.addr = srv.Addrs()[0].String()
	return e
}

// tlsConf returns a client config that trusts the test CA and sends sni.
func (e *env) tlsConf(sni string) *tls.Config {
	return &tls.Config{RootCAs: e.roots, ServerName: sni, NextProtos: []string{"http/1.1"}}
}

// client is an HTTPS client that connects to rampart whatever the URL host.
func (e *env) client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig: e.tlsConf(""),
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, e.addr)
			},
			ForceAttemptHTTP2: false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       15 * time.Second, // generous: CI runs packages in parallel on 2 cores
	}
}

func (e *env) get(path string) *http.Response {
	e.t.Helper()
	resp, err := e.client().Get("https://app.test" + path)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// raw sends bytes over a TLS connection with the given SNI and returns
// what comes back until the server closes or a short timeout passes.
func (e *env) raw(sni, payload string) (string, bool) {
	e.t.Helper()
	conf := e.tlsConf(sni)
	if sni == "" {
		conf.InsecureSkipVerify = true
	}
	c, err := tls.Dial("tcp", e.addr, conf)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_, _ = c.Write([]byte(payload))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	// Read one response; then see whether the server closed the connection.
	var buf bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &buf))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return buf.String(), errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = io.ReadAll(br)
	return buf.String(), err == nil
}

// statusOf returns the status code of the first response in raw output.
func statusOf(raw string) int {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

func (e *env) securityLog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "security.log"))
	return string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = fmt.Sprintf

func dialTCP(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	}
	return c, err
}

func poolFromFile(t *testing.T, path string) *x509.CertPool {
	pem, err := os.ReadFile(path)
	must(t, err)
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}

// clientFrom is client() with a fixed loopback source address.
func (e *env) clientFrom(ip string) *http.Client {
	c := e.client()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, e.addr)
	}
	return c
}

// metrics returns the admin listener's /metrics text.
func (e *env) metrics() string {
	r, err := http.Get("http://" + e.srv.AdminAddr().String() + "/metrics")
	if err != nil {
		return ""
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// metric returns the value of one series (name and labels as exposed) from
// the admin listener's /metrics, or "" when it is not there.
func (e *env) metric(series string) string {
	for _, line := range strings.Split(e.metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// echoWebSocket answers a WebSocket with an echo of every message, counting the
// sockets open in open.
func echoWebSocket(open *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		open.Add(1)
		defer open.Add(-1)
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if string(msg) == "bye" { // the upstream drops the connection
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	}
}
