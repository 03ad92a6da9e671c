// Package protoguard is stages 2 and 3 of the pipeline at the byte level:
// it owns each client connection from the first byte, refuses anything that
// is not a TLS handshake, runs the handshake under the TLS policy, and then
// checks the framing of every HTTP/1.1 request head before net/http sees it.
//
// Why a byte-level guard: net/http is lenient where a proxy must not be. It
// silently drops Content-Length when Transfer-Encoding is present, answers
// HTTP/0.9 with 400, answers `OPTIONS *` itself and accepts duplicate equal
// Content-Length headers. Each of those is a request-smuggling or
// parser-differential risk in front of another server, so the guard parses
// the head strictly itself and hands net/http only heads that are
// unambiguous. Bodies are passed through while the guard tracks their
// framing (Content-Length or chunked), so it always knows where the next
// head starts.
//
// A refused head is replaced by a fixed, well-formed synthetic request; the
// pipeline asks the connection (Conn.Verdict) whether the request it is
// handling is that synthetic one, and answers it with the refusal status,
// the request id and `Connection: close`. That keeps every answer — refusals
// included — inside net/http's response writer, in order.
//
// On the way out the guard coalesces: the pieces net/http writes for one
// response are held back (up to 32 KiB) and leave as one TLS write in one
// system call when the response ends, when the handler flushes, before a
// read that could wait for the client, on upgrade and on close. A 20 KiB
// response costs one write(2) instead of three.
package protoguard

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-proxy/rampart/internal/deadline"
	"github.com/rampart-proxy/rampart/internal/observe"
)

// Limits are the bounds the guard enforces on one connection.
type Limits struct {
	MaxHeaderBytes   int           // request line + headers
	MaxURILength     int           // request-target
	HandshakeTimeout time.Duration // first byte + TLS handshake
	BodyReadTimeout  time.Duration // longest pause between body bytes
	SendTimeout      time.Duration // longest wait for one write to the client
	// BodyMinRate is the number of bytes per second a request body must
	// bring, on average, for the time the guard waits for it beyond a
	// first BodyReadTimeout; 0 (or no BodyReadTimeout) switches the check
	// off. Only time spent
	// waiting for the client counts: a handler that reads slowly (an
	// upstream taking the body slowly) does not make the client slow.
	BodyMinRate int64
}

// Rejection is the guard's verdict on a request head.
type Rejection struct {
	Status int    // HTTP status to answer with
	Stage  string // pipeline stage that refused: "protocol" or "hostgate"
	Reason string // short stable token for logs and metrics
	Line   string // the request line as received, truncated, for the log
}

// syntheticHead replaces a refused head. Its fields are fixed so that no
// byte of the refused request reaches net/http.
const syntheticHead = "GET /rampart-refused HTTP/1.1\r\nHost: refused.invalid\r\n\r\n"

type parseState uint8

const (
	sHandshake parseState = iota
	sHead
	sBody
	sChunkSize
	sChunkData
	sChunkCRLF
	sTrailer
	sPassthrough
	sClosed
)

// Conn is a client connection under the guard. It implements net.Conn for
// net/http; reads return only validated bytes.
type Conn struct {
	raw  net.Conn
	tls  *tls.Conn
	lim  *Limits
	cfg  func() *tls.Config
	gate func(netip.AddrPort) bool

	mu        sync.Mutex // guards the read side
	st        parseState
	buf       []byte
	r, ok, w  int // buf[r:ok] validated and not yet read; buf[ok:w] not yet validated
	remaining int64
	trailer   int
	inject    []byte
	err       error

	// The request body under way: how long the guard has waited for the
	// client in it and how many bytes it brought (for BodyMinRate).
	bodyWaited time.Duration
	bodyBytes  int64
	bodyErr    atomic.Pointer[error] // why a body broke off; read by handlers on other goroutines

	heads     atomic.Int64 // heads released, synthetic included
	served    atomic.Int64 // heads taken by the handler
	rejectAt  atomic.Int64
	rejection Rejection
	peer      netip.AddrPort
	state     tls.ConnectionState

	// The write side. A response is written by net/http in pieces (its
	// 4 KiB buffer, then the rest of a large body directly); each piece
	// would be its own TLS record and its own system call. While a request
	// is being answered, the pieces are collected in out (up to
	// coalesceLimit) and written as one TLS write — and, through the
	// raw connection's batch, one system call — at the next flush point:
	// net/http's SetWriteDeadline after each response, a Flush from the
	// handler (streaming), a Read that would block (100-continue),
	// Passthrough (WebSockets) or Close.
	wmu       sync.Mutex
	holding   atomic.Bool                // a request is being answered; set and cleared under wmu
	out       *[]byte                    // non-nil only while holding
	werr      atomic.Pointer[error]      // a failed flush: reported by the next Write, and the next Read ends the connection
	readBy    atomic.Int64               // the read deadline last asked for by SetReadDeadline/SetDeadline, in Unix ns (0: none)
	closing   atomic.Bool                // Close has begun: writes keep the close deadline
	raw2      atomic.Pointer[prefixConn] // the TLS layer's view of raw, which batches records
	closeOnce sync.Once
	onClose   func()

	hookMu     sync.Mutex
	closed     bool
	closeHooks []func()
}

