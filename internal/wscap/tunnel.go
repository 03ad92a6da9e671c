package wscap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// A WebSocket through rampart is a tunnel: the client's TLS connection on
// one side, the upstream connection on the other. httputil.ReverseProxy
// sets it up (request, 101 answer, hijack) and would then copy with two
// goroutines while its handler goroutine waits — three goroutine stacks
// and their buffers for every socket, idle or not. Instead the tunnel is
// taken over at the moment the proxy starts copying, and the proxy's
// goroutines return:
//
//   - Each direction is copied by a pump goroutine only while data flows.
//     After linger without a byte, the pump parks the leg in the poller
//     (one epoll instance per process) and ends; readability of the socket
//     starts a new pump. An idle tunnel holds no goroutine and no buffer.
//   - A leg is parked only after a read through every layer above the
//     socket (hijack buffer, TLS records, the transport's reader) timed out,
//     so no byte can wait in a user-space buffer that epoll does not see.
//   - One timer per tunnel closes it after idle without traffic.
//
// Wiring: Route.Handler puts a tunnel into the request's context and wraps
// the ResponseWriter (Hijack); the proxy's ModifyResponse calls
// AdoptUpgrade, which wraps the upstream connection of a 101 answer; the
// proxy's copy loops then call WriteTo on those wrappers, which starts the
// tunnel and returns at once. When a piece is missing (a proxy that does
// not call AdoptUpgrade, no upstream connection noted), the wrappers copy
// the way the proxy would, with IdleTimeoutConn on the client side. A leg
// without a socket, or a system without epoll, keeps its pump for the life
// of the tunnel.

// linger is how long a pump waits for the next byte before it parks its
// leg. Short: an idle tunnel should cost no goroutine; long enough that a
// chatty tunnel does not park between every two messages.
var linger = 250 * time.Millisecond

var tunnelsOpen atomic.Int64 // tunnels taken over and not yet closed

type tunnelKey struct{}

// tunnel is one WebSocket taken over from the proxy.
type tunnel struct {
	idle    time.Duration
	release func()

	// Set while the proxy sets the tunnel up (one goroutine after another).
	client   leg
	upstream leg
	upConn   net.Conn // the upstream connection (GotConn): deadlines, CloseWrite

	mu      sync.Mutex
	started bool
	closed  bool

	last  atomic.Int64 // the last byte either way, as time.Since(monoStart)
	timer *time.Timer  // idle timeout

	// For the access-log line written when the tunnel ends.
	req       *reqinfo.Info
	host      string
	opened    time.Time // the tunnel taken over (the 101 sent)
	clientEOF bool      // the client half-closed; guarded by mu
}

// leg is one side of a tunnel: what is read from it is written to peer.
type leg struct {
	t    *tunnel
	peer *leg
	r    io.Reader       // buffered bytes first, then the connection
	w    io.WriteCloser  // the connection
	conn net.Conn        // deadlines
	raw  syscall.RawConn // the socket, for the poller; nil: never parks

	key   uint64 // poller registration; guarded by the poller
	added bool

	copied atomic.Int64 // bytes read from this leg and written to peer
}

func newTunnel(idle time.Duration, release func()) *tunnel {
	t := &tunnel{idle: idle, release: release}
	t.client = leg{t: t, peer: &t.upstream}
	t.upstream = leg{t: t, peer: &t.client}
	return t
}

func tunnelOf(ctx context.Context) *tunnel {
	t, _ := ctx.Value(tunnelKey{}).(*tunnel)
	return t
}

// withTunnel returns ctx carrying t, and noting the upstream connection
// the transport uses for the request.
func withTunnel(ctx context.Context, t *tunnel) context.Context {
	ctx = context.WithValue(ctx, tunnelKey{}, t)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { t.upConn = info.Conn },
	})
}

// AdoptUpgrade is for the proxy's ModifyResponse: on a 101 answer to a
// request that went through Route.Handler it wraps the upstream connection
// (resp.Body) so that the tunnel can take it over. Other responses are left
// alone.
func AdoptUpgrade(resp *http.Response) {
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Request == nil {
		return
	}
	t := tunnelOf(resp.Request.Context())
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if t == nil || !ok || t.upConn == nil {
		return
	}
	t.upstream.r, t.upstream.w, t.upstream.conn = rwc, rwc, t.upConn
	t.upstream.raw = socketOf(t.upConn)
	resp.Body = &upstreamEnd{ReadWriteCloser: rwc, t: t}
}

// socketOf finds the socket under c through the wrappers that expose the
// connection they wrap (tls.Conn, the guards, PROXY protocol), or nil.
func socketOf(c net.Conn) syscall.RawConn {
	for range 8 {
		switch v := c.(type) {
		case syscall.Conn:
			rc, err := v.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		case interface{ Raw() net.Conn }:
			c = v.Raw()
		default:
			return nil
		}
	}
	return nil
}

