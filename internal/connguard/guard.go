// Package connguard is pipeline stage 1: connection caps before TLS.
//
// A connection costs a file descriptor, a goroutine and, once its TLS
// handshake starts, real CPU. The guard refuses connections over the global
// or per-client concurrency caps the moment they are accepted, before a
// single byte is read, and rations TLS handshakes per client with a token
// bucket. Every table it keeps per client is bounded, so an attacker with
// many addresses can exhaust neither memory nor the log.
//
// A "client" is an IPv4 address or an IPv6 /64 network: one subscriber or
// LAN gets a /64, so counting single IPv6 addresses would hand everyone 2^64
// separate budgets. Slow clients (slowloris) are not this stage's concern:
// the HTTP server's read-header and idle timeouts bound them.
package connguard

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/rampart-proxy/rampart/internal/accept"
	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/units"
)

// stage names this package in security events and refusal metrics.
const stage = "connguard"

// Refusal reasons, as logged and as the reason label of
// rampart_connections_refused_total.
const (
	ReasonPerClient = "per-client-cap"
	ReasonTotal     = "total-cap"
	ReasonTableFull = "table-full"
	ReasonHandshake = "handshake-rate"
)

// LogInterval is how often at most one client's refusals are logged; the
// metrics count every refusal.
const LogInterval = 10 * time.Second

// logBurst and logRate bound the refusal events of all clients together,
// for a flood from many addresses.
const (
	logRate  = 50
	logBurst = 100
)

var (
	openGauge = promauto.With(observe.Registry).NewGauge(prometheus.GaugeOpts{
		Name: "rampart_connections_open",
		Help: "Client connections admitted by the connection guard and not yet closed.",
	})
	refusedTotal = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_connections_refused_total",
		Help: "Connections and TLS handshakes refused by the connection guard, by reason.",
	}, []string{"reason"})
)

// Guard holds the live counts and the per-client tables. One Guard serves
// every public listener, so connections_total is a process-wide cap. Keep
// it across config reloads and call Update.
type Guard struct {
	mu      sync.Mutex
	cfg     Config               // with defaults
	total   int                  // admitted connections still open
	open    map[netip.Addr]int32 // open connections per client; no zero entries
	shared  atomic.Pointer[func(netip.Addr) bool]
	soft    softTable // handshake limiters and log times
	logs    *rate.Limiter
	now     func() time.Time
	refused map[string]prometheus.Counter
}

// New returns a Guard applying cfg (unset keys take their defaults).
func New(cfg Config) *Guard {
	cfg = cfg.WithDefaults()
	g := &Guard{
		cfg:     cfg,
		open:    make(map[netip.Addr]int32),
		logs:    rate.NewLimiter(logRate, logBurst),
		now:     time.Now,
		refused: make(map[string]prometheus.Counter),
	}
	g.soft.init(cfg.MaxClients)
	for _, r := range []string{ReasonPerClient, ReasonTotal, ReasonTableFull, ReasonHandshake} {
		g.refused[r] = refusedTotal.WithLabelValues(r)
	}
	return g
}

// Update applies a reloaded config. Live counts are kept: a lowered cap
// refuses new connections until enough old ones have closed, and existing
// handshake buckets take the new rate.
func (g *Guard) Update(cfg Config) {
	cfg = cfg.WithDefaults()
	g.mu.Lock()
	old := g.cfg
	g.cfg = cfg
	g.mu.Unlock()
	g.soft.resize(cfg.MaxClients)
	if cfg.HandshakesPerClient != old.HandshakesPerClient {
		g.soft.setRate(limitOf(cfg.HandshakesPerClient), cfg.HandshakesPerClient.Count, g.now())
	}
}

// SetSharedPeer names the peers whose connections carry many clients (an
// HTTP load balancer in trusted_proxies when the client address travels in
// a header): they count towards connections_total only, and their
// handshakes are not rationed. Pass clientip.Resolver.SharedPeer; nil
// clears it.
func (g *Guard) SetSharedPeer(fn func(netip.Addr) bool) {
	if fn == nil {
		g.shared.Store(nil)
		return
	}
	g.shared.Store(&fn)
}

