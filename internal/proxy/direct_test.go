package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is an upstream on a real socket whose answers are written by
// hand, byte for byte, so that every way an upstream can frame (or fail
// to frame) an answer can be played.
type scripted struct {
	ln       net.Listener
	conns    atomic.Int64  // connections accepted
	requests atomic.Int64  // requests read
	closed   chan struct{} // one value per connection that ended
}

// answer writes the response to request n (counted over all connections)
// and reports whether the connection stays open.
type answer func(n int64, req *http.Request, w *bufio.Writer) (keep bool)

func startScripted(t *testing.T, a answer) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{ln: ln, closed: make(chan struct{}, 100)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer func() { s.closed <- struct{}{} }()
				defer c.Close()
				br := bufio.NewReader(c)
				bw := bufio.NewWriter(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					n := s.requests.Add(1)
					keep := a(n, req, bw)
					_ = bw.Flush()
					if !keep {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *scripted) pool(max int) *directPool {
	return &directPool{
		dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", s.ln.Addr().String())
		},
		max:         max,
		idleTimeout: time.Minute,
	}
}

func (s *scripted) get(t *testing.T, ctx context.Context, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.ln.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// wantConns checks how many connections the upstream accepted.
func (s *scripted) wantConns(t *testing.T, want int64) {
	t.Helper()
	if n := s.conns.Load(); n != want {
		t.Errorf("%d upstream connections, want %d", n, want)
	}
}

// fetch does one round trip and reads the whole body.
func fetch(t *testing.T, p *directPool, req *http.Request, headerTimeout time.Duration) (*http.Response, string, error) {
	t.Helper()
	resp, err := p.roundTrip(req, headerTimeout)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func ok(body string) answer {
	return func(_ int64, _ *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
		return true
	}
}

func TestDirect_SequentialRequestsShareOneConnection(t *testing.T) {
	s := startScripted(t, ok("hello"))
	p := s.pool(4)
	for i := 0; i < 20; i++ {
		_, body, err := fetch(t, p, s.get(t, context.Background(), "/x"), time.Second)
		if err != nil || body != "hello" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	s.wantConns(t, 1)
}

func TestDirect_RequestLineAndHeadersAsNetHTTPWritesThem(t *testing.T) {
	var seen *http.Request
	var mu sync.Mutex
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		mu.Lock()
		seen = req
		mu.Unlock()
		return ok("")(n, req, w)
	})
	req := s.get(t, context.Background(), "")
	req.URL.Opaque = "/a%2Fb/c"
	req.URL.RawQuery = "q=1&r=%20"
	req.Host = "public.example"
	req.Header.Set("User-Agent", "")
	req.Header.Set("X-Request-Id", "abc")
	if _, _, err := fetch(t, s.pool(1), req, time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen.RequestURI != "/a%2Fb/c?q=1&r=%20" || seen.Host != "public.example" ||
		seen.Header.Get("X-Request-Id") != "abc" || seen.Header.Get("User-Agent") != "" || seen.Header.Get("Accept-Encoding") != "" {
		t.Errorf("upstream saw %s host %q headers %v", seen.RequestURI, seen.Host, seen.Header)
	}
}

// An upstream that closes an idle keepalive connection: the next request
// goes out again on a new connection, once, and succeeds.
func TestDirect_ConnectionClosedWhileIdleIsReplaced(t *testing.T) {
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		ok("r"+strconv.Itoa(int(n)))(n, req, w)
		return false // closes after each answer, without saying so
	})
	p := s.pool(4)
	for i := 1; i <= 3; i++ {
		_, body, err := fetch(t, p, s.get(t, context.Background(), "/x"), time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := "r" + strconv.Itoa(i); body != want {
			t.Errorf("request %d answered %q, want %q", i, body, want)
		}
		<-s.closed
	}
	if n := s.requests.Load(); n != 3 {
		t.Errorf("upstream read %d requests, want 3 (one each)", n)
	}
}

func TestDirect_ConnectionIsNotReusedAfterAnUncleanAnswer(t *testing.T) {
	for name, raw := range map[string]string{
		"Connection: close":       "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0":                "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"bytes after the body":    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforge",
		"body until the close":    "HTTP/1.1 200 OK\r\n\r\nok",
		"chunked, bytes after it": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nX",
	} {
		t.Run(name, func(t *testing.T) {
			s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
				if n == 1 {
					w.WriteString(raw)
					return !strings.Contains(name, "until the close")
				}
				return ok("second")(n, req, w)
			})
			p := s.pool(4)
			if _, body, err := fetch(t, p, s.get(t, context.Background(), "/1"), time.Second); err != nil || body != "ok" {
				t.Fatalf("first: %q, %v", body, err)
			}
			_, body, err := fetch(t, p, s.get(t, context.Background(), "/2"), time.Second)
			if err != nil || body != "second" {
				t.Fatalf("second: %q, %v (a forged answer must not be read as the next response)", body, err)
			}
			s.wantConns(t, 2)
		})
	}
}

