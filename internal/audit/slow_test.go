package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowFake is a TLS server for the slow probes. It reads whatever a client
// sends and, after every read (and every 50 ms without one), asks policy
// what to do: nothing yet, or write an answer (may be empty) and close.
type slowFake struct {
	addr     string
	ca       *testCA
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []*slowFakeConn
}

type slowFakeConn struct {
	c    net.Conn
	mu   sync.Mutex
	got  []byte
	done chan struct{} // closed when the fake is done with the connection
}

func (fc *slowFakeConn) bytes() []byte {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return bytes.Clone(fc.got)
}

// slowPolicy sees what came so far and how long since the handshake.
type slowPolicy func(got []byte, since time.Duration) (answer string, end bool)

func closeAfter(d time.Duration) slowPolicy {
	return func(_ []byte, since time.Duration) (string, bool) { return "", since >= d }
}

func answerAfter(d time.Duration, status int) slowPolicy {
	return func(_ []byte, since time.Duration) (string, bool) {
		if since < d {
			return "", false
		}
		return "HTTP/1.1 " + strconv.Itoa(status) + " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", true
	}
}

func hold(_ []byte, _ time.Duration) (string, bool) { return "", false }

// byMethod plays get for the connection whose request starts with GET and
// post for the other.
func byMethod(get, post slowPolicy) slowPolicy {
	return func(got []byte, since time.Duration) (string, bool) {
		switch {
		case bytes.HasPrefix(got, []byte("GET ")):
			return get(got, since)
		case bytes.HasPrefix(got, []byte("POST ")):
			return post(got, since)
		}
		return "", false
	}
}

func startSlowFake(t *testing.T, policy slowPolicy) *slowFake {
	t.Helper()
	f := &slowFake{ca: newTestCA(t)}
	conf := &tls.Config{Certificates: []tls.Certificate{f.ca.leaf(t, leafOpts{})}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		for _, fc := range f.conns {
			_ = fc.c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			fc := &slowFakeConn{c: c, done: make(chan struct{})}
			f.mu.Lock()
			f.conns = append(f.conns, fc)
			f.mu.Unlock()
			wg.Go(func() { fc.serve(policy) })
		}
	})
	return f
}

func (fc *slowFakeConn) serve(policy slowPolicy) {
	defer close(fc.done)
	defer fc.c.Close()
	tc := fc.c.(*tls.Conn)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		return
	}
	start := time.Now()
	buf := make([]byte, 4096)
	for {
		_ = tc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := tc.Read(buf)
		fc.mu.Lock()
		fc.got = append(fc.got, buf[:n]...)
		got := bytes.Clone(fc.got)
		fc.mu.Unlock()
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return // the client closed
		}
		if answer, end := policy(got, time.Since(start)); end {
			_ = tc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = tc.Write([]byte(answer))
			return
		}
	}
}

// conn returns the connection whose request starts with prefix, once the
// fake is done with it (the client closed it or the policy ended it).
func (f *slowFake) conn(t *testing.T, prefix string) []byte {
	t.Helper()
	f.mu.Lock()
	conns := append([]*slowFakeConn(nil), f.conns...)
	f.mu.Unlock()
	for _, fc := range conns {
		select {
		case <-fc.done:
		case <-time.After(3 * time.Second):
			t.Fatal("the probe did not close its connection")
		}
		if b := fc.bytes(); bytes.HasPrefix(b, []byte(prefix)) {
			return b
		}
	}
	t.Fatalf("no connection starting with %q among %d", prefix, len(conns))
	return nil
}

func slowOptions(f *slowFake) Options {
	return Options{
		Target:        "https://" + f.addr,
		Hosts:         []string{"app.test"},
		CAFile:        f.ca.file,
		Timeout:       2 * time.Second,
		HandshakeRate: 1000,
		Slow:          true,
	}
}

var reSent = regexp.MustCompile(`(\d+) (?:header bytes?|bytes of body) sent`)

