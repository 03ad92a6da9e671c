package protoguard_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/protoguard"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
)

// guarded is a real net/http server behind the guard on a loopback port.
type guarded struct {
	addr   string
	client *tls.Config

	mu   sync.Mutex
	seen []string // "METHOD /path" of every request the handler served as real
	errs []error  // body read errors seen by the handler
}

func (g *guarded) record(s string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s != "" {
		g.seen = append(g.seen, s)
	}
	if err != nil {
		g.errs = append(g.errs, err)
	}
}

func (g *guarded) served() ([]string, []error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.seen...), append([]error(nil), g.errs...)
}

var (
	certOnce sync.Once
	certPair tls.Certificate
	certPool *x509.CertPool
	certErr  error
)

func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certOnce.Do(func() {
		ca, err := selfsigned.NewCA("protoguard test CA")
		if err != nil {
			certErr = err
			return
		}
		chain, key, err := ca.Leaf("a.example", "127.0.0.1")
		if err != nil {
			certErr = err
			return
		}
		certPair, certErr = tls.X509KeyPair(chain, key)
		certPool = x509.NewCertPool()
		certPool.AddCert(ca.Cert)
	})
	if certErr != nil {
		t.Fatal(certErr)
	}
	return certPair, certPool
}

func defaultLimits() protoguard.Limits {
	return protoguard.Limits{
		MaxHeaderBytes:   8 << 10,
		MaxURILength:     4 << 10,
		HandshakeTimeout: time.Second,
		BodyReadTimeout:  time.Second,
		SendTimeout:      time.Second,
	}
}

// startGuarded serves a handler that asks the guard for its verdict, answers
// a refusal with its status, and otherwise echoes the method, path, body
// length and the X-Sum trailer.
func startGuarded(t *testing.T, lim protoguard.Limits) *guarded {
	t.Helper()
	g := &guarded{}
	serveGuarded(t, g, lim, nil, echoHandler(g, func(body io.Reader) (int64, error) { return io.Copy(io.Discard, body) }))
	return g
}

// echoHandler is startGuarded's handler, taking the body with consume.
func echoHandler(g *guarded, consume func(io.Reader) (int64, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gc := protoguard.FromContext(r.Context())
		if gc == nil {
			http.Error(w, "no guarded connection", http.StatusInternalServerError)
			return
		}
		if rej := gc.Verdict(); rej != nil {
			w.Header().Set("Connection", "close")
			w.WriteHeader(rej.Status)
			fmt.Fprintf(w, "%s %s", rej.Stage, rej.Reason)
			return
		}
		n, err := consume(r.Body)
		g.record(r.Method+" "+r.URL.Path, err)
		if err != nil {
			panic(http.ErrAbortHandler) // end the connection without an answer
		}
		w.Header().Set("X-Sum", r.Trailer.Get("X-Sum"))
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, n)
	})
}

// serveGuarded runs h in a real net/http server behind the guard on a
// loopback port; wrap, when set, wraps the TCP listener under the guard.
func serveGuarded(t *testing.T, g *guarded, lim protoguard.Limits, wrap func(net.Listener) net.Listener, h http.Handler) {
	t.Helper()
	cert, pool := testCert(t)
	srvConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr, g.client = ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "a.example"}
	if wrap != nil {
		ln = wrap(ln)
	}
	gl := protoguard.NewListener(ln, lim, func() *tls.Config { return srvConf }, nil)
	srv := &http.Server{
		ConnContext:                  protoguard.ConnContext,
		ReadHeaderTimeout:            2 * time.Second,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     log.New(io.Discard, "", 0),
		Handler:                      h,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(gl)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
}

func (g *guarded) dial(t *testing.T) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", g.addr, g.client)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(1500 * time.Millisecond))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type answer struct {
	status int
	body   string
	sum    string
	close  bool
}

func readAnswer(t *testing.T, br *bufio.Reader) answer {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a response body: %v", err)
	}
	return answer{resp.StatusCode, string(b), resp.Header.Get("X-Sum"), resp.Close}
}

// expectClosed reads until the server ends the connection and returns what
// arrived; a read timeout fails the test.
func expectClosed(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open (read %q)", b)
	}
	return b
}

const (
	getRoot    = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"
	chunkedReq = "POST /chunked HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"
	clReq = "POST /form HTTP/1.1\r\nHost: a.example\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nabcdefg"
)

