package protoguard_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/protoguard"
)

// writeCounter counts the writes to the client's TCP connections: one
// write is one system call.
type writeCounter struct {
	net.Listener
	writes atomic.Int64
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, n: &l.writes}, nil
}

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// answered serves h behind the guard after taking the verdict, as the
// pipeline does.
func answered(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if rej := protoguard.FromContext(r.Context()).Verdict(); rej != nil {
			w.Header().Set("Connection", "close")
			w.WriteHeader(rej.Status)
			return
		}
		h(w, r)
	}
}

func TestConn_ResponseLeavesInOneWrite(t *testing.T) {
	body := strings.Repeat("x", 20<<10) // larger than net/http's 4 KiB buffer and one TLS record
	counter := &writeCounter{}
	g := &guarded{}
	serveGuarded(t, g, defaultLimits(), func(ln net.Listener) net.Listener { counter.Listener = ln; return counter },
		answered(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "20480")
			_, _ = io.WriteString(w, body[:100]) // several writes from the handler
			_, _ = io.WriteString(w, body[100:])
		}))
	c := g.dial(t)
	br := bufio.NewReader(c)
	for i := range 3 {
		before := counter.writes.Load()
		if _, err := io.WriteString(c, getRoot); err != nil {
			t.Fatal(err)
		}
		if got := readAnswer(t, br); got.status != 200 || got.body != body {
			t.Fatalf("request %d: status %d, %d bytes", i, got.status, len(got.body))
		}
		// The first response may share the connection with the end of the
		// handshake (a session ticket); the others must be one write each.
		if n := counter.writes.Load() - before; i > 0 && n != 1 {
			t.Fatalf("request %d: the response took %d writes to the socket, want 1", i, n)
		}
	}
}

func TestConn_FlushSendsWhatIsHeldBack(t *testing.T) {
	got := make(chan struct{})
	var waited atomic.Bool
	g := &guarded{}
	serveGuarded(t, g, defaultLimits(), nil, answered(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		_ = protoguard.FromContext(r.Context()).Flush() // what the pipeline's writer does on Flush
		select {
		case <-got:
		case <-time.After(time.Second):
			waited.Store(true)
		}
		_, _ = io.WriteString(w, "second\n")
	}))
	c := g.dial(t)
	if _, err := io.WriteString(c, getRoot); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(got)
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" || waited.Load() {
		t.Fatalf("the flushed part arrived only with the end of the response (rest %q)", rest)
	}
}

func TestConn_100ContinueIsSentBeforeTheBodyIsAwaited(t *testing.T) {
	g := startGuarded(t, defaultLimits())
	c := g.dial(t)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("before sending the body: %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the empty line ending the 100
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	if got := readAnswer(t, br); got.status != 200 || got.body != "POST /upload 5" {
		t.Fatalf("answer %+v", got)
	}
}

func TestConn_WritesAfterPassthroughAreNotHeldBack(t *testing.T) {
	g := &guarded{}
	serveGuarded(t, g, defaultLimits(), nil, answered(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		protoguard.FromContext(r.Context()).Passthrough()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nping")
		_ = brw.Flush()
		// A tunnel answers only after the client has seen what it sent.
		b := make([]byte, 4)
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := io.ReadFull(brw, b); err == nil && string(b) == "pong" {
			_, _ = conn.Write([]byte("done"))
		}
	}))
	c := g.dial(t)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /tunnel HTTP/1.1\r\nHost: a.example\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(br, b); err != nil || string(b) != "ping" {
		t.Fatalf("tunnel data %q, %v", b, err)
	}
	if _, err := io.WriteString(c, "pong"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(br, b); err != nil || string(b) != "done" {
		t.Fatalf("tunnel answer %q, %v", b, err)
	}
}

// smallBuffers gives accepted connections a small send buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// A response held back whose flush then fails (a client that does not
// read) must end the connection at once: net/http saw its writes succeed
// and would otherwise keep the connection for its idle timeout.
func TestConn_FailedFlushEndsTheConnection(t *testing.T) {
	lim := defaultLimits()
	lim.SendTimeout = 300 * time.Millisecond
	g := &guarded{}
	serveGuarded(t, g, lim, func(ln net.Listener) net.Listener { return smallBuffers{ln} },
		answered(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("x", 30<<10)) // held back: under the limit
		}))
	d := net.Dialer{Timeout: time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
	}}
	raw, err := d.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := tls.Client(raw, g.client)
	if _, err := io.WriteString(c, getRoot); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // not reading: the flush times out after 300 ms
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection is still open after its response failed to go out")
	}
}
