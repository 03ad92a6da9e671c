package clientip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"golang.org/x/time/rate"

	"github.com/rampart-proxy/rampart/internal/accept"
	"github.com/rampart-proxy/rampart/internal/observe"
)

// HeaderTimeout bounds how long a trusted peer may take to send the PROXY
// protocol header after connecting.
const HeaderTimeout = 5 * time.Second

// headerTimeout is HeaderTimeout, shortened by tests.
var headerTimeout = HeaderTimeout

// stage names this package in security events and refusal metrics.
const stage = "clientip"

// Listener returns ln wrapped for the PROXY protocol when client_ip has
// proxy_protocol: true, and ln itself otherwise.
//
// In PROXY mode a header (v1 or v2) is required from trusted peers, and a
// connection from any other peer is closed as soon as it is accepted, with
// or without a header: the port is not shared between PROXY and plain
// traffic. A trusted peer that sends no valid header within HeaderTimeout
// is closed too. The header is read before Accept returns the connection,
// by a goroutine of its own, so one slow peer never holds up the accept
// loop; the connection's RemoteAddr is then the client the header names
// (or the peer itself for a LOCAL health check), and every layer above
// (the connection guard, the TLS server, reqinfo.Info.Peer) sees the real
// client without further work.
func (r *Resolver) Listener(ln net.Listener) net.Listener {
	return ListenerFollowing(ln, func() *Resolver { return r })
}

// ListenerFollowing is Listener for a server whose config is reloaded:
// whether the PROXY protocol is spoken is current()'s when the listener is
// made, fixed for its life, but the trusted peers are those of current()
// at each accept, so a proxy removed from trusted_proxies by a reload can
// no longer name clients from the next connection on.
func ListenerFollowing(ln net.Listener, current func() *Resolver) net.Listener {
	if current().mode != modeProxy {
		return ln
	}
	l := &proxyListener{
		ready:   make(chan net.Conn),
		done:    make(chan struct{}),
		dead:    make(chan struct{}),
		pending: make(map[net.Conn]struct{}),
		logs:    rate.NewLimiter(1, 10),
	}
	l.pp = &proxyproto.Listener{
		Listener:          ln,
		ConnPolicy:        l.policy(current),
		ValidateHeader:    validateHeader,
		ReadHeaderTimeout: headerTimeout,
	}
	go l.acceptLoop()
	return l
}

type proxyListener struct {
	pp    *proxyproto.Listener
	ready chan net.Conn // connections whose header was read and accepted
	done  chan struct{} // closed by Close
	dead  chan struct{} // closed when the inner listener failed for good
	err   error         // why, set before dead is closed
	logs  *rate.Limiter // bounds the security log during a flood; metrics count all

	closeOnce sync.Once
	mu        sync.Mutex
	pending   map[net.Conn]struct{} // connections still sending their header
}

// policy is a go-proxyproto ConnPolicy: REQUIRE a header from trusted
// peers, drop everyone else at accept (an error wrapping
// ErrInvalidUpstream closes that connection and keeps listening).
func (l *proxyListener) policy(current func() *Resolver) proxyproto.ConnPolicyFunc {
	return func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
		peer := accept.PeerAddr(o.Upstream)
		if peer.IsValid() && contains(current().trusted, peer) {
			return proxyproto.REQUIRE, nil
		}
		l.refuse("untrusted-peer", peer)
		return proxyproto.REJECT, fmt.Errorf("%w: %s is not in trusted_proxies", proxyproto.ErrInvalidUpstream, peer)
	}
}

// validateHeader accepts LOCAL (health checks from the proxy itself) and
// PROXY headers for TCP over IPv4 or IPv6; any other transport could not
// name a client address.
func validateHeader(h *proxyproto.Header) error {
	if h.Command.IsLocal() {
		return nil
	}
	switch h.TransportProtocol {
	case proxyproto.TCPv4, proxyproto.TCPv6:
		if _, ok := h.SourceAddr.(*net.TCPAddr); ok {
			return nil
		}
	}
	return errors.New("clientip: PROXY header does not describe a TCP connection")
}

func (l *proxyListener) refuse(reason string, peer netip.Addr) {
	if l.logs.Allow() {
		observe.Default().SecurityConn(stage, reason, peer.String())
		return
	}
	observe.Metrics.Refusals.WithLabelValues(stage, reason).Inc()
}

func (l *proxyListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.pp.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if accept.Temporary(err) {
				delay = accept.Backoff(delay)
				time.Sleep(delay)
				continue
			}
			l.err = err
			close(l.dead)
			return
		}
		delay = 0
		pc, ok := c.(*proxyproto.Conn)
		if !ok {
			l.deliver(c)
			continue
		}
		if !l.track(pc) {
			_ = pc.Close()
			return
		}
		go l.readHeader(pc)
	}
}

// readHeader waits for the header of pc (bounded by HeaderTimeout) and
// hands pc to Accept, or closes it.
func (l *proxyListener) readHeader(pc *proxyproto.Conn) {
	h := pc.ProxyHeader()
	l.untrack(pc)
	if h == nil {
		select {
		case <-l.done: // closed by Close
			_ = pc.Close()
			return
		default:
		}
		// Read returns the stored header error without touching the socket.
		_, err := pc.Read(nil)
		reason := "proxy-header-invalid"
		if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
			reason = "proxy-header-missing"
		}
		l.refuse(reason, accept.PeerAddr(pc.Raw().RemoteAddr()))
		_ = pc.Close()
		return
	}
	l.deliver(pc)
}

func (l *proxyListener) deliver(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *proxyListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending == nil {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *proxyListener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
}

// Accept returns the next connection whose PROXY header was read.
func (l *proxyListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.dead:
		return nil, l.err
	}
}

// Close stops accepting and closes the connections still sending their
// header.
func (l *proxyListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.pp.Close()
		l.mu.Lock()
		for c := range l.pending {
			_ = c.Close()
		}
		l.pending = nil
		l.mu.Unlock()
	})
	return err
}

func (l *proxyListener) Addr() net.Addr { return l.pp.Addr() }