func TestDirect_CleanAnswersKeepTheConnection(t *testing.T) {
	for name, raw := range map[string]string{
		"chunked with trailer": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n",
		"304":                  "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n",
		"204":                  "HTTP/1.1 204 No Content\r\n\r\n",
		"empty 200":            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
				w.WriteString(raw)
				return true
			})
			p := s.pool(4)
			for i := 0; i < 3; i++ {
				resp, _, err := fetch(t, p, s.get(t, context.Background(), "/"), time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(name, "trailer") && resp.Trailer.Get("X-Sum") != "1" {
					t.Errorf("trailer %v", resp.Trailer)
				}
			}
			s.wantConns(t, 1)
		})
	}
}

func TestDirect_HeaderTimeoutEndsTheWait(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		if n == 1 {
			return ok("fast")(n, req, w)
		}
		<-release
		return false
	})
	p := s.pool(4)
	if _, _, err := fetch(t, p, s.get(t, context.Background(), "/fast"), time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := p.roundTrip(s.get(t, context.Background(), "/slow"), 200*time.Millisecond) // on the reused connection
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v, want a timeout", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("gave up after %v, want about 200ms", d)
	}
	if n := s.requests.Load(); n != 2 {
		t.Errorf("upstream read %d requests, want 2 (a timeout is not retried)", n)
	}
}

// A request's context ending after its answer was read does not touch the
// connection, which by then serves others.
func TestDirect_ContextEndingAfterTheAnswerLeavesThePooledConnectionAlone(t *testing.T) {
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		if n == 2 {
			time.Sleep(300 * time.Millisecond)
		}
		return ok("x")(n, req, w)
	})
	p := s.pool(4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, _, err := fetch(t, p, s.get(t, ctx, "/"), time.Second); err != nil {
		t.Fatal(err)
	}
	// The next request takes the pooled connection; the first request's
	// context ends while it waits.
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, _, err := fetch(t, p, s.get(t, context.Background(), "/"), time.Second); err != nil {
		t.Fatalf("next request on the pooled connection: %v", err)
	}
	s.wantConns(t, 1)
}

// The client leaving ends the wait and closes the upstream connection.
func TestDirect_ClientGoneClosesTheUpstreamConnection(t *testing.T) {
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		time.Sleep(5 * time.Second)
		return false
	})
	p := s.pool(4)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.roundTrip(s.get(t, ctx, "/"), time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("returned after %v", d)
	}
	if len(p.idle) != 0 {
		t.Error("the abandoned connection went back to the pool")
	}
}

// A body abandoned half-way closes the connection at once instead of
// reading the rest (or waiting for it).
func TestDirect_AbandonedBodyClosesAtOnce(t *testing.T) {
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npart")
		_ = w.Flush()
		time.Sleep(3 * time.Second)
		return false
	})
	p := s.pool(4)
	resp, err := p.roundTrip(s.get(t, context.Background(), "/"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp.Body.Close()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v: it waited for the rest of the body", d)
	}
	if len(p.idle) != 0 {
		t.Error("a connection with an unread body went back to the pool")
	}
}

func TestDirect_OversizedResponseHeadIsRefused(t *testing.T) {
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\n")
		line := "X-Big: " + strings.Repeat("a", 8000) + "\r\n"
		for i := 0; i < 200; i++ { // 1.6 MB of header lines
			if _, err := w.WriteString(line); err != nil {
				return false
			}
		}
		w.WriteString("Content-Length: 0\r\n\r\n")
		return false
	})
	p := s.pool(4)
	_, err := p.roundTrip(s.get(t, context.Background(), "/"), 5*time.Second)
	if err == nil {
		t.Fatal("a 1.6 MB response head was accepted")
	}
}

func TestDirect_EarlyHintsReachTheTraceAndTooManyInformationalAnswersFail(t *testing.T) {
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		hints := 1
		if req.URL.Path == "/many" {
			hints = 6
		}
		for i := 0; i < hints; i++ {
			w.WriteString("HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n")
		}
		return ok("final")(n, req, w)
	})
	p := s.pool(4)
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, strconv.Itoa(code)+" "+h.Get("Link"))
		return nil
	}}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	resp, body, err := fetch(t, p, s.get(t, ctx, "/one"), time.Second)
	if err != nil || resp.StatusCode != 200 || body != "final" {
		t.Fatalf("%v %q %v", resp, body, err)
	}
	if len(got) != 1 || got[0] != "103 </app.css>; rel=preload" {
		t.Errorf("trace saw %q", got)
	}
	if _, err := p.roundTrip(s.get(t, context.Background(), "/many"), time.Second); err == nil {
		t.Error("six informational answers were accepted")
	}
}