func TestConn_PlainHTTPOnTLSPortIsClosedWithoutAWord(t *testing.T) {
	g := startGuarded(t, defaultLimits())
	for _, first := range []string{getRoot, "\x00\x01garbage", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"} {
		t.Run(strconv.Quote(first[:3]), func(t *testing.T) {
			c, err := net.DialTimeout("tcp", g.addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(1500 * time.Millisecond))
			if _, err := io.WriteString(c, first); err != nil {
				t.Fatal(err)
			}
			if b := expectClosed(t, c); len(b) != 0 {
				t.Errorf("server answered %q, want no bytes", b)
			}
		})
	}
	if seen, _ := g.served(); len(seen) != 0 {
		t.Errorf("handler served %v", seen)
	}
}

func TestConn_HTTP2PrefaceInsideTLSIsDroppedWithoutAWord(t *testing.T) {
	g := startGuarded(t, defaultLimits())
	for name, data := range map[string]string{
		"whole preface":         "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"preface line only":     "PRI * HTTP/2.0",
		"after a valid request": getRoot + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := g.dial(t)
			br := bufio.NewReader(c)
			if _, err := io.WriteString(c, data); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(data, getRoot) {
				if got := readAnswer(t, br); got.status != 200 {
					t.Errorf("first answer %+v, want 200", got)
				}
			}
			if b := expectClosed(t, br); len(b) != 0 {
				t.Errorf("server answered %q, want no bytes", b)
			}
		})
	}
}

func TestConn_KeepaliveSequenceIsServedInOrder(t *testing.T) {
	g := startGuarded(t, defaultLimits())
	want := []answer{
		{status: 200, body: "GET / 0"},
		{status: 200, body: "POST /chunked 11", sum: "11"},
		{status: 200, body: "POST /form 7"},
	}
	t.Run("one at a time", func(t *testing.T) {
		c := g.dial(t)
		br := bufio.NewReader(c)
		for i, req := range []string{getRoot, chunkedReq, clReq} {
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			if got := readAnswer(t, br); got != want[i] {
				t.Errorf("answer %d = %+v, want %+v", i, got, want[i])
			}
		}
	})
	t.Run("pipelined in one write", func(t *testing.T) {
		c := g.dial(t)
		br := bufio.NewReader(c)
		if _, err := io.WriteString(c, getRoot+chunkedReq+clReq); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got := readAnswer(t, br); got != want[i] {
				t.Errorf("answer %d = %+v, want %+v", i, got, want[i])
			}
		}
	})
	t.Run("split into small writes", func(t *testing.T) {
		c := g.dial(t)
		br := bufio.NewReader(c)
		all := "\r\n" + getRoot + chunkedReq + clReq // an empty line before a request line is ignored
		go func() {
			for i := 0; i < len(all); i += 7 {
				_, _ = io.WriteString(c, all[i:min(i+7, len(all))])
			}
		}()
		for i := range want {
			if got := readAnswer(t, br); got != want[i] {
				t.Errorf("answer %d = %+v, want %+v", i, got, want[i])
			}
		}
	})
}

func TestConn_SmugglingAfterAValidRequestIsRefusedAndCloses(t *testing.T) {
	cases := []struct {
		name, second, reason string
		status               int
	}{
		{"CL+TE", "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "content-length-and-transfer-encoding", 400},
		{"TE chunked then identity", "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", "unsupported-transfer-encoding", 400},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "duplicate-transfer-encoding", 400},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n", "duplicate-content-length", 400},
		{"bare LF", "POST / HTTP/1.1\nHost: a.example\nContent-Length: 0\n\n", "bare-lf", 400},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: a.example\r\n\r\n", "http-1.0", 505},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGuarded(t, defaultLimits())
			c := g.dial(t)
			br := bufio.NewReader(c)
			smuggled := "GET /admin HTTP/1.1\r\nHost: a.example\r\n\r\n"
			if _, err := io.WriteString(c, getRoot+tc.second+smuggled); err != nil {
				t.Fatal(err)
			}
			if got := readAnswer(t, br); got.status != 200 || got.body != "GET / 0" {
				t.Errorf("first answer = %+v, want 200 GET / 0", got)
			}
			got := readAnswer(t, br)
			if got.status != tc.status || got.body != "protocol "+tc.reason || !got.close {
				t.Errorf("second answer = %+v, want %d protocol %s with Connection: close", got, tc.status, tc.reason)
			}
			if rest := expectClosed(t, br); len(rest) != 0 {
				t.Errorf("bytes after the refusal: %q", rest)
			}
			if seen, _ := g.served(); strings.Join(seen, ",") != "GET /" {
				t.Errorf("handler served %v, want only GET /", seen)
			}
		})
	}
}