// sentIn is the byte count the evidence claims was dripped.
func sentIn(t *testing.T, ev string) int {
	t.Helper()
	m := reSent.FindStringSubmatch(ev)
	if m == nil {
		t.Fatalf("no byte count in %q", ev)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// A server that closes a slow head and a slow body after about a second
// passes both, and the probes stop then rather than at the bound.
func TestSlow_ClosedIsAPass(t *testing.T) {
	f := startSlowFake(t, closeAfter(1500*time.Millisecond))
	o := slowOptions(f)
	o.ExpectPaths = []string{"/api/*", "/"}
	a := newTestAuditor(t, o) // SlowFor: the default 30s
	start := time.Now()
	a.runLimits(ctxT(t))
	took := time.Since(start)
	got := checkMap(a)
	want(t, got, map[string]Status{idSlowHeaders: Pass, idSlowBody: Pass, "limits.burst": Skip})
	t.Logf("%s: %s\n%s: %s", idSlowHeaders, got[idSlowHeaders].Evidence, idSlowBody, got[idSlowBody].Evidence)
	for _, id := range []string{idSlowHeaders, idSlowBody} {
		if ev := got[id].Evidence; !strings.Contains(ev, "closed after 1.") || !strings.Contains(ev, "without an answer") {
			t.Errorf("%s: %q, want closed after 1.xs without an answer", id, ev)
		}
	}
	if took > 3*time.Second {
		t.Errorf("took %v for a server closing after 1.5s", took)
	}

	head := f.conn(t, "GET ")
	if !bytes.HasPrefix(head, []byte("GET / HTTP/1.1\r\nHost: app.test:"+portOfAddr(f.addr)+"\r\n")) || bytes.Contains(head, []byte("\r\n\r\n")) {
		t.Errorf("slow head %q: want GET / with Host and no end of head", head)
	}
	_, drip, _ := bytes.Cut(head, []byte("Accept: */*\r\n"))
	if n := sentIn(t, got[idSlowHeaders].Evidence); n != len(drip) || n < 1 || !bytes.HasPrefix([]byte(strings.Repeat(slowHeaderLine, 4)), drip) {
		t.Errorf("header drip %q (%d bytes), evidence says %d", drip, len(drip), n)
	}
	post := f.conn(t, "POST ")
	h, body, ok := bytes.Cut(post, []byte("\r\n\r\n"))
	if !ok || !bytes.HasPrefix(h, []byte("POST /api/ HTTP/1.1\r\n")) || !bytes.Contains(h, []byte("\r\nContent-Length: 1000000")) ||
		!bytes.Contains(h, []byte("\r\nContent-Type: application/x-www-form-urlencoded")) {
		t.Errorf("slow POST head %q", h)
	}
	if n := sentIn(t, got[idSlowBody].Evidence); n != len(body) || n < 10 || !bytes.HasPrefix(body, []byte("audit=xxxx")) {
		t.Errorf("body drip %q (%d bytes), evidence says %d", body, len(body), n)
	}
	if !strings.Contains(got[idSlowBody].Evidence, "POST /api/ with Content-Length 1000000") {
		t.Errorf("slow-body evidence %q does not name the request", got[idSlowBody].Evidence)
	}
	if s := a.sent.Load(); s != 2 {
		t.Errorf("%d requests counted, want 2", s)
	}
}

func portOfAddr(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// A server that never closes is a warning for both, at the bound; the two
// probes run side by side.
func TestSlow_HeldIsAWarning(t *testing.T) {
	f := startSlowFake(t, hold)
	a := newTestAuditor(t, slowOptions(f))
	a.t.slowFor = 2 * time.Second // under MinSlowFor, to keep the test short
	start := time.Now()
	a.runLimits(ctxT(t))
	took := time.Since(start)
	got := checkMap(a)
	want(t, got, map[string]Status{idSlowHeaders: Warn, idSlowBody: Warn})
	t.Logf("%s: %s\n%s: %s", idSlowHeaders, got[idSlowHeaders].Evidence, idSlowBody, got[idSlowBody].Evidence)
	for _, id := range []string{idSlowHeaders, idSlowBody} {
		if ev := got[id].Evidence; !strings.Contains(ev, "still open after 2.0s") {
			t.Errorf("%s: %q, want still open after 2.0s", id, ev)
		}
	}
	if took < 2*time.Second || took > 3500*time.Millisecond {
		t.Errorf("took %v for two probes bounded at 2s run side by side", took)
	}
	head := f.conn(t, "GET ")
	_, drip, _ := bytes.Cut(head, []byte("Accept: */*\r\n"))
	if n := sentIn(t, got[idSlowHeaders].Evidence); n != len(drip) || n < 1 || n > 2 {
		t.Errorf("header drip %q, evidence says %d; want 1 or 2 bytes in 2s", drip, n)
	}
	_, body, _ := bytes.Cut(f.conn(t, "POST "), []byte("\r\n\r\n"))
	if n := sentIn(t, got[idSlowBody].Evidence); n != len(body) || n < 10 || n > 20 {
		t.Errorf("body drip %q, evidence says %d; want 10 or 20 bytes in 2s", body, n)
	}
}

// An answer counts as the server bounding the request: a 408 to the slow
// head, a 413 to the POST before its body.
func TestSlow_AnswerIsAPass(t *testing.T) {
	early413 := func(got []byte, _ time.Duration) (string, bool) {
		if bytes.Contains(got, []byte("\r\n\r\n")) {
			return "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", true
		}
		return "", false
	}
	f := startSlowFake(t, byMethod(answerAfter(1200*time.Millisecond, 408), early413))
	a := newTestAuditor(t, slowOptions(f))
	a.runLimits(ctxT(t))
	got := checkMap(a)
	want(t, got, map[string]Status{idSlowHeaders: Pass, idSlowBody: Pass})
	t.Logf("%s: %s\n%s: %s", idSlowHeaders, got[idSlowHeaders].Evidence, idSlowBody, got[idSlowBody].Evidence)
	if ev := got[idSlowHeaders].Evidence; !strings.Contains(ev, "answered 408 after 1.") {
		t.Errorf("slow-headers: %q", ev)
	}
	if ev := got[idSlowBody].Evidence; !strings.Contains(ev, "answered 413 after 0.") || !strings.Contains(ev, "before any body byte") || !strings.Contains(ev, "refused up front") {
		t.Errorf("slow-body: %q", ev)
	}
}

func TestSlow_NotAsked(t *testing.T) {
	f := startSlowFake(t, hold)
	o := slowOptions(f)
	o.Slow = false
	a := newTestAuditor(t, o)
	a.runLimits(ctxT(t))
	got := checkMap(a)
	want(t, got, map[string]Status{idSlowHeaders: Skip, idSlowBody: Skip})
	for _, id := range []string{idSlowHeaders, idSlowBody} {
		if !strings.Contains(got[id].Evidence, "--slow") {
			t.Errorf("%s: %q does not name --slow", id, got[id].Evidence)
		}
	}
	if n := f.accepted.Load(); n != 0 {
		t.Errorf("%d connections without --slow", n)
	}
}

func TestSlow_Cancelled(t *testing.T) {
	f := startSlowFake(t, hold)
	a := newTestAuditor(t, slowOptions(f)) // SlowFor 30s
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	a.runSlow(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v after a cancel at 0.7s", took)
	}
	got := checkMap(a)
	want(t, got, map[string]Status{idSlowHeaders: Skip, idSlowBody: Skip})
	if ev := got[idSlowBody].Evidence; !strings.Contains(ev, "interrupted after 0.") {
		t.Errorf("slow-body: %q", ev)
	}
}

func TestSlow_Budget(t *testing.T) {
	f := startSlowFake(t, closeAfter(time.Second))
	o := slowOptions(f)
	o.MaxRequests = 1
	a := newTestAuditor(t, o)
	a.runSlow(ctxT(t))
	got := checkMap(a)
	// One of the two got the last request of the budget.
	var pass, budget int
	for _, id := range []string{idSlowHeaders, idSlowBody} {
		switch c := got[id]; {
		case c.Status == Pass:
			pass++
		case c.Status == Skip && strings.Contains(c.Evidence, "budget"):
			budget++
		default:
			t.Errorf("%s: %s %q", id, c.Status, c.Evidence)
		}
	}
	if pass != 1 || budget != 1 || f.accepted.Load() != 1 {
		t.Errorf("%d passed, %d skipped for the budget, %d connections; want 1, 1, 1", pass, budget, f.accepted.Load())
	}
}