// tunnelWriter hands the proxy a wrapped connection when it hijacks.
type tunnelWriter struct {
	http.ResponseWriter
	t *tunnel
}

func (w *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	t := w.t
	t.client.r, t.client.w, t.client.conn = c, c, c
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent right behind its request; the hijack's
		// reader is dropped, so they are kept (copied) here.
		b, _ := brw.Reader.Peek(n)
		t.client.r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), c)
	}
	t.client.raw = socketOf(c)
	return &clientEnd{Conn: c, t: t}, brw, nil
}

func (w *tunnelWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *tunnelWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var errTakenOver = errors.New("wscap: connection taken over by the tunnel")

// clientEnd is the hijacked connection as the proxy sees it. Its WriteTo
// (the proxy's copy loop) starts the tunnel; if the tunnel cannot start it
// copies itself, under the idle timeout.
type clientEnd struct {
	net.Conn
	t *tunnel

	once sync.Once
	idle net.Conn // Conn under IdleTimeoutConn, for copying without the tunnel
}

func (c *clientEnd) copying() net.Conn {
	c.once.Do(func() { c.idle = IdleTimeoutConn(c.Conn, c.t.idle) })
	return c.idle
}

func (c *clientEnd) WriteTo(w io.Writer) (int64, error) {
	if c.t.start() {
		return 0, nil
	}
	return copyThrough(w, c.copying())
}

func (c *clientEnd) ReadFrom(r io.Reader) (int64, error) {
	if c.t.start() {
		return 0, nil
	}
	return copyThrough(c.copying(), r)
}

func (c *clientEnd) Read(p []byte) (int, error) {
	if c.t.takenOver() {
		return 0, errTakenOver
	}
	return c.copying().Read(p)
}

func (c *clientEnd) Write(p []byte) (int, error) {
	if c.t.takenOver() {
		return 0, errTakenOver
	}
	return c.copying().Write(p)
}

// Close is ignored once the tunnel owns the connection: the proxy closes
// both ends when its copy loops return.
func (c *clientEnd) Close() error {
	if c.t.takenOver() {
		return nil
	}
	return c.Conn.Close()
}

// upstreamEnd is the upstream connection as the proxy sees it; like
// clientEnd, it starts the tunnel from the proxy's copy loop.
type upstreamEnd struct {
	io.ReadWriteCloser
	t *tunnel
}

func (u *upstreamEnd) WriteTo(w io.Writer) (int64, error) {
	if u.t.start() {
		return 0, nil
	}
	return copyThrough(w, u.ReadWriteCloser)
}

func (u *upstreamEnd) Read(p []byte) (int, error) {
	if u.t.takenOver() {
		return 0, errTakenOver
	}
	return u.ReadWriteCloser.Read(p)
}

func (u *upstreamEnd) Write(p []byte) (int, error) {
	if u.t.takenOver() {
		return 0, errTakenOver
	}
	return u.ReadWriteCloser.Write(p)
}

func (u *upstreamEnd) Close() error {
	if u.t.takenOver() {
		return nil
	}
	return u.ReadWriteCloser.Close()
}

func (t *tunnel) takenOver() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.started
}

// start takes the tunnel over from the proxy: it reports false (and
// nothing changes) when a piece is missing, so that the proxy's own copy
// loops carry on. Called by both copy loops; the second call only reports.
func (t *tunnel) start() bool {
	t.mu.Lock()
	if t.started {
		t.mu.Unlock()
		return true
	}
	if t.client.conn == nil || t.upstream.conn == nil {
		t.mu.Unlock()
		return false
	}
	t.started = true
	t.opened = time.Now()
	tunnelsOpen.Add(1)
	tunnelsChanged(true)
	t.touch()
	if t.idle > 0 {
		t.timer = time.AfterFunc(t.idle, t.checkIdle)
	}
	t.mu.Unlock()
	if oc, ok := t.client.conn.(interface{ OnClose(func()) }); ok {
		// Closed by someone else (the drain on shutdown): end the tunnel.
		// The end is logged at once, before the drain closes the logs; the
		// teardown runs in a goroutine, as the hook runs inside the
		// connection's Close. Registered without t.mu held: on a
		// connection already closed the hook runs here and now.
		oc.OnClose(func() {
			if t.end(EndedByServer) {
				go t.teardown()
			}
		})
	}
	// Both legs start with a pump: bytes may already sit in a buffer above
	// the socket (TLS records, the transport's reader). On a tunnel the
	// hook has just ended they stop at their first read.
	go t.client.pump()
	go t.upstream.pump()
	return true
}

// monoStart is the base of the tunnels' idle clock: durations since it are
// monotonic, so a step of the wall clock neither closes every idle tunnel
// at once nor keeps them open longer.
var monoStart = time.Now()

