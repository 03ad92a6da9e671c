package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	maxBody   = 64 << 10 // bytes of a response body kept for comparison
	userAgent = "rampart-audit"
)

// response is what one probe got back.
type response struct {
	Status  int
	Header  http.Header
	Body    []byte // at most maxBody
	Len     int    // body bytes read (capped)
	Closed  bool   // the connection closed without a response
	Timeout bool   // no response within the timeout
	Err     error  // could not connect or complete the handshake
	Skipped bool   // not sent: budget exhausted
	target  string // the request-target sent, for normalisation
}

// answered reports whether an HTTP response came back.
func (r *response) answered() bool { return r.Status != 0 }

func (r *response) is2xx() bool { return r.Status >= 200 && r.Status < 300 }
func (r *response) is3xx() bool { return r.Status >= 300 && r.Status < 400 }

// String is the short form used in evidence: "403", "closed", "timeout".
func (r *response) String() string {
	switch {
	case r.Skipped:
		return "not sent (budget)"
	case r.Status != 0:
		s := strconv.Itoa(r.Status)
		if r.is3xx() {
			if loc := r.Header.Get("Location"); loc != "" {
				s += " → " + clip(loc, 80)
			}
		}
		return s
	case r.Timeout:
		return "timeout"
	case r.Closed:
		return "closed"
	case r.Err != nil:
		return "error: " + clip(r.Err.Error(), 100)
	}
	return "no answer"
}

// long adds the body length to String.
func (r *response) long() string {
	if r.Status == 0 {
		return r.String()
	}
	return fmt.Sprintf("%s (%d bytes)", r.String(), r.Len)
}

// httpTLS is the client config of HTTP probes: any version and suite the
// target may insist on, no verification (the certificate checks do that),
// HTTP/1.1 only.
func (a *auditor) httpTLS(sni string) *tls.Config {
	return &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, // verified by the tls.cert.* checks
		NextProtos:         []string{"http/1.1"},
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       allSuites(),
	}
}

// allSuites is every TLS 1.0–1.2 suite Go can offer, secure ones first.
func allSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

// dialTCP opens a paced TCP connection to the target.
func (a *auditor) dialTCP(ctx context.Context) (net.Conn, error) {
	if err := a.pace.Wait(ctx); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: a.t.timeout}
	return d.DialContext(ctx, "tcp", a.t.addr)
}

// dialTLS opens a paced TLS connection. A connection closed before the
// handshake finished without a TLS alert (a connection cap or handshake
// rate limit on the target) is retried twice after a pause, so that such
// limits are not mistaken for a refused version or suite.
func (a *auditor) dialTLS(ctx context.Context, conf *tls.Config) (*tls.Conn, error) {
	var last error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 400 * time.Millisecond):
			}
		}
		raw, err := a.dialTCP(ctx)
		if err != nil {
			return nil, err
		}
		c := tls.Client(raw, conf)
		hctx, cancel := context.WithTimeout(ctx, a.t.timeout)
		err = c.HandshakeContext(hctx)
		cancel()
		if err == nil {
			return c, nil
		}
		_ = raw.Close()
		last = err
		if !closedEarly(err) {
			return nil, err
		}
	}
	return nil, last
}

// closedEarly reports a connection closed or reset by the peer.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

