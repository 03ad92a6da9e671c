package audit

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The slow-request probes hold a connection the way slowloris and slow
// POST (R.U.D.Y.) do: a request sent so slowly that a server bounding only
// each pause, not the whole, waits for it for as long as the client likes.
// Each probe holds one connection for at most SlowFor, and both run at the
// same time since they mostly wait.

const (
	idSlowHeaders = "limits.slow-headers"
	idSlowBody    = "limits.slow-body"

	slowTick      = time.Second // one drip a second
	slowBodyChunk = 10          // body bytes per drip
	slowBodyLen   = 1_000_000   // Content-Length declared by the slow POST
)

// slowHeaderLine is dripped a byte at a time after the request line and
// Host, over and over: header lines, never the empty line that ends a head.
const slowHeaderLine = "X-Slow-Audit: 1\r\n"

func slowHeaderDrip(i int) []byte {
	return []byte{slowHeaderLine[i%len(slowHeaderLine)]}
}

// slowBodyDrip is the i-th 10 bytes of a form body "audit=xxxx…".
func slowBodyDrip(i int) []byte {
	if i == 0 {
		return []byte("audit=xxxx")
	}
	return []byte(strings.Repeat("x", slowBodyChunk))
}

// slowOutcome is what one slow probe saw.
type slowOutcome struct {
	held        time.Duration // from the end of the handshake to the close, answer or bound
	sent        int           // bytes dripped after the first write
	status      int           // the answer's status; 0: none
	closed      bool          // the target closed the connection without an answer
	open        bool          // still open when SlowFor was reached
	err         error         // closed with an error worth showing, or could not connect
	skipped     bool          // not sent: budget exhausted
	interrupted bool          // ctx ended first
}

// runSlow runs limits.slow-headers and limits.slow-body side by side, or
// reports them skipped without --slow.
func (a *auditor) runSlow(ctx context.Context) {
	if !a.t.slow {
		a.add(CatLimits, idSlowHeaders, Skip, "not run: --slow sends a request head a byte a second and looks for the server to close the connection within --slow-for")
		a.add(CatLimits, idSlowBody, Skip, "not run: --slow sends a POST body 10 bytes a second and looks for the server to close the connection within --slow-for")
		return
	}
	postPath := "/"
	if len(a.t.expect) > 0 {
		postPath = strings.TrimSuffix(a.t.expect[0], "*")
	}
	head := strings.TrimSuffix(a.req("GET", "/"), "\r\n") // unfinished: no empty line
	post := a.req("POST", postPath, "Content-Type: application/x-www-form-urlencoded", fmt.Sprintf("Content-Length: %d", slowBodyLen))
	var hdr, body slowOutcome
	var wg sync.WaitGroup
	wg.Go(func() { hdr = a.slowProbe(ctx, "GET", head, slowHeaderDrip) })
	wg.Go(func() { body = a.slowProbe(ctx, "POST", post, slowBodyDrip) })
	wg.Wait()
	a.reportSlowHeaders(hdr)
	a.reportSlowBody(postPath, body)
}

func (a *auditor) reportSlowHeaders(o slowOutcome) {
	const id = idSlowHeaders
	unit := "bytes"
	if o.sent == 1 {
		unit = "byte"
	}
	what := fmt.Sprintf("%d header %s sent after the request line, one a second, the head never finished", o.sent, unit)
	switch {
	case o.skipped:
		a.skipBudget(CatLimits, id)
	case o.interrupted:
		a.add(CatLimits, id, Skip, "interrupted after %s", secs(o.held))
	case o.status != 0:
		a.add(CatLimits, id, Pass, "answered %d after %s, %s", o.status, secs(o.held), what)
	case o.closed:
		a.add(CatLimits, id, Pass, "closed after %s without an answer%s, %s", secs(o.held), errNote(o.err), what)
	case o.open:
		a.add(CatLimits, id, Warn, "still open after %s, %s: the target still waits for an unfinished request head (slowloris); bound the time a whole head may take", secs(o.held), what)
	default:
		a.add(CatLimits, id, Skip, "no connection: %s", clip(o.err.Error(), 100))
	}
}