// coalesceLimit bounds the bytes of one response held back before they are
// written; a larger response goes out in pieces of about this size.
const coalesceLimit = 32 << 10

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceLimit); return &b }}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

func newConn(raw net.Conn, lim *Limits, cfg func() *tls.Config, gate func(netip.AddrPort) bool) *Conn {
	c := &Conn{raw: raw, lim: lim, cfg: cfg, gate: gate}
	c.rejectAt.Store(-1)
	if ap, err := netip.ParseAddrPort(raw.RemoteAddr().String()); err == nil {
		c.peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return c
}

// Peer is the TCP peer of the connection.
func (c *Conn) Peer() netip.AddrPort { return c.peer }

// TLS returns the negotiated TLS parameters (valid once a request exists).
func (c *Conn) TLS() *tls.ConnectionState { return &c.state }

// Verdict is called by the pipeline once per request, in order. It returns
// the guard's refusal when the request being handled is the synthetic
// stand-in for a refused head, nil otherwise.
func (c *Conn) Verdict() *Rejection {
	c.wmu.Lock()
	c.holding.Store(c.werr.Load() == nil)
	c.wmu.Unlock()
	if c.served.Add(1)-1 == c.rejectAt.Load() {
		return &c.rejection
	}
	return nil
}

// Passthrough stops framing checks: after a successful WebSocket upgrade the
// connection carries WebSocket frames, not HTTP. Called after the hijack.
// The read buffer goes back to the pool unless it still holds bytes: an
// idle WebSocket should cost as little memory as possible.
func (c *Conn) Passthrough() {
	c.endResponse()
	c.mu.Lock()
	if c.st != sClosed {
		c.st = sPassthrough
		c.ok = c.w
		if c.r == c.w {
			c.releaseBuffer()
		}
	}
	c.mu.Unlock()
}

// releaseBuffer returns the read buffer to the pool (pooled sizes only).
// Called with c.mu held.
func (c *Conn) releaseBuffer() {
	if c.buf != nil && len(c.buf) == 16<<10 {
		b := c.buf
		bufPool.Put(&b)
	}
	c.buf = nil
	c.r, c.ok, c.w = 0, 0, 0
}

var errMalformedBody = errors.New("protoguard: malformed request body framing")

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr.Load() != nil {
		// A response was not delivered although net/http saw its writes
		// succeed: end the connection at its next read instead of serving
		// another request on it.
		return 0, io.EOF
	}
	// A reader of a body may wait for a client that waits for what is held
	// back (a 100 Continue, say): send it first. Not for net/http's
	// background read of the next head, which runs while the handler
	// writes and which no client waits on.
	if c.holding.Load() && c.st >= sBody && c.st <= sTrailer && c.ok == c.r && len(c.inject) == 0 {
		_ = c.Flush()
	}
	for {
		if len(c.inject) > 0 {
			n := copy(p, c.inject)
			c.inject = c.inject[n:]
			return n, nil
		}
		if c.ok > c.r {
			n := copy(p, c.buf[c.r:c.ok])
			c.r += n
			return n, nil
		}
		if c.err != nil {
			return 0, c.err
		}
		switch c.st {
		case sClosed:
			return 0, io.EOF
		case sHandshake:
			if err := c.handshake(); err != nil {
				c.st = sClosed
				c.err = err
				_ = c.raw.Close()
				return 0, err
			}
			c.st = sHead
			continue
		case sPassthrough:
			if c.w > c.r {
				c.ok = c.w
				continue
			}
			return c.tls.Read(p)
		}
		if c.step() {
			continue
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
}

// fill reads more raw bytes. A body read is bounded by bodyWait (the pause
// limit and the minimum rate) and a failed one ends the connection; heads
// are bounded by net/http's header timeout.
func (c *Conn) fill() error {
	if c.buf == nil {
		c.buf = *bufPool.Get().(*[]byte)
	}
	if c.r > 0 {
		copy(c.buf, c.buf[c.r:c.w])
		c.ok -= c.r
		c.w -= c.r
		c.r = 0
	}
	if c.w == len(c.buf) {
		// Only a head fills the buffer (body bytes are released as they
		// come): grow it up to the configured head limit, which step
		// enforces.
		if c.st != sHead || len(c.buf) > c.lim.MaxHeaderBytes {
			return errMalformedBody
		}
		grown := make([]byte, 2*len(c.buf))
		copy(grown, c.buf[:c.w])
		c.buf = grown
	}
	inBody := c.st == sBody || c.st == sChunkData || c.st == sChunkSize || c.st == sChunkCRLF || c.st == sTrailer
	var waitStart time.Time
	var tooSlow bool
	if inBody {
		var wait time.Duration
		waitStart = time.Now()
		if wait, tooSlow = c.bodyWait(); wait > 0 {
			_ = c.raw.SetReadDeadline(waitStart.Add(wait))
		}
	}
	n, err := c.tls.Read(c.buf[c.w:])
	c.w += n
	if inBody {
		c.bodyBytes += int64(n)
		c.bodyWaited += time.Since(waitStart)
	}
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if inBody {
		c.bodyFailed(err, tooSlow)
	}
	return err
}

// bodyFailed ends a connection whose body stalled, was too slow or broke:
// its framing can no longer be trusted, and net/http would otherwise wait
// again. A timeout is a security event, with the figures.
func (c *Conn) bodyFailed(err error, tooSlow bool) {
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		reason := "body-stalled"
		if tooSlow {
			reason = "body-too-slow"
		}
		observe.Default().SecurityConn("protocol", reason, c.peer.Addr().String(),
			slog.Int64("body_bytes", c.bodyBytes), slog.Duration("waited", c.bodyWaited.Round(time.Millisecond)))
	}
	c.st = sClosed
	c.err = err
	c.bodyErr.Store(&err)
}

// BodyFailure is why the request body on this connection broke off
// (stalled, too slow, cut, malformed framing), or nil. A handler that
// sees its request fail, or an upstream exchange fail, asks it to tell
// the client's failure from an upstream's.
func (c *Conn) BodyFailure() error {
	if p := c.bodyErr.Load(); p != nil {
		return *p
	}
	return nil
}

// bodyWait is how long the next read of a body may wait for the client:
// BodyReadTimeout, or less when the body has used up what BodyMinRate
// allows (the first BodyReadTimeout of waiting is free; after that every
// second of waiting must be paid for with BodyMinRate bytes). tooSlow says
// the rate, not the pause, set the bound.
func (c *Conn) bodyWait() (wait time.Duration, tooSlow bool) {
	wait = c.lim.BodyReadTimeout
	if c.lim.BodyMinRate <= 0 || wait <= 0 {
		return wait, false
	}
	// In float seconds: bytes/rate can exceed what a Duration holds (a
	// large upload at a small rate), and wrapping would cut a fast body.
	left := wait.Seconds() + float64(c.bodyBytes)/float64(c.lim.BodyMinRate) - c.bodyWaited.Seconds()
	if left >= wait.Seconds() {
		return wait, false
	}
	// A deadline in the past makes the read fail at once; 1ns is the
	// nearest to "now" that SetReadDeadline does not read as "none".
	return max(time.Duration(left*float64(time.Second)), time.Nanosecond), true
}

// step advances the parser over buffered bytes. It reports whether it made
// progress; false means more bytes are needed.
func (c *Conn) step() bool {
	data := c.buf[c.ok:c.w]
	switch c.st {
	case sHead:
		for len(data) >= 2 && data[0] == '\r' && data[1] == '\n' {
			// RFC 9112 2.2: ignore empty lines before a request line.
			copy(c.buf[c.ok:], c.buf[c.ok+2:c.w])
			c.w -= 2
			data = c.buf[c.ok:c.w]
		}
		end := bytes.Index(data, []byte("\r\n\r\n"))
		if end < 0 {
			if len(data) > c.lim.MaxHeaderBytes {
				if bytes.IndexByte(data, '\n') < 0 && len(data) > c.lim.MaxURILength {
					c.reject(Rejection{Status: http.StatusRequestURITooLong, Stage: "protocol", Reason: "uri-too-long", Line: firstLine(data)})
				} else {
					c.reject(Rejection{Status: http.StatusRequestHeaderFieldsTooLarge, Stage: "protocol", Reason: "header-too-large", Line: firstLine(data)})
				}
				return true
			}
			if reason := lineEndings(data); reason != "" && bytes.Contains(data, []byte("\n\n")) {
				c.reject(Rejection{Status: http.StatusBadRequest, Stage: "protocol", Reason: reason, Line: firstLine(data)})
				return true
			}
			if bytes.HasPrefix(data, []byte("PRI * HTTP/2.0")) {
				c.drop("http2-preface", data)
				return true
			}
			return false
		}
		head := data[:end+4]
		if len(head) > c.lim.MaxHeaderBytes {
			c.reject(Rejection{Status: http.StatusRequestHeaderFieldsTooLarge, Stage: "protocol", Reason: "header-too-large", Line: firstLine(data)})
			return true
		}
		f, rej := parseHead(head, c.lim)
		if rej != nil {
			if rej.Status == 0 {
				c.drop(rej.Reason, head)
			} else {
				c.reject(*rej)
			}
			return true
		}
		c.ok += len(head)
		c.heads.Add(1)
		switch {
		case f.chunked:
			c.st = sChunkSize
		case f.contentLength > 0:
			c.st = sBody
			c.remaining = f.contentLength
		}
		// Body bytes that came with the head count for the body.
		c.bodyWaited, c.bodyBytes = 0, int64(c.w-c.ok)
		if c.st == sBody {
			c.bodyBytes = min(c.bodyBytes, c.remaining)
		}
		return true
	case sBody, sChunkData:
		if len(data) == 0 {
			return false
		}
		n := int64(len(data))
		if n > c.remaining {
			n = c.remaining
		}
		c.ok += int(n)
		c.remaining -= n
		if c.remaining == 0 {
			if c.st == sBody {
				c.bodyDone()
			} else {
				c.st = sChunkCRLF
			}
		}
		return true
	case sChunkCRLF:
		if len(data) < 2 {
			return false
		}
		if data[0] != '\r' || data[1] != '\n' {
			return c.badBody("chunk-missing-crlf")
		}
		c.ok += 2
		c.st = sChunkSize
		return true
	case sChunkSize:
		i := bytes.Index(data, []byte("\r\n"))
		if i < 0 {
			if len(data) > 1024 {
				return c.badBody("chunk-size-line-too-long")
			}
			return false
		}
		size, ok := parseChunkSize(data[:i])
		if !ok {
			return c.badBody("bad-chunk-size")
		}
		c.ok += i + 2
		if size == 0 {
			c.st = sTrailer
			c.trailer = 0
		} else {
			c.st = sChunkData
			c.remaining = size
		}
		return true
	case sTrailer:
		i := bytes.Index(data, []byte("\r\n"))
		if i < 0 {
			if len(data) > c.lim.MaxHeaderBytes {
				return c.badBody("trailer-too-large")
			}
			return false
		}
		c.trailer += i + 2
		if i > 0 && (!validHeaderLine(data[:i]) || c.trailer > c.lim.MaxHeaderBytes) {
			return c.badBody("bad-trailer")
		}
		c.ok += i + 2
		if i == 0 {
			c.bodyDone()
		}
		return true
	}
	return false
}

func (c *Conn) bodyDone() {
	c.st = sHead
	if c.lim.BodyReadTimeout > 0 {
		// Back to what net/http (or a handler) asked for.
		_ = c.raw.SetReadDeadline(unixTime(c.readBy.Load()))
	}
}

// reject releases the synthetic head in place of the refused one; the
// connection ends after it.
func (c *Conn) reject(rej Rejection) {
	c.rejection = rej
	c.rejectAt.Store(c.heads.Add(1) - 1)
	c.inject = []byte(syntheticHead)
	c.st = sClosed
	c.w = c.ok
}

// drop ends the connection without an answer.
func (c *Conn) drop(reason string, data []byte) {
	observe.Default().SecurityConn("protocol", reason, c.peer.Addr().String(), slog.String("line", firstLine(data)))
	c.st = sClosed
	c.w = c.ok
}

// badBody ends a connection whose body framing broke after its head was
// accepted; net/http sees a read error and closes.
func (c *Conn) badBody(reason string) bool {
	observe.Default().SecurityConn("protocol", reason, c.peer.Addr().String())
	c.bodyFailed(errMalformedBody, false) // not a timeout: no second event
	c.w = c.ok
	return true
}

// handshake refuses non-TLS bytes without a word (no HTML page for plain
// HTTP on the TLS port), applies the handshake gate, then runs the TLS
// handshake within HandshakeTimeout.
func (c *Conn) handshake() error {
	growStack()
	if c.gate != nil && !c.gate(c.peer) {
		return errors.New("protoguard: handshake refused")
	}
	// The deadline bounds reads and writes of the whole handshake. (A
	// context would cost crypto/tls a goroutine and a timer per handshake.)
	_ = c.raw.SetDeadline(time.Now().Add(c.lim.HandshakeTimeout))
	var first [1]byte
	if _, err := io.ReadFull(c.raw, first[:]); err != nil {
		return err
	}
	if first[0] != 0x16 { // TLS handshake record type
		reason := "not-tls"
		if first[0] >= 'A' && first[0] <= 'Z' {
			reason = "plain-http"
		}
		observe.Default().SecurityConn("tls", reason, c.peer.Addr().String())
		return errors.New("protoguard: not a TLS handshake")
	}
	pc := &prefixConn{Conn: c.raw, first: first[0], has: true, sendTimeout: c.lim.SendTimeout}
	c.raw2.Store(pc)
	c.tls = tls.Server(pc, c.cfg())
	if err := c.tls.Handshake(); err != nil {
		observe.Metrics.TLSHandshakes.WithLabelValues("", "fail").Inc()
		observe.Default().SecurityConn("tls", "handshake-failed", c.peer.Addr().String(), slog.String("error", err.Error()))
		return err
	}
	// Back to the read deadline net/http set before its first read (the
	// header timeout): the first request's head is bounded like any other.
	_ = c.raw.SetReadDeadline(unixTime(c.readBy.Load()))
	// Through prefixConn: if Close has begun meanwhile, its cap stays.
	_ = pc.SetWriteDeadline(time.Time{})
	pc.armed.Store(true)
	c.state = c.tls.ConnectionState()
	observe.Metrics.TLSHandshakes.WithLabelValues(VersionName(c.state.Version), "ok").Inc()
	return nil
}

// handshakeStack is about the stack a connection's goroutine reaches in the
// TLS handshake and the request after it.
const handshakeStack = 16 << 10

// growStack grows the calling goroutine's stack to handshakeStack in one
// step while it is still shallow. Goroutines start with a small stack that
// the runtime doubles, copying it each time, as calls go deeper; the TLS
// handshake's cryptography would otherwise pay for three or four such
// copies of an ever deeper stack on every new connection.
//
//go:noinline
func growStack() byte {
	var frame [handshakeStack]byte
	return stackSink(frame[:])
}

//go:noinline
func stackSink(b []byte) byte { return b[len(b)-1] }

// VersionName is "1.2" or "1.3" for a TLS version constant.
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return "other"
}

