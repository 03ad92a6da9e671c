package protoguard

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Listener hands net/http guarded connections and keeps track of them, so
// that a graceful stop can wait for upgraded (hijacked) connections too.
type Listener struct {
	net.Listener
	limits atomic.Pointer[Limits]
	config func() *tls.Config
	gate   func(netip.AddrPort) bool

	mu    sync.Mutex
	conns map[*Conn]struct{}
}

// NewListener wraps inner. config is called for every handshake, so a reload
// that swaps certificates takes effect for the next connection. gate, if not
// nil, is asked before each handshake (per-client handshake rate).
func NewListener(inner net.Listener, lim Limits, config func() *tls.Config, gate func(netip.AddrPort) bool) *Listener {
	l := &Listener{Listener: inner, config: config, gate: gate, conns: map[*Conn]struct{}{}}
	l.limits.Store(&lim)
	return l
}

// SetLimits applies new limits to connections accepted from now on.
func (l *Listener) SetLimits(lim Limits) { l.limits.Store(&lim) }

// Accept implements net.Listener. The TLS handshake happens later, on the
// connection's own goroutine, so a slow client never blocks Accept.
func (l *Listener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := newConn(raw, l.limits.Load(), l.config, l.gate)
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	c.onClose = func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
	}
	return c, nil
}

// Open returns the number of connections not yet closed.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// CloseAll closes every connection still open (the end of a drain).
func (l *Listener) CloseAll() {
	l.mu.Lock()
	cs := make([]*Conn, 0, len(l.conns))
	for c := range l.conns {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	by := time.Now().Add(closeWriteTimeout)
	for _, c := range cs {
		c.startClosing(by)
	}
	for _, c := range cs {
		_ = c.Close()
	}
}

type ctxKey struct{}

// ConnContext is the http.Server hook that makes the guarded connection
// reachable from a request.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if gc, ok := c.(*Conn); ok {
		return context.WithValue(ctx, ctxKey{}, gc)
	}
	return ctx
}

// FromContext returns the guarded connection of a request, or nil.
func FromContext(ctx context.Context) *Conn {
	gc, _ := ctx.Value(ctxKey{}).(*Conn)
	return gc
}
