package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/rampart-proxy/rampart/internal/deadline"
)

// The direct path sends a request without a body (GET, HEAD, most API
// calls) to a plain-HTTP upstream on the handler's own goroutine: it writes
// the request and reads the response head on a pooled keepalive
// connection, where http.Transport hands each request to a writer
// goroutine and each response back from a reader goroutine — four
// goroutine switches per request on the proxy's busiest path. Requests
// with a body, WebSocket upgrades and HTTPS upstreams keep using
// http.Transport.
//
// Parsing and framing are net/http's own (Request.Write, ReadResponse); this
// file only owns the connection: its pool, its deadlines and when it may
// be reused.

// maxResponseHeaderBytes bounds an upstream's response head (both paths).
const maxResponseHeaderBytes = 1 << 20

// idleConnTimeout closes keepalive connections unused for this long (both
// paths).
const idleConnTimeout = 90 * time.Second

// max1xx bounds the informational answers (103 Early Hints, 102) an
// upstream may send before its final one, as http.Transport does.
const max1xx = 5

// directPool holds one target's idle keepalive connections, most recently
// used first out.
type directPool struct {
	dial        func(ctx context.Context) (net.Conn, error)
	max         int
	idleTimeout time.Duration // idleConnTimeout; shorter in tests
	readTimeout time.Duration // upstream.read_timeout: longest pause in a body; 0: none

	mu        sync.Mutex
	idle      []*directConn // oldest first
	closed    bool
	reapArmed bool        // a reap is scheduled
	reaper    *time.Timer // the last one scheduled
}

type directConn struct {
	nc        net.Conn
	lr        headLimit
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	readBy    deadline.Rolling // the body's read deadline

	// For quiet: the socket (nil when nc is not one) and its peek, made
	// once per connection rather than on every reuse.
	raw     syscall.RawConn
	peekFn  func(fd uintptr) bool
	peekErr error
}

// headLimit counts what is read from the upstream and refuses more than
// left bytes while a response head is read.
type headLimit struct {
	nc   net.Conn
	left int64 // < 0: no limit (body)
	read int64 // bytes read for the current request
}

var errHeadTooLarge = errors.New("upstream response head larger than 1 MiB")

func (l *headLimit) Read(p []byte) (int, error) {
	if l.left >= 0 {
		if l.left == 0 {
			return 0, errHeadTooLarge
		}
		if int64(len(p)) > l.left {
			p = p[:l.left]
		}
	}
	n, err := l.nc.Read(p)
	l.read += int64(n)
	if l.left >= 0 {
		l.left -= int64(n)
	}
	return n, err
}

func newDirectConn(nc net.Conn) *directConn {
	c := &directConn{nc: nc}
	c.lr.nc = nc
	c.lr.left = -1
	c.br = bufio.NewReaderSize(&c.lr, 4<<10)
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.raw, c.peekFn = rc, c.peek
		}
	}
	return c
}

// get returns an idle connection (reused = true), or dials a new one. An
// idle connection is used only if the upstream has sent nothing on it
// since its last answer: bytes there (a late body, an unsolicited 408) or
// its close would otherwise be read as the answer to this request.
func (p *directPool) get(ctx context.Context) (c *directConn, reused bool, err error) {
	for {
		p.mu.Lock()
		stale := p.pruneLocked(time.Now())
		if n := len(p.idle); n > 0 {
			c = p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
		}
		p.mu.Unlock()
		closeAll(stale)
		if c == nil {
			break
		}
		if c.quiet() {
			return c, true, nil
		}
		_ = c.nc.Close()
		c = nil
	}
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	return newDirectConn(nc), false, nil
}

// pruneLocked takes the connections idle for longer than idleTimeout out of
// the pool (the oldest are at the front) and returns them to be closed.
func (p *directPool) pruneLocked(now time.Time) []*directConn {
	stale := 0
	for stale < len(p.idle) && now.Sub(p.idle[stale].idleSince) > p.idleTimeout {
		stale++
	}
	if stale == 0 {
		return nil
	}
	old := append([]*directConn(nil), p.idle[:stale]...)
	n := copy(p.idle, p.idle[stale:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	return old
}

func closeAll(conns []*directConn) {
	for _, c := range conns {
		_ = c.nc.Close()
	}
}

// quiet reports whether nothing has arrived on the idle connection: no
// byte and no end of stream. One non-blocking peek.
func (c *directConn) quiet() bool {
	if c.br.Buffered() > 0 || c.raw == nil { // not a socket: never reused
		return false
	}
	err := c.raw.Read(c.peekFn)
	return err == nil && c.peekErr == syscall.EAGAIN
}

// peek looks at the socket without waiting or consuming.
func (c *directConn) peek(fd uintptr) bool {
	var b [1]byte
	_, _, c.peekErr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true // never wait
}

// put keeps c for the next request, or closes it when the pool is full
// or closed. Connections left idle are closed after idleTimeout even
// without traffic.
func (p *directPool) put(c *directConn) {
	c.idleSince = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.max {
		p.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	if !p.reapArmed {
		p.reapArmed = true
		p.reaper = time.AfterFunc(p.idleTimeout, p.reap)
	}
	p.mu.Unlock()
}

// reap closes the connections idle too long and comes back when the
// oldest remaining one will be.
func (p *directPool) reap() {
	now := time.Now()
	p.mu.Lock()
	stale := p.pruneLocked(now)
	if len(p.idle) > 0 && !p.closed {
		p.reaper = time.AfterFunc(p.idle[0].idleSince.Add(p.idleTimeout).Sub(now)+time.Millisecond, p.reap)
	} else {
		p.reapArmed = false
	}
	p.mu.Unlock()
	closeAll(stale)
}

// close closes the idle connections; connections in use are closed when
// their response ends.
func (p *directPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	if p.reaper != nil {
		p.reaper.Stop()
	}
	p.mu.Unlock()
	closeAll(idle)
}

// directEligible reports whether req can take the direct path: no body and
// no protocol upgrade.
func directEligible(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	if req.ContentLength != 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	_, upgrade := req.Header["Upgrade"]
	return !upgrade
}

// roundTrip sends req on a pooled connection. If a reused connection ends
// before any byte of an answer (the upstream closed it just as it was
// taken), the request goes out once more on a new connection — only if
// it can be repeated safely: it never reached the upstream, or its method
// is idempotent (RFC 9110 9.2.2) or it carries an idempotency key, as
// http.Transport decides. A timeout is never repeated.
func (p *directPool) roundTrip(req *http.Request, headerTimeout time.Duration) (*http.Response, error) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, wrote, err := c.do(req, headerTimeout, p)
		if err == nil {
			return resp, nil
		}
		_ = c.nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout()
		if attempt == 0 && reused && c.lr.read == 0 && !timeout && (!wrote || replayable(req)) {
			continue
		}
		return nil, err
	}
}

// replayable is http.Transport's rule for sending a request again.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// wantsClose reports a request that ends its connection.
func wantsClose(req *http.Request) bool {
	if req.Close {
		return true
	}
	for _, v := range req.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "close") {
				return true
			}
		}
	}
	return false
}