func (g *Guard) isShared(ip netip.Addr) bool {
	fn := g.shared.Load()
	return fn != nil && (*fn)(ip)
}

// Open returns the number of admitted connections not yet closed.
func (g *Guard) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// acquire takes a connection slot for ip. perClient says whether the
// per-client count was taken too (not for shared peers or for connections
// without an IP address).
func (g *Guard) acquire(ip netip.Addr) (key netip.Addr, perClient bool, reason string) {
	perClient = ip.IsValid() && !g.isShared(ip)
	if perClient {
		key = state.ClientUnit(ip)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.cfg.ConnectionsTotal {
		return key, false, ReasonTotal
	}
	if perClient {
		n, ok := g.open[key]
		if !ok && len(g.open) >= g.cfg.MaxClients {
			return key, false, ReasonTableFull
		}
		if int(n) >= g.cfg.ConnectionsPerClient {
			return key, false, ReasonPerClient
		}
		g.open[key] = n + 1
	}
	g.total++
	openGauge.Inc()
	return key, perClient, ""
}

func (g *Guard) release(key netip.Addr, perClient bool) {
	g.mu.Lock()
	g.total--
	if perClient {
		if n := g.open[key] - 1; n > 0 {
			g.open[key] = n
		} else {
			delete(g.open, key)
		}
	}
	g.mu.Unlock()
	openGauge.Dec()
}

// AllowHandshake reports whether ip may start a TLS handshake now, taking
// a token from its bucket. The caller calls it right before the handshake
// and closes the connection when it returns false.
func (g *Guard) AllowHandshake(ip netip.Addr) bool {
	if !ip.IsValid() || g.isShared(ip) {
		return true
	}
	key := state.ClientUnit(ip)
	now := g.now()
	g.mu.Lock()
	r := g.cfg.HandshakesPerClient
	g.mu.Unlock()
	lim := g.soft.limiter(key, limitOf(r), r.Count)
	if lim.AllowN(now, 1) {
		return true
	}
	g.refuse(ReasonHandshake, ip, key)
	return false
}

func limitOf(r units.Rate) rate.Limit { return rate.Limit(r.PerSecond()) }

// refuse counts a refusal and logs it, at most once per client per
// LogInterval and logRate per second overall.
func (g *Guard) refuse(reason string, ip, key netip.Addr) {
	g.refused[reason].Inc()
	client := ""
	if ip.IsValid() {
		client = ip.String()
	}
	now := g.now()
	if g.soft.shouldLog(key, now) && g.logs.AllowN(now, 1) {
		observe.Default().SecurityConn(stage, reason, client)
		return
	}
	observe.Metrics.Refusals.WithLabelValues(stage, reason).Inc()
}

// Listener wraps ln: its Accept admits connections under the caps and
// closes the others at once, without reading from them. Put it above the
// PROXY protocol listener (clientip.Resolver.Listener), whose RemoteAddr is
// then the real client, and below TLS.
func (g *Guard) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, g: g}
}

type listener struct {
	net.Listener
	g *Guard
}

// Accept returns the next admitted connection. Refused connections are
// closed and Accept keeps waiting; temporary accept errors (out of file
// descriptors) are retried after a pause that grows from 5 ms to 1 s, as
// net/http does.
func (l *listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if accept.Temporary(err) {
				delay = accept.Backoff(delay)
				time.Sleep(delay)
				continue
			}
			return nil, err
		}
		delay = 0
		ip := accept.PeerAddr(c.RemoteAddr())
		key, perClient, reason := l.g.acquire(ip)
		if reason != "" {
			_ = c.Close()
			l.g.refuse(reason, ip, key)
			continue
		}
		return &conn{Conn: c, g: l.g, key: key, perClient: perClient}, nil
	}
}

// conn releases its slot when closed, exactly once. net/http hands this
// same value to a handler that hijacks the connection (WebSockets), so the
// slot stays taken until the tunnel is closed.
type conn struct {
	net.Conn
	g         *Guard
	key       netip.Addr
	perClient bool
	once      sync.Once
}

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.g.release(c.key, c.perClient) })
	return err
}