// isHandshakeRefusal reports a handshake the target refused on purpose: a
// TLS alert, a closed connection, or a server answer our config rejects
// (for instance a version we did not offer). Network errors are not.
func isHandshakeRefusal(err error) bool {
	if err == nil {
		return false
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		return true
	}
	if closedEarly(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if errors.As(err, &oe) && (oe.Op == "dial" || oe.Op == "read" || oe.Op == "write") {
		return false
	}
	return strings.HasPrefix(err.Error(), "tls: ")
}

// req builds a request with the primary Host and the given target.
func (a *auditor) req(method, target string, extra ...string) string {
	return a.reqHost(method, target, a.t.hostHdr, extra...)
}

func (a *auditor) reqHost(method, target, host string, extra ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\n")
	if host != "" {
		b.WriteString("Host: " + host + "\r\n")
	}
	b.WriteString("User-Agent: " + userAgent + "\r\nAccept: */*\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// once sends raw on a new connection with the given SNI and reads one
// response. It counts against the budget.
func (a *auditor) once(ctx context.Context, sni, method, raw string) *response {
	if !a.take() {
		return &response{Skipped: true}
	}
	c, err := a.dialTLS(ctx, a.httpTLS(sni))
	if err != nil {
		if isHandshakeRefusal(err) && !closedEarly(err) {
			return &response{Err: fmt.Errorf("handshake refused: %w", err)}
		}
		if closedEarly(err) {
			return &response{Closed: true, Err: err}
		}
		return &response{Err: err}
	}
	defer c.Close()
	r, _ := exchange(c, bufio.NewReader(c), method, raw, a.t.timeout)
	return r
}

// onceTCP is once without TLS.
func (a *auditor) onceTCP(ctx context.Context, raw string) ([]byte, error) {
	if !a.take() {
		return nil, errBudget
	}
	c, err := a.dialTCP(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(a.t.timeout))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, err
	}
	buf := make([]byte, 512)
	n, err := io.ReadAtLeast(c, buf, 12)
	return buf[:n], err
}

var errBudget = errors.New("budget exhausted")

// exchange writes raw and reads one response. keep reports whether the
// connection can carry another request.
func exchange(c net.Conn, br *bufio.Reader, method, raw string, timeout time.Duration) (r *response, keep bool) {
	r = &response{target: requestTarget(raw)}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, raw); err != nil {
		r.Closed = true
		r.Err = err
		return r, false
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			r.Timeout = true
		case closedEarly(err):
			r.Closed = true
		default:
			r.Err = err
		}
		return r, false
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	r.Header = resp.Header
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	r.Body = body
	r.Len = len(body)
	if err != nil {
		return r, false
	}
	// Anything left over beyond maxBody: give up the connection rather
	// than read a large body.
	if n, _ := io.CopyN(io.Discard, resp.Body, 1); n > 0 {
		return r, false
	}
	return r, !resp.Close
}

// requestTarget extracts the target from a raw request line.
func requestTarget(raw string) string {
	line, _, _ := strings.Cut(raw, "\r\n")
	parts := strings.Split(line, " ")
	if len(parts) >= 2 {
		return parts[1]
	}
	return ""
}

// pconn is an idle keep-alive connection of the pool.
type pconn struct {
	c  *tls.Conn
	br *bufio.Reader
}

// do sends raw over a pooled keep-alive connection with the primary SNI
// (at most Concurrency at once) and reads one response. It counts against
// the budget.
func (a *auditor) do(ctx context.Context, method, raw string) *response {
	if !a.take() {
		return &response{Skipped: true}
	}
	return a.doUnbudgeted(ctx, method, raw)
}

// acquire takes one of the Concurrency slots; false when ctx ends first.
func (a *auditor) acquire(ctx context.Context) bool {
	select {
	case a.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// release gives back a slot taken by acquire.
func (a *auditor) release() { <-a.sem }

func (a *auditor) doUnbudgeted(ctx context.Context, method, raw string) *response {
	if !a.acquire(ctx) {
		return &response{Err: ctx.Err()}
	}
	defer a.release()
	for attempt := 0; ; attempt++ {
		var pc *pconn
		select {
		case pc = <-a.idle:
		default:
		}
		reused := pc != nil
		if pc == nil {
			c, err := a.dialTLS(ctx, a.httpTLS(a.t.sni))
			if err != nil {
				if closedEarly(err) {
					return &response{Closed: true, Err: err}
				}
				return &response{Err: err}
			}
			pc = &pconn{c: c, br: bufio.NewReader(c)}
		}
		r, keep := exchange(pc.c, pc.br, method, raw, a.t.timeout)
		if reused && r.Closed && attempt == 0 {
			// The server closed the idle connection: not an answer.
			_ = pc.c.Close()
			continue
		}
		if keep {
			select {
			case a.idle <- pc:
			default:
				_ = pc.c.Close()
			}
		} else {
			_ = pc.c.Close()
		}
		return r
	}
}

func (a *auditor) closeIdle() {
	for {
		select {
		case pc := <-a.idle:
			_ = pc.c.Close()
		default:
			return
		}
	}
}

// randToken is 10 random lowercase letters and digits.
func randToken() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	reHexRun = regexp.MustCompile(`[0-9a-fA-F-]{8,}`)
	reDigits = regexp.MustCompile(`[0-9]+`)
)

// fingerprint is a hash of the body with what varies between requests for
// the same resource removed: the request-target as echoed back (raw,
// decoded, cleaned), request ids and other long hex runs, numbers.
func (r *response) fingerprint() string {
	body := r.Body
	if t := r.target; t != "" {
		forms := []string{t}
		if u, err := url.PathUnescape(t); err == nil {
			forms = append(forms, u, path.Clean(u))
		}
		for _, f := range forms {
			if len(f) > 1 {
				body = bytes.ReplaceAll(body, []byte(f), nil)
				body = bytes.ReplaceAll(body, []byte(htmlEscape(f)), nil)
			}
		}
	}
	body = reHexRun.ReplaceAll(body, []byte("#"))
	body = reDigits.ReplaceAll(body, []byte("#"))
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:8])
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// similar reports whether two responses look like the same page: same
// status and the same body once the varying parts are removed (or, for
// large bodies, lengths within 2%).
func similar(x, y *response) bool {
	if x == nil || y == nil || !x.answered() || !y.answered() || x.Status != y.Status {
		return false
	}
	if x.fingerprint() == y.fingerprint() {
		return true
	}
	lo, hi := min(x.Len, y.Len), max(x.Len, y.Len)
	return lo >= 512 && (hi-lo)*50 <= hi
}

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