// validHeader is http.Transport's check of the names and values it sends.
func validHeader(h http.Header) error {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("invalid header field value for %q", k)
			}
		}
	}
	return nil
}

// testHookHeadRead runs, in tests only, between reading a response head
// and clearing the header deadline.
var testHookHeadRead func(ctx context.Context)

// aLongTimeAgo is a deadline that makes a blocked read or write return.
var aLongTimeAgo = time.Unix(1, 0)

// do writes req and reads the response head; the body is read by the
// caller through directBody, which gives the connection back at its end.
// wrote reports whether any of the request may have reached the upstream.
func (c *directConn) do(req *http.Request, headerTimeout time.Duration, p *directPool) (resp *http.Response, wrote bool, err error) {
	if err := validHeader(req.Header); err != nil {
		return nil, false, err
	}
	ctx := req.Context()
	c.lr.read = 0
	if hadBody := c.readBy.Forget(); headerTimeout > 0 {
		_ = c.nc.SetDeadline(time.Now().Add(headerTimeout))
	} else if hadBody {
		_ = c.nc.SetDeadline(time.Time{}) // the last body's deadline
	}
	// The client leaving ends the upstream exchange at once. Registered
	// after the deadline above so that it cannot be overwritten by it.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		return nil, wrote, err
	}
	wrote = true // from here on, bytes may have left (bufio flushes when full)
	if err := req.Write(c.bw); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	trace := httptrace.ContextClientTrace(ctx)
	c.lr.left = maxResponseHeaderBytes
	for n := 0; ; n++ {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		code := resp.StatusCode
		if code < 100 || code > 199 {
			break
		}
		if code == http.StatusSwitchingProtocols || n == max1xx {
			return fail(errors.New("upstream sent an unexpected informational answer"))
		}
		if code != http.StatusContinue && trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
		c.lr.left = maxResponseHeaderBytes
	}
	c.lr.left = -1
	if testHookHeadRead != nil {
		testHookHeadRead(ctx)
	}
	if headerTimeout > 0 || p.readTimeout > 0 {
		// From the head to the body's deadline: read_timeout per pause,
		// pushed forward as the body comes (directBody.Read).
		var by time.Time
		if p.readTimeout > 0 {
			by, _ = c.readBy.Next(p.readTimeout) // forgotten above: always due
		}
		_ = c.nc.SetDeadline(by)
		// The client may have left while the deadline was replaced.
		if ctx.Err() != nil {
			_ = c.nc.SetDeadline(aLongTimeAgo)
		}
	}
	resp.Body = &directBody{rc: resp.Body, c: c, p: p, ctx: ctx, stop: stop,
		// After HEAD nothing may follow the head, but an upstream that
		// sends a body anyway could do so late: no reuse.
		reuse: !resp.Close && !wantsClose(req) && req.Method != http.MethodHead}
	return resp, true, nil
}

// directBody is the response body; at its end the connection goes back to
// the pool if the exchange ended cleanly, and is closed otherwise.
type directBody struct {
	rc    io.ReadCloser
	c     *directConn
	p     *directPool
	ctx   context.Context
	stop  func() bool
	reuse bool
	done  bool
}

func (b *directBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if t := b.p.readTimeout; t > 0 {
		if by, due := b.c.readBy.Next(t); due {
			_ = b.c.nc.SetReadDeadline(by)
			if b.ctx.Err() != nil { // the client left meanwhile
				_ = b.c.nc.SetDeadline(aLongTimeAgo)
			}
		}
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
		if err != io.EOF && b.ctx.Err() != nil {
			// The client left (the deadline was moved for it): say so,
			// as http.Transport does, rather than "i/o timeout".
			err = b.ctx.Err()
		}
	}
	return n, err
}

func (b *directBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *directBody) finish(clean bool) {
	b.done = true
	// stop is false when the client left meanwhile: the deadline was
	// moved, so the connection is not reused. Bytes beyond the response
	// are an upstream that does not frame its answers.
	if b.stop() && clean && b.reuse && b.c.br.Buffered() == 0 {
		_ = b.rc.Close()
		b.p.put(b.c)
		return
	}
	// Closed first: net/http's body Close would otherwise read the rest
	// of an unfinished body.
	_ = b.c.nc.Close()
	_ = b.rc.Close()
}