// Write implements net.Conn. While a request is being answered the bytes
// are held back (see Conn.out) up to coalesceLimit; otherwise, and for
// what does not fit, they are written at once. Each write to the client
// must finish within SendTimeout.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.tls == nil {
		return 0, net.ErrClosed
	}
	if err := c.flushErr(); err != nil {
		return 0, err
	}
	if c.holding.Load() {
		if c.out == nil {
			c.out = outPool.Get().(*[]byte)
		}
		if len(*c.out)+len(p) <= coalesceLimit {
			*c.out = append(*c.out, p...)
			return len(p), nil
		}
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return c.writeTLS(p)
}

// Flush writes what is held back and keeps collecting for the response
// in progress. The pipeline calls it when a handler flushes (streaming).
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

// flushErr is the error of a failed flush, or nil.
func (c *Conn) flushErr() error {
	if p := c.werr.Load(); p != nil {
		return *p
	}
	return nil
}

// endResponse writes what is held back and stops collecting until the
// next request.
func (c *Conn) endResponse() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.endLocked()
}

func (c *Conn) endLocked() error {
	c.holding.Store(false)
	return c.flushLocked()
}

// flushLocked writes the held-back bytes as one TLS write and gives the
// buffer back. Called with c.wmu held.
func (c *Conn) flushLocked() error {
	if c.out == nil {
		return c.flushErr()
	}
	b := c.out
	c.out = nil
	var err error
	if len(*b) > 0 && c.werr.Load() == nil {
		// The records of one TLS write leave in one system call.
		pc := c.raw2.Load()
		pc.batch(true)
		_, err = c.writeTLS(*b)
		if berr := pc.batch(false); err == nil {
			err = berr
		}
		if err != nil {
			c.werr.Store(&err)
			c.holding.Store(false)
		}
	}
	*b = (*b)[:0]
	outPool.Put(b)
	return err
}

