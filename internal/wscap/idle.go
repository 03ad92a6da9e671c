package wscap

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// IdleTimeoutConn returns c closing itself after idle without traffic in
// either direction: every Read and Write pushes one deadline, shared by
// reads and writes, to idle from now. A Read blocked while the other
// direction carries data is therefore not cut off. Once the deadline
// passes, the blocked Read or Write fails with a timeout and the tunnel
// that was copying through c ends. idle <= 0 returns c itself.
//
// To spare a timer update per frame, the deadline is moved at most every
// idle/16, so a silent tunnel is closed between 15/16 idle and idle after
// its last byte.
//
// The wrapper owns c's deadlines: it is meant for a connection nothing
// else sets deadlines on, such as one hijacked for a WebSocket. It does not
// pass on CloseWrite, so when one side of a proxied tunnel ends, the proxy
// closes both instead of leaving the other half open.
//
// Tunnels taken over by Route.Handler do not need it (they have a timer of
// their own); it applies when the proxy copies a tunnel itself.
func IdleTimeoutConn(c net.Conn, idle time.Duration) net.Conn {
	if idle <= 0 {
		return c
	}
	ic := &idleConn{Conn: c, idle: idle, step: idle / 16, start: time.Now()}
	ic.extend()
	return ic
}

type idleConn struct {
	net.Conn
	idle  time.Duration
	step  time.Duration
	start time.Time
	next  atomic.Int64 // time since start after which the deadline is moved again
}

func (c *idleConn) extend() {
	now := time.Since(c.start)
	next := c.next.Load()
	if int64(now) < next || !c.next.CompareAndSwap(next, int64(now+c.step)) {
		return
	}
	_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.extend()
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.extend()
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.extend()
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.extend()
	}
	return n, err
}

// WriteTo and ReadFrom are what io.Copy in ReverseProxy's tunnel uses, so
// that data moves through a small pooled buffer instead of a fresh 32 KiB
// one per direction per tunnel: WebSocket messages are small, and most
// sockets sit idle holding whatever buffer their copy loop owns.
func (c *idleConn) WriteTo(w io.Writer) (int64, error)  { return copyThrough(w, c) }
func (c *idleConn) ReadFrom(r io.Reader) (int64, error) { return copyThrough(c, r) }

var tunnelBuffers = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

func copyThrough(dst io.Writer, src io.Reader) (int64, error) {
	bp := tunnelBuffers.Get().(*[]byte)
	defer tunnelBuffers.Put(bp)
	// The wrappers hide WriterTo/ReaderFrom, so CopyBuffer uses the buffer
	// instead of calling back into this function.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}
