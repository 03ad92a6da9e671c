package wscap

import (
	"net"
	"sync"
	"testing"
	"time"
)

// closedConn runs close hooks at once, as protoguard.Conn does once it is
// closed.
type closedConn struct {
	net.Conn
	mu     sync.Mutex
	closed bool
}

func (c *closedConn) OnClose(f func()) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		f()
	}
}

// A tunnel taken over on a client connection the drain has already closed
// ends at once (its close hook runs inside start) instead of deadlocking
// on its own lock, and gives its slot back.
func TestStartOnAClosedClientConnectionEndsTheTunnel(t *testing.T) {
	c1, c2 := net.Pipe()
	u1, u2 := net.Pipe()
	defer c2.Close()
	defer u2.Close()
	_ = c1.Close()
	cc := &closedConn{Conn: c1, closed: true}
	released := make(chan struct{}, 1)
	tn := newTunnel(time.Second, func() { released <- struct{}{} })
	tn.client.r, tn.client.w, tn.client.conn = cc, cc, cc
	tn.upstream.r, tn.upstream.w, tn.upstream.conn = u1, u1, u1
	done := make(chan bool, 1)
	go func() { done <- tn.start() }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("start never returned")
	}
	select {
	case <-released:
	case <-time.After(2 * time.Second):
		t.Fatal("the slot was not given back")
	}
}