// writeTLS writes p through TLS; prefixConn bounds each write by the send
// timeout. Called with c.wmu held.
func (c *Conn) writeTLS(p []byte) (int, error) { return c.tls.Write(p) }

// Close implements net.Conn.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.startClosing(time.Now().Add(closeWriteTimeout))
		// Send what is held back, unless a write is stuck: Close must
		// also be able to end a connection that does not move.
		if c.holding.Load() && c.wmu.TryLock() {
			_ = c.endLocked()
			c.wmu.Unlock()
		}
		if c.tls != nil {
			err = c.tls.Close()
		} else {
			err = c.raw.Close()
		}
		// net/http may still read (its background read) after Close: leave
		// the connection in the closed state so that such a read ends at
		// once instead of parsing a buffer that is gone.
		c.mu.Lock()
		c.releaseBuffer()
		c.st = sClosed
		c.inject = nil
		c.mu.Unlock()
		if c.onClose != nil {
			c.onClose()
		}
		c.hookMu.Lock()
		c.closed = true
		hooks := c.closeHooks
		c.closeHooks = nil
		c.hookMu.Unlock()
		for _, f := range hooks {
			f()
		}
	})
	return err
}

// Closing reports whether rampart has begun to close the connection (Close
// or the drain's CloseAll): a read or write failing now failed for that.
func (c *Conn) Closing() bool { return c.closing.Load() }