func TestDirect_PoolKeepsAtMostMaxIdle(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		<-release
		return ok("x")(n, req, w)
	})
	p := s.pool(2)
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := fetch(t, p, s.get(t, context.Background(), "/"), 5*time.Second); err != nil {
				t.Error(err)
			}
		}()
	}
	for s.requests.Load() < 5 {
		time.Sleep(10 * time.Millisecond)
	}
	once.Do(func() { close(release) })
	wg.Wait()
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 2 {
		t.Errorf("%d idle connections, want 2 (the cap)", idle)
	}
	for i := 0; i < 3; i++ {
		select {
		case <-s.closed:
		case <-time.After(2 * time.Second):
			t.Fatal("connections beyond the cap were not closed")
		}
	}
	p.close()
	for i := 0; i < 2; i++ {
		select {
		case <-s.closed:
		case <-time.After(2 * time.Second):
			t.Fatal("close left idle connections open")
		}
	}
}

func TestDirectEligible(t *testing.T) {
	get, _ := http.NewRequest(http.MethodGet, "http://u/", nil)
	post, _ := http.NewRequest(http.MethodPost, "http://u/", strings.NewReader("x"))
	up, _ := http.NewRequest(http.MethodGet, "http://u/", nil)
	up.Header.Set("Upgrade", "websocket")
	chunked, _ := http.NewRequest(http.MethodPost, "http://u/", http.NoBody)
	chunked.TransferEncoding = []string{"chunked"}
	for _, c := range []struct {
		name string
		req  *http.Request
		want bool
	}{{"GET", get, true}, {"POST with body", post, false}, {"upgrade", up, false}, {"chunked", chunked, false}} {
		if got := directEligible(c.req); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// Bytes the upstream sends on a connection after its answer ended (a late
// body, a second answer nobody asked for) are never read as the answer to
// the next request: the idle connection is checked and dropped.
func TestDirect_LateBytesOnAnIdleConnectionAreNotTheNextAnswer(t *testing.T) {
	for name, late := range map[string]string{
		"a second answer": "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET",
		"an idle 408":     "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
				ok(req.URL.Path)(n, req, w)
				if n == 1 {
					_ = w.Flush()
					time.Sleep(20 * time.Millisecond)
					w.WriteString(late)
				}
				return true
			})
			p := s.pool(4)
			if _, body, err := fetch(t, p, s.get(t, context.Background(), "/a"), time.Second); err != nil || body != "/a" {
				t.Fatalf("first: %q %v", body, err)
			}
			time.Sleep(100 * time.Millisecond)
			for _, path := range []string{"/bb", "/ccc"} {
				resp, body, err := fetch(t, p, s.get(t, context.Background(), path), time.Second)
				if err != nil || resp.StatusCode != 200 || body != path {
					t.Fatalf("GET %s answered %v %q %v", path, resp, body, err)
				}
			}
			s.wantConns(t, 2)
		})
	}
}

// After HEAD the connection is not reused: an upstream that sends a body
// to HEAD anyway may send it after the next request went out, where no
// check of the idle connection can see it.
func TestDirect_NoReuseAfterHEAD(t *testing.T) {
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		if req.Method == http.MethodHead {
			w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 44\r\n\r\n")
			_ = w.Flush()
			time.Sleep(200 * time.Millisecond)
			w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET")
			return true
		}
		return ok("public")(n, req, w)
	})
	p := s.pool(4)
	req := s.get(t, context.Background(), "/")
	req.Method = http.MethodHead
	if _, _, err := fetch(t, p, req, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, body, err := fetch(t, p, s.get(t, context.Background(), "/"), time.Second); err != nil || body != "public" {
		t.Fatalf("GET after HEAD: %q %v", body, err)
	}
	s.wantConns(t, 2)
}

// A request without a body that is not idempotent (a POST with
// Content-Length 0) is not sent twice when the connection breaks after it
// went out; a GET is.
func TestDirect_OnlyIdempotentRequestsAreSentAgain(t *testing.T) {
	for _, c := range []struct {
		method string
		want   int64 // requests the upstream reads
		ok     bool
	}{{http.MethodPost, 2, false}, {http.MethodGet, 3, true}} {
		t.Run(c.method, func(t *testing.T) {
			s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
				if n == 2 {
					return false // read the request, then drop the connection
				}
				return ok("x")(n, req, w)
			})
			p := s.pool(4)
			if _, _, err := fetch(t, p, s.get(t, context.Background(), "/warm"), time.Second); err != nil {
				t.Fatal(err)
			}
			req := s.get(t, context.Background(), "/act")
			req.Method = c.method
			_, _, err := fetch(t, p, req, time.Second)
			if (err == nil) != c.ok {
				t.Errorf("error %v, want success %v", err, c.ok)
			}
			if n := s.requests.Load(); n != c.want {
				t.Errorf("upstream read %d requests, want %d", n, c.want)
			}
		})
	}
}