func (t *tunnel) touch() { t.last.Store(int64(time.Since(monoStart))) }

func (t *tunnel) checkIdle() {
	left := t.idle - (time.Since(monoStart) - time.Duration(t.last.Load()))
	if left > 0 {
		t.mu.Lock()
		if !t.closed {
			t.timer.Reset(left)
		}
		t.mu.Unlock()
		return
	}
	t.close(EndedByIdle)
}

// Who ended a tunnel, as its access-log line says. A WebSocket close
// handshake ends with both connections closed; the side named is the one
// whose connection ended first, not necessarily the one that began the
// handshake.
const (
	EndedByClient   = "client"   // the client's connection ended (or half-closed) first, or failed
	EndedByUpstream = "upstream" // the upstream's connection ended first, or failed
	EndedByIdle     = "idle"     // websocket_idle_timeout without a byte
	EndedByServer   = "server"   // rampart closed the client connection (drain on shutdown)
)

// close ends the tunnel once: both connections closed, the slot released,
// the end logged. by says who ended it (EndedBy*).
func (t *tunnel) close(by string) {
	if t.end(by) {
		t.teardown()
	}
}

// end marks the tunnel closed, stops its timer and poller registrations
// and logs its end; it reports false when the tunnel was already closed.
// It closes no connection, so it may run inside a connection's Close.
func (t *tunnel) end(by string) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	t.closed = true
	if t.clientEOF && by == EndedByUpstream {
		by = EndedByClient // the upstream answered the client's close
	}
	if cc, ok := t.client.conn.(interface{ Closing() bool }); ok && by == EndedByClient && cc.Closing() {
		// The client's connection failed because rampart is closing it
		// (the drain): a pump saw that before the close hook ran.
		by = EndedByServer
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	if p := getPoller(); p != nil {
		p.remove(&t.client)
		p.remove(&t.upstream)
	}
	t.mu.Unlock()
	in, out := t.client.copied.Load(), t.upstream.copied.Load()
	endedBy[by].Inc()
	bytesFromClients.Add(float64(in))
	bytesToClients.Add(float64(out))
	if t.req != nil {
		observe.Default().TunnelEnd(t.req, t.host, by, time.Since(t.opened), in, out)
	}
	return true
}

// teardown closes both connections and gives the slot back, after end.
func (t *tunnel) teardown() {
	_ = t.client.w.Close()
	_ = t.upstream.w.Close()
	t.release()
	tunnelsOpen.Add(-1)
	tunnelsChanged(false)
}

// park hands l to the poller after its pump found nothing to read. It
// reports whether the pump may end; false means the tunnel must close.
func (t *tunnel) park(l *leg) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return true
	}
	return getPoller().arm(l) == nil
}

// pump copies what arrives on l to its peer until l has been silent for
// linger, then parks l (or, without a poller, until l ends). An error on
// either side closes the tunnel; the client's end of stream is passed on as
// a half-close, the upstream's closes the tunnel.
func (l *leg) pump() {
	t := l.t
	parks := l.raw != nil && getPoller() != nil
	bp := tunnelBuffers.Get().(*[]byte)
	defer tunnelBuffers.Put(bp)
	buf := *bp
	for {
		if parks {
			_ = l.conn.SetReadDeadline(time.Now().Add(linger))
		}
		n, err := l.r.Read(buf)
		if n > 0 {
			t.touch()
			if t.idle > 0 {
				_ = l.peer.conn.SetWriteDeadline(time.Now().Add(t.idle))
			}
			if _, werr := l.peer.w.Write(buf[:n]); werr != nil {
				t.close(l.peer.side())
				return
			}
			l.copied.Add(int64(n))
		}
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case parks && errors.As(err, &ne) && ne.Timeout():
			if t.park(l) {
				return
			}
		case err == io.EOF && l == &t.client && t.halfClose():
			return
		}
		t.close(l.side())
		return
	}
}

// side is who a failure or end of stream on l is put down to.
func (l *leg) side() string {
	if l == &l.t.client {
		return EndedByClient
	}
	return EndedByUpstream
}

// halfClose passes the client's end of stream on to the upstream and keeps
// the other direction open until the upstream ends too (or the idle
// timeout). It reports false when the upstream connection cannot
// half-close.
func (t *tunnel) halfClose() bool {
	cw, ok := t.upConn.(interface{ CloseWrite() error })
	if !ok {
		return false
	}
	// Noted before the upstream can see the FIN and close: its end is
	// then put down to the client.
	t.mu.Lock()
	t.clientEOF = true
	t.mu.Unlock()
	if cw.CloseWrite() != nil {
		t.mu.Lock()
		t.clientEOF = false
		t.mu.Unlock()
		return false
	}
	return true
}