// OnClose registers f to run once the connection is closed, by whoever
// closes it (a tunnel taken over from net/http learns so of the drain on
// shutdown). f runs inside Close; on a closed connection it runs at once.
func (c *Conn) OnClose(f func()) {
	c.hookMu.Lock()
	if c.closed {
		c.hookMu.Unlock()
		f()
		return
	}
	c.closeHooks = append(c.closeHooks, f)
	c.hookMu.Unlock()
}

// NetConn returns the connection under the TLS layer.
func (c *Conn) NetConn() net.Conn { return c.raw }

func (c *Conn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readBy.Store(unixNano(t))
	return c.raw.SetReadDeadline(t)
}

// unixNano and unixTime convert a deadline to and from the form kept in
// an atomic: Unix nanoseconds, 0 for none.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// closeWriteTimeout bounds what Close still writes (held-back bytes, the
// TLS close_notify) to a client that does not read.
const closeWriteTimeout = time.Second

// startClosing caps every write from now on at by, the TLS layer's own
// close_notify deadline (5 s) included. CloseAll calls it on all
// connections before closing any, so that a drain's stuck clients cost one
// second together, not one each.
func (c *Conn) startClosing(by time.Time) {
	if c.closing.Swap(true) {
		return
	}
	if pc := c.raw2.Load(); pc != nil {
		pc.capDeadline(by)
	}
	_ = c.raw.SetWriteDeadline(by)
}