// A client that leaves while the body is read: the read ends with
// context.Canceled (not an i/o timeout) and the connection is closed.
func TestDirect_ClientGoneMidBodyIsContextCanceled(t *testing.T) {
	s := startScripted(t, partThenSilence)
	p := s.pool(4)
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := p.roundTrip(s.get(t, ctx, "/"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	expectBodyCanceled(t, resp)
}

// Idle connections are closed after the idle timeout without any further
// traffic.
func TestDirect_IdleConnectionsAreClosedAfterTheIdleTimeout(t *testing.T) {
	s := startScripted(t, ok("x"))
	p := s.pool(4)
	p.idleTimeout = 100 * time.Millisecond
	if _, _, err := fetch(t, p, s.get(t, context.Background(), "/"), time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.closed:
	case <-time.After(2 * time.Second):
		t.Fatal("the idle connection was still open 2 s after a 100 ms idle timeout")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) != 0 || p.reapArmed {
		t.Errorf("pool after reaping: %d idle, reap armed %v", len(p.idle), p.reapArmed)
	}
}

func TestDirect_InvalidHeaderIsNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _ := io.ReadAll(c)
		got <- len(n)
	}()
	p := &directPool{max: 4, idleTimeout: time.Minute, dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}}
	for name, h := range map[string]http.Header{
		"NUL in a value": {"X-Bad": {"a\x00b"}},
		"space in name":  {"X Bad": {"v"}},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		req.Header = h
		if _, err := p.roundTrip(req, time.Second); err == nil {
			t.Errorf("%s: sent", name)
		}
	}
	if n := <-got; n != 0 {
		t.Errorf("upstream received %d bytes, want none", n)
	}
}

// The client leaving just as the head was read, before the header deadline
// is cleared, still ends the body read at once.
func TestDirect_ClientGoneWhileTheHeadIsReadStillEndsTheBody(t *testing.T) {
	s := startScripted(t, partThenSilence)
	p := s.pool(4)
	ctx, cancel := context.WithCancel(context.Background())
	testHookHeadRead = func(context.Context) {
		cancel()
		time.Sleep(50 * time.Millisecond) // the AfterFunc has moved the deadline
	}
	defer func() { testHookHeadRead = nil }()
	resp, err := p.roundTrip(s.get(t, ctx, "/"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expectBodyCanceled(t, resp)
}

// read_timeout on the direct path: a pause longer than it ends the body
// read with a timeout (and the connection); a body that comes slowly but
// steadily is read in full.
func TestDirect_ReadTimeoutBoundsEachPauseInABody(t *testing.T) {
	s := startScripted(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
		for i := 0; i < 10; i++ {
			w.WriteString("x")
			_ = w.Flush()
			pause := 100 * time.Millisecond // steady: 1 s in all, no pause over 300 ms
			if req.URL.Path == "/stall" && i == 4 {
				pause = 3 * time.Second
			}
			time.Sleep(pause)
		}
		return true
	})
	p := s.pool(4)
	p.readTimeout = 300 * time.Millisecond
	_, body, err := fetch(t, p, s.get(t, context.Background(), "/steady"), time.Second)
	if err != nil || body != "xxxxxxxxxx" {
		t.Fatalf("steady body: %q %v", body, err)
	}
	start := time.Now()
	_, body, err = fetch(t, p, s.get(t, context.Background(), "/stall"), time.Second)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled body: %q %v, want a timeout", body, err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("stalled body ended after %v, want about 300ms after its last byte", d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) != 0 {
		t.Error("the connection of a cut body went back to the pool")
	}
}

// partThenSilence answers with the start of a body and then nothing.
func partThenSilence(_ int64, _ *http.Request, w *bufio.Writer) bool {
	w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
	_ = w.Flush()
	time.Sleep(3 * time.Second)
	return false
}

// expectBodyCanceled reads resp's body, which the client's leaving must
// end at once with context.Canceled.
func expectBodyCanceled(t *testing.T, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	start := time.Now()
	_, err := io.ReadAll(resp.Body)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("body read ended with %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("body read ended after %v: the client's leaving was lost", d)
	}
}