func (a *auditor) reportSlowBody(postPath string, o slowOutcome) {
	const id = idSlowBody
	req := fmt.Sprintf("POST %s with Content-Length %d", postPath, slowBodyLen)
	what := fmt.Sprintf("%d bytes of body sent, %d a second", o.sent, slowBodyChunk)
	switch {
	case o.skipped:
		a.skipBudget(CatLimits, id)
	case o.interrupted:
		a.add(CatLimits, id, Skip, "%s: interrupted after %s", req, secs(o.held))
	case o.status != 0 && o.sent == 0:
		how := "refused up front"
		if o.status < 400 {
			how = "answered without waiting for the body"
		}
		a.add(CatLimits, id, Pass, "%s: answered %d after %s, before any body byte was sent (%s; the body rate itself was not tested)", req, o.status, secs(o.held), how)
	case o.status != 0:
		a.add(CatLimits, id, Pass, "%s: answered %d after %s, %s", req, o.status, secs(o.held), what)
	case o.closed:
		a.add(CatLimits, id, Pass, "%s: closed after %s without an answer%s, %s", req, secs(o.held), errNote(o.err), what)
	case o.open:
		a.add(CatLimits, id, Warn, "%s: still open after %s, %s: the target still waits for a body trickling in (slow POST, R.U.D.Y.); bound a body's total time or require a minimum rate", req, secs(o.held), what)
	default:
		a.add(CatLimits, id, Skip, "%s: no connection: %s", req, clip(o.err.Error(), 100))
	}
}

// secs formats a duration as seconds with one decimal: "10.4s".
func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// errNote is " (err)" for a close that was not a plain EOF or reset.
func errNote(err error) string {
	if err == nil || closedEarly(err) {
		return ""
	}
	return " (" + clip(err.Error(), 80) + ")"
}

type slowRead struct {
	at     time.Time
	status int
	err    error
}

// slowProbe opens a connection, writes head and then, once a second, the
// next drip(i) bytes, until the target answers or closes the connection,
// SlowFor has passed or ctx ends. It counts against the budget and holds
// one of the Concurrency slots.
func (a *auditor) slowProbe(ctx context.Context, method, head string, drip func(i int) []byte) slowOutcome {
	if !a.take() {
		return slowOutcome{skipped: true}
	}
	if !a.acquire(ctx) {
		return slowOutcome{interrupted: true}
	}
	defer a.release()
	c, err := a.dialTLS(ctx, a.httpTLS(a.t.sni))
	if err != nil {
		if ctx.Err() != nil {
			return slowOutcome{interrupted: true}
		}
		return slowOutcome{err: err}
	}
	defer c.Close()
	start := time.Now()
	bound := start.Add(a.t.slowFor)
	_ = c.SetReadDeadline(bound)
	reads := make(chan slowRead, 1)
	go func() {
		br := bufio.NewReader(c)
		for {
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err == nil && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
				continue // an interim 100 is not the answer
			}
			r := slowRead{at: time.Now(), err: err}
			if err == nil {
				r.status = resp.StatusCode
			}
			reads <- r
			return
		}
	}()
	write := func(b []byte) error {
		_ = c.SetWriteDeadline(time.Now().Add(a.t.timeout))
		_, err := c.Write(b)
		return err
	}

	var o slowOutcome
	var writeErr error
	var writeErrAt time.Time
	if err := write([]byte(head)); err != nil {
		writeErr, writeErrAt = err, time.Now()
		_ = c.SetReadDeadline(closeGrace(bound))
	}
	tick := time.NewTicker(slowTick)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case r := <-reads:
			switch {
			case r.err == nil:
				o.status = r.status
				o.held = r.at.Sub(start)
			case writeErr != nil && isTimeout(r.err):
				// The write failed and nothing came back: closed.
				o.closed, o.err = true, writeErr
				o.held = writeErrAt.Sub(start)
			case isTimeout(r.err):
				o.open = true
				o.held = r.at.Sub(start)
			default:
				o.closed, o.err = true, r.err
				o.held = r.at.Sub(start)
			}
			return o
		case <-ctx.Done():
			_ = c.Close()
			<-reads
			return slowOutcome{interrupted: true, held: time.Since(start), sent: o.sent}
		case <-tick.C:
			if writeErr != nil || !time.Now().Before(bound) {
				continue // the reader ends it
			}
			b := drip(i)
			i++
			if err := write(b); err != nil {
				writeErr, writeErrAt = err, time.Now()
				_ = c.SetReadDeadline(closeGrace(bound))
				continue
			}
			o.sent += len(b)
		}
	}
}

// closeGrace is the read deadline after a failed write: a second for the
// reader to see an answer or the close that came first, within the bound.
func closeGrace(bound time.Time) time.Time {
	if g := time.Now().Add(time.Second); g.Before(bound) {
		return g
	}
	return bound
}