func TestConn_RefusedFirstHeadIsAnsweredThenCloses(t *testing.T) {
	g := startGuarded(t, defaultLimits())
	c := g.dial(t)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"+getRoot); err != nil {
		t.Fatal(err)
	}
	if got := readAnswer(t, br); got.status != 421 || got.body != "hostgate absolute-form-host-mismatch" {
		t.Errorf("answer = %+v, want 421 hostgate", got)
	}
	expectClosed(t, br)
	if seen, _ := g.served(); len(seen) != 0 {
		t.Errorf("handler served %v", seen)
	}
}

func TestConn_CompleteHeadLargerThanMaxHeaderBytesIsRefused(t *testing.T) {
	lim := defaultLimits()
	lim.MaxHeaderBytes = 1024
	lim.MaxURILength = 512
	g := startGuarded(t, lim)
	c := g.dial(t)
	br := bufio.NewReader(c)
	// One write: the whole head arrives in one TLS record.
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: "+strings.Repeat("p", 2000)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := readAnswer(t, br); got.status != 431 || got.body != "protocol header-too-large" {
		t.Errorf("answer = %+v, want 431 header-too-large", got)
	}
	expectClosed(t, br)
}

func TestConn_HeadWithinMaxHeaderBytesButLargerThanBufferIsServed(t *testing.T) {
	lim := defaultLimits()
	lim.MaxHeaderBytes = 64 << 10
	g := startGuarded(t, lim)
	c := g.dial(t)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: "+strings.Repeat("p", 20000)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := readAnswer(t, br); got.status != 200 {
		t.Errorf("answer = %+v, want 200", got)
	}
}

func TestConn_StalledBodyEndsTheConnection(t *testing.T) {
	lim := defaultLimits()
	lim.BodyReadTimeout = 200 * time.Millisecond
	g := startGuarded(t, lim)
	c := g.dial(t)
	start := time.Now()
	if _, err := io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	b := expectClosed(t, c)
	took := time.Since(start)
	if len(b) != 0 {
		t.Errorf("answer %q, want none", b)
	}
	if took < 150*time.Millisecond || took > time.Second {
		t.Errorf("connection ended after %v, want about BodyReadTimeout (200ms)", took)
	}
	seen, errs := g.served()
	if strings.Join(seen, ",") != "POST /slow" || len(errs) != 1 {
		t.Errorf("handler saw %v with body errors %v, want one failed body read", seen, errs)
	}
}

func TestConn_StalledBodyEndsTheConnectionAtBodyReadTimeout(t *testing.T) {
	lim := defaultLimits()
	lim.BodyReadTimeout = 200 * time.Millisecond
	g := startGuarded(t, lim)
	c := g.dial(t)
	start := time.Now()
	if _, err := io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("connection ended after %v, want within BodyReadTimeout (200ms) plus scheduling", took)
	}
}

func TestConn_SlowButSteadyBodyIsServed(t *testing.T) {
	lim := defaultLimits()
	lim.BodyReadTimeout = 200 * time.Millisecond
	g := startGuarded(t, lim)
	c := g.dial(t)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "POST /drip HTTP/1.1\r\nHost: a.example\r\nContent-Length: 6\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ { // 600ms in total, 100ms between bytes
		time.Sleep(100 * time.Millisecond)
		if _, err := io.WriteString(c, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAnswer(t, br); got.status != 200 || got.body != "POST /drip 6" {
		t.Errorf("answer = %+v, want 200 POST /drip 6", got)
	}
}

func TestConn_MalformedChunkFramingEndsTheConnection(t *testing.T) {
	cases := []struct{ name, body string }{
		{"chunk size not hex", "zz\r\nhello\r\n0\r\n\r\n"},
		{"chunk size with 0x", "0x5\r\nhello\r\n0\r\n\r\n"},
		{"chunk size with leading space", " 5\r\nhello\r\n0\r\n\r\n"},
		{"chunk size negative", "-5\r\nhello\r\n0\r\n\r\n"},
		{"chunk size too long", "1000000000000000\r\nhello\r\n0\r\n\r\n"},
		{"chunk data longer than its size", "3\r\nhello\r\n0\r\n\r\n"},
		{"chunk size ended by bare LF", "5\nhello\r\n0\r\n\r\n"},
		{"bad trailer line", "5\r\nhello\r\n0\r\nX Bad: 1\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGuarded(t, defaultLimits())
			c := g.dial(t)
			after := "GET /after HTTP/1.1\r\nHost: a.example\r\n\r\n"
			if _, err := io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n"+tc.body+after); err != nil {
				t.Fatal(err)
			}
			if b := expectClosed(t, c); len(b) != 0 {
				t.Errorf("answer %q, want none", b)
			}
			seen, errs := g.served()
			if strings.Join(seen, ",") != "POST /up" || len(errs) != 1 {
				t.Errorf("handler saw %v with body errors %v, want only POST /up and its failed body read", seen, errs)
			}
		})
	}
}

