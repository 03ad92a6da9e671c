package protoguard_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe/observetest"
	"github.com/rampart-proxy/rampart/internal/protoguard"
)

// drip writes the body n bytes at a time every interval until the
// connection fails or the body is sent; it returns how much was written.
func drip(c io.Writer, body string, n int, interval time.Duration) int {
	sent := 0
	for sent < len(body) {
		time.Sleep(interval)
		end := min(sent+n, len(body))
		if _, err := io.WriteString(c, body[sent:end]); err != nil {
			return sent
		}
		sent = end
	}
	return sent
}

// A R.U.D.Y.-style body: every pause is shorter than BodyReadTimeout, but
// 20 bytes per 100 ms (200 B/s) is below BodyMinRate (1,000 B/s). With the
// first 300 ms of waiting free, the body has paid for 0.3 s + 0.2 s per
// second waited, so the guard ends it after about 375 ms, long before the
// 10,000 bytes would have arrived (50 s).
func TestConn_BodyBelowMinRateIsCutAfterTheGrace(t *testing.T) {
	log := observetest.Security(t)
	lim := defaultLimits()
	lim.BodyReadTimeout = 300 * time.Millisecond
	lim.BodyMinRate = 1000
	g := startGuarded(t, lim)
	c := g.dial(t)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(c, "POST /rudy HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() { done <- drip(c, strings.Repeat("x", 10000), 20, 100*time.Millisecond) }()
	b := expectClosed(t, c)
	took := time.Since(start)
	_ = c.Close()
	sent := <-done
	if len(b) != 0 {
		t.Errorf("answer %q, want none", b)
	}
	if took < 300*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("connection ended after %v, want about 375ms (grace 300ms + what 200 B/s pays for)", took)
	}
	if sent >= 10000 {
		t.Errorf("the whole body was sent")
	}
	seen, errs := g.served()
	if strings.Join(seen, ",") != "POST /rudy" || len(errs) != 1 {
		t.Errorf("handler saw %v with body errors %v, want one failed body read", seen, errs)
	}
	if got := log.String(); !strings.Contains(got, `"reason":"body-too-slow"`) || !strings.Contains(got, `"stage":"protocol"`) {
		t.Errorf("security log = %q, want a protocol/body-too-slow event", got)
	}
}

// The same drip above the rate (40 bytes per 100 ms = 400 B/s against a
// minimum of 200 B/s) goes through whole.
func TestConn_BodyAboveMinRateIsServed(t *testing.T) {
	lim := defaultLimits()
	lim.BodyReadTimeout = 300 * time.Millisecond
	lim.BodyMinRate = 200
	dripPOST(t, lim, "/steady", 400, 40)
}

// Only time spent waiting for the client counts: a handler that takes the
// body slowly (as a slow upstream would) does not make a fast client slow.
// The client sends 64 KiB at once; the handler takes 1 KiB every 10 ms
// (about 0.7 s in all). Counted by the clock, the body would be cut after
// about 360 ms (300 ms free + 64 KiB at 1 MiB/s); only the guard's own
// waits count, and those are short.
func TestConn_SlowReaderDoesNotMakeTheClientSlow(t *testing.T) {
	lim := defaultLimits()
	lim.BodyReadTimeout = 300 * time.Millisecond
	lim.BodyMinRate = 1 << 20
	g := &guarded{}
	serveGuarded(t, g, lim, nil, slowReader(g, 1024, 10*time.Millisecond))
	c := g.dial(t)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	body := strings.Repeat("z", 64<<10)
	if _, err := io.WriteString(c, "POST /bulk HTTP/1.1\r\nHost: a.example\r\nContent-Length: 65536\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	if got := readAnswer(t, br); got.status != 200 || got.body != "POST /bulk 65536" {
		t.Errorf("answer = %+v, want 200 POST /bulk 65536", got)
	}
}

// Without a minimum rate the drip that TestConn_BodyBelowMinRateIsCut cuts
// is bounded only per pause: it is still being read after 800 ms.
func TestConn_NoMinRateBoundsOnlyThePause(t *testing.T) {
	lim := defaultLimits()
	lim.BodyReadTimeout = 300 * time.Millisecond
	dripPOST(t, lim, "/drip", 180, 20)
}

// dripPOST sends a POST of size bytes to path on a guarded server with
// lim, chunk bytes every 100 ms, and fails unless all of it is sent and
// answered with 200 "POST path size".
func dripPOST(t *testing.T, lim protoguard.Limits, path string, size, chunk int) {
	t.Helper()
	g := startGuarded(t, lim)
	c := g.dial(t)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n", path, size); err != nil {
		t.Fatal(err)
	}
	if sent := drip(c, strings.Repeat("x", size), chunk, 100*time.Millisecond); sent != size {
		t.Fatalf("sent %d of %d bytes", sent, size)
	}
	want := fmt.Sprintf("POST %s %d", path, size)
	if got := readAnswer(t, br); got.status != 200 || got.body != want {
		t.Errorf("answer = %+v, want 200 %s", got, want)
	}
}

// slowReader is startGuarded's handler taking the body n bytes at a time,
// every interval (as an upstream that takes a body slowly would).
func slowReader(g *guarded, n int, every time.Duration) http.Handler {
	return echoHandler(g, func(body io.Reader) (int64, error) {
		return io.Copy(io.Discard, &pacedReader{r: body, n: n, every: every})
	})
}

type pacedReader struct {
	r     io.Reader
	n     int
	every time.Duration
}

func (p *pacedReader) Read(b []byte) (int, error) {
	time.Sleep(p.every)
	return p.r.Read(b[:min(len(b), p.n)])
}