// SetDeadline implements net.Conn; like SetWriteDeadline it makes the next
// write set its own send timeout again.
func (c *Conn) SetDeadline(t time.Time) error {
	if pc := c.raw2.Load(); pc != nil {
		pc.writeBy.Forget()
	}
	c.readBy.Store(unixNano(t))
	return c.raw.SetDeadline(t)
}

// SetWriteDeadline implements net.Conn. net/http calls it after every
// response, which makes it the point where a response held back is sent.
// On a connection that holds nothing back (a WebSocket tunnel, whose
// reader may move the deadline while its writer is blocked) it takes no
// lock.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var err error
	if c.holding.Load() {
		c.wmu.Lock()
		err = c.endLocked()
		c.wmu.Unlock()
	}
	// Someone else set the deadline: the next write sets its own send
	// timeout again instead of trusting what it set before.
	if pc := c.raw2.Load(); pc != nil {
		pc.writeBy.Forget()
	}
	if serr := c.raw.SetWriteDeadline(t); err == nil {
		err = serr
	}
	return err
}

// prefixConn is the raw connection as TLS sees it: it gives back the byte
// read to detect TLS, and while batching it collects the records of one
// TLS write to send them with one system call.
type prefixConn struct {
	net.Conn
	first byte
	has   bool

	wmu         sync.Mutex // TLS may write an alert from the read side
	pending     *[]byte    // non-nil while batching
	deadlineCap atomic.Int64

	// Every write after the handshake is bounded by the send timeout:
	// the responses, and what TLS writes on its own from the read side
	// (alerts, the answer to a client's KeyUpdate) to a client that may
	// not read.
	sendTimeout time.Duration
	armed       atomic.Bool // set when the handshake is done
	writeBy     deadline.Rolling
}

