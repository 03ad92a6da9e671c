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
	"sync"
	"time"
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
	dial func(ctx context.Context) (net.Conn, error)
	max  int

	mu     sync.Mutex
	idle   []*directConn // oldest first
	closed bool
}

type directConn struct {
	nc        net.Conn
	lr        headLimit
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
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
	return c
}

// get returns an idle connection (reused = true), or dials a new one.
func (p *directPool) get(ctx context.Context) (c *directConn, reused bool, err error) {
	now := time.Now()
	p.mu.Lock()
	// The oldest connections are at the front: drop those idle too long.
	stale := 0
	for stale < len(p.idle) && now.Sub(p.idle[stale].idleSince) > idleConnTimeout {
		stale++
	}
	var old []*directConn
	if stale > 0 {
		old = append(old, p.idle[:stale]...)
		p.idle = append(p.idle[:0], p.idle[stale:]...)
	}
	if n := len(p.idle); n > 0 {
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	for _, o := range old {
		_ = o.nc.Close()
	}
	if c != nil {
		return c, true, nil
	}
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	return newDirectConn(nc), false, nil
}

// put keeps c for the next request, or closes it when the pool is full
// or closed.
func (p *directPool) put(c *directConn) {
	c.idleSince = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.max {
		p.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// close closes the idle connections; connections in use are closed when
// their response ends.
func (p *directPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
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

// roundTrip sends req on a pooled connection. A reused connection that the
// upstream closed while idle (it answers nothing) is replaced by a new one
// once: the request has no body, so nothing was consumed.
func (p *directPool) roundTrip(req *http.Request, headerTimeout time.Duration) (*http.Response, error) {
	ctx := req.Context()
	for {
		c, reused, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(req, headerTimeout, p)
		if err == nil {
			return resp, nil
		}
		_ = c.nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ne net.Error
		if reused && c.lr.read == 0 && !(errors.As(err, &ne) && ne.Timeout()) {
			continue
		}
		return nil, err
	}
}

// aLongTimeAgo is a deadline that makes a blocked read or write return.
var aLongTimeAgo = time.Unix(1, 0)

// do writes req and reads the response head; the body is read by the
// caller through directBody, which gives the connection back at its end.
func (c *directConn) do(req *http.Request, headerTimeout time.Duration, p *directPool) (*http.Response, error) {
	c.lr.read = 0
	// The client leaving ends the upstream exchange at once.
	stop := context.AfterFunc(req.Context(), func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	if headerTimeout > 0 {
		_ = c.nc.SetDeadline(time.Now().Add(headerTimeout))
	}
	fail := func(err error) (*http.Response, error) {
		stop()
		return nil, err
	}
	if err := req.Write(c.bw); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	trace := httptrace.ContextClientTrace(req.Context())
	c.lr.left = maxResponseHeaderBytes
	var resp *http.Response
	for n := 0; ; n++ {
		var err error
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
	if headerTimeout > 0 {
		_ = c.nc.SetDeadline(time.Time{})
	}
	resp.Body = &directBody{rc: resp.Body, c: c, p: p, stop: stop, reuse: !resp.Close && !req.Close}
	return resp, nil
}

// directBody is the response body; at its end the connection goes back to
// the pool if the exchange ended cleanly, and is closed otherwise.
type directBody struct {
	rc    io.ReadCloser
	c     *directConn
	p     *directPool
	stop  func() bool
	reuse bool
	done  bool
}

func (b *directBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
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