func TestConn_VerdictAndAccessors(t *testing.T) {
	var gotPeer, gotTLS string
	cert, pool := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := protoguard.NewListener(ln, defaultLimits(), func() *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	}, nil)
	srv := &http.Server{ConnContext: protoguard.ConnContext, ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gc := protoguard.FromContext(r.Context())
			if gc.Verdict() != nil {
				t.Error("verdict on a valid request")
			}
			gotPeer = gc.Peer().Addr().String()
			gotTLS = protoguard.VersionName(gc.TLS().Version)
		})}
	go func() { _ = srv.Serve(gl) }()
	defer srv.Close()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "a.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(1500 * time.Millisecond))
	if _, err := io.WriteString(c, getRoot); err != nil {
		t.Fatal(err)
	}
	if got := readAnswer(t, bufio.NewReader(c)); got.status != 200 {
		t.Fatalf("status %d", got.status)
	}
	if gotPeer != "127.0.0.1" || gotTLS != "1.3" {
		t.Errorf("Peer %q TLS %q, want 127.0.0.1 and 1.3", gotPeer, gotTLS)
	}
	if gl.Open() != 1 {
		t.Errorf("Open() = %d, want 1", gl.Open())
	}
	gl.CloseAll()
	expectClosed(t, c)
	if protoguard.FromContext(t.Context()) != nil {
		t.Error("FromContext on a plain context is not nil")
	}
}

// A handshake that stops half-way is ended at HandshakeTimeout: a
// ClientHello cut short, or a client that reads the server's flight but
// never sends its Finished.
func TestConn_StalledHandshakeEndsAtHandshakeTimeout(t *testing.T) {
	lim := defaultLimits()
	lim.HandshakeTimeout = 300 * time.Millisecond // net/http's own header timeout here is 2 s
	g := startGuarded(t, lim)
	for name, send := range map[string][]byte{
		"record header only":  {0x16, 0x03, 0x01, 0x02, 0x00},
		"half a ClientHello":  append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, make([]byte, 40)...),
		"first byte and wait": {0x16},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", g.addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			start := time.Now()
			if _, err := c.Write(send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			if d := time.Since(start); d < 250*time.Millisecond || d > 1500*time.Millisecond {
				t.Errorf("closed after %v, want about the 300 ms handshake timeout", d)
			}
		})
	}
	t.Run("no client Finished", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A TLS 1.2 client sees the server's flight and then owes its key
		// exchange; it never sends it.
		stalled := &stallAfterHello{Conn: c}
		tc := tls.Client(stalled, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		err = tc.Handshake()
		if err == nil {
			t.Fatal("handshake completed without the client's Finished")
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("server kept the stalled handshake open: %v", err)
		}
		if d := time.Since(start); d < 250*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("closed after %v, want about the 300 ms handshake timeout", d)
		}
	})
}

// stallAfterHello passes the client's first write (the ClientHello) and
// swallows every later one, so the server waits for the rest.
type stallAfterHello struct {
	net.Conn
	writes int
}

func (s *stallAfterHello) Write(b []byte) (int, error) {
	s.writes++
	if s.writes > 1 {
		return len(b), nil
	}
	return s.Conn.Write(b)
}

// The first request's head is bounded by net/http's header timeout like
// every later one: the TLS handshake, which sets its own deadline, puts
// back the one net/http set before its first read. A client that
// completes the handshake and then sends half a head, or nothing, is
// closed at the header timeout (2 s in this harness), not held for good.
func TestConn_FirstHeadAfterTheHandshakeIsBoundedByTheHeaderTimeout(t *testing.T) {
	g := startGuarded(t, defaultLimits())
	for name, send := range map[string]string{
		"half a head": "GET / HTTP/1.1\r\nHost: a.example\r\n",
		"nothing":     "",
	} {
		t.Run(name, func(t *testing.T) {
			c := g.dial(t)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			if _, err := io.WriteString(c, send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			if d := time.Since(start); d > 3500*time.Millisecond {
				t.Errorf("closed after %v, want about the 2 s header timeout", d)
			}
		})
	}
}
