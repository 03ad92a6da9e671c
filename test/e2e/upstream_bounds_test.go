package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawUpstream accepts connections and hands each to serve; its sockets
// have a small receive buffer, so that a peer writing to one that is not
// read blocks soon.
func rawUpstream(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

const boundsConfig = `
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0"}
log: {access: off, security: "{{DIR}}/security.log"}
tls: {cert: "{{DIR}}/site.pem", key: "{{DIR}}/site-key.pem"}
limits: {max_body: 64MiB, handshakes_per_client: 1000/s}
sites:
  - host: app.test
    upstream: {targets: ["http://RAW"], send_timeout: 500ms, read_timeout: 500ms, response_header_timeout: 500ms}
    waf: {mode: "off"}
    routes:
      - prefix: /upload
        methods: [POST]
        max_body: 64MiB
      - exact: /ws
        websocket: true
`

// An upstream that stops reading a request body: the write to it is
// bounded by upstream.send_timeout and the client gets 504, instead of the
// exchange (and the client's connection) being held for good —
// http.Transport starts response_header_timeout only after the body.
func TestUpstreamNotReadingTheRequestBodyEndsAtSendTimeout(t *testing.T) {
	raw := rawUpstream(t, func(c net.Conn) { time.Sleep(20 * time.Second) })
	e := start(t, strings.Replace(boundsConfig, "RAW", raw, 1))
	const size = 48 << 20
	req, _ := http.NewRequest(http.MethodPost, "https://app.test/upload", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	c := e.client()
	c.Timeout = 10 * time.Second
	start := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout && resp.StatusCode != http.StatusBadGateway {
			t.Errorf("status %d, want 504", resp.StatusCode)
		}
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("the exchange ended after %v (%v), want within a few send_timeouts (500ms)", d, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// An upstream that refuses a WebSocket upgrade with an answer it never
// finishes: read_timeout cuts it like any other answer (it did not apply
// to requests carrying Upgrade), so the connection and its WebSocket slot
// are not held.
func TestRefusedUpgradeWithAStalledBodyEndsAtReadTimeout(t *testing.T) {
	raw := rawUpstream(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nno")
		time.Sleep(20 * time.Second)
	})
	e := start(t, strings.Replace(boundsConfig, "RAW", raw, 1))
	tc, err := tls.Dial("tcp", e.addr, e.tlsConf("app.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_, _ = io.WriteString(tc, "GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	_ = tc.SetReadDeadline(time.Now().Add(8 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(tc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("still open after %v", time.Since(start))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("ended after %v, want about read_timeout (500ms)", d)
	}
}