var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceLimit+1024); return &b }}

func (p *prefixConn) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0] = p.first
		p.has = false
		return 1, nil
	}
	return p.Conn.Read(b)
}

// capDeadline makes every later write deadline at most by.
func (p *prefixConn) capDeadline(by time.Time) { p.deadlineCap.Store(by.UnixNano()) }

// SetWriteDeadline implements net.Conn within the cap set by capDeadline.
func (p *prefixConn) SetWriteDeadline(t time.Time) error {
	if limit := p.deadlineCap.Load(); limit != 0 && (t.IsZero() || t.UnixNano() > limit) {
		t = time.Unix(0, limit)
	}
	return p.Conn.SetWriteDeadline(t)
}

func (p *prefixConn) Write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.pending != nil {
		*p.pending = append(*p.pending, b...)
		return len(b), nil
	}
	p.bound()
	return p.Conn.Write(b)
}

// bound arms the send timeout before a write (deadline.Rolling: pushed
// forward once half of it is used up). Called with wmu held.
func (p *prefixConn) bound() {
	if p.sendTimeout <= 0 || !p.armed.Load() {
		return
	}
	if by, due := p.writeBy.Next(p.sendTimeout); due {
		_ = p.SetWriteDeadline(by) // within the cap once closing has begun
	}
}

// batch turns collecting on or off; turning it off sends what was
// collected. The buffer is pooled, so an idle connection holds none.
func (p *prefixConn) batch(on bool) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if on {
		if p.pending == nil {
			p.pending = recordPool.Get().(*[]byte)
		}
		return nil
	}
	b := p.pending
	if b == nil {
		return nil
	}
	p.pending = nil
	var err error
	if len(*b) > 0 {
		p.bound()
		_, err = p.Conn.Write(*b)
	}
	if cap(*b) <= 2*coalesceLimit {
		*b = (*b)[:0]
		recordPool.Put(b)
	}
	return err
}

func firstLine(data []byte) string {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	data = bytes.TrimRight(data, "\r")
	if len(data) > 200 {
		data = data[:200]
	}
	return string(bytes.ToValidUTF8(data, []byte("?")))
}
