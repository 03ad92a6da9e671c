// Package wscap caps WebSockets (part of pipeline stage 11).
//
// A WebSocket holds a client connection and an upstream connection for as
// long as it lives, so the number open at once is capped per site, per
// route and per client of a route. A request over any cap is
// answered 503 before the upstream is contacted. The counts are plain
// atomics and a small map per route; a slot is taken when the upgrade
// request arrives and given back, exactly once, when the tunnel closes.
//
// Route.Handler also takes each tunnel over from the proxy once it is set
// up (tunnel.go): an idle tunnel then holds no goroutine and no copy
// buffer, only its two connections, and a timer closes it after the idle
// timeout.
package wscap

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/state"
)

// stage names this package in security events and refusal metrics.
const stage = "websocket"

// Refusal reasons.
const (
	ReasonSite      = "site-cap"
	ReasonRoute     = "route-cap"
	ReasonPerClient = "per-client-cap"
)

var openGauge = promauto.With(observe.Registry).NewGaugeVec(prometheus.GaugeOpts{
	Name: "rampart_websockets_open",
	Help: "WebSockets open, by site.",
}, []string{"site"})

// Tunnels ended, by who ended them (client, upstream, idle, server), and
// the bytes they carried: a rise of "idle" or "server" ends, or of bytes
// from clients, shows on a dashboard without reading the access log.
var (
	endedCounter = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_websockets_ended_total",
		Help: "WebSocket tunnels ended, by the side that ended them.",
	}, []string{"ended_by"})
	bytesCounter = promauto.With(observe.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_websocket_bytes_total",
		Help: "Bytes carried by ended WebSocket tunnels after the 101, by direction.",
	}, []string{"direction"})
	endedBy = map[string]prometheus.Counter{
		EndedByClient:   endedCounter.WithLabelValues(EndedByClient),
		EndedByUpstream: endedCounter.WithLabelValues(EndedByUpstream),
		EndedByIdle:     endedCounter.WithLabelValues(EndedByIdle),
		EndedByServer:   endedCounter.WithLabelValues(EndedByServer),
	}
	bytesFromClients = bytesCounter.WithLabelValues("from_client")
	bytesToClients   = bytesCounter.WithLabelValues("to_client")
)

// Site counts the WebSockets of one site. Keep it across config reloads
// (Update changes the cap) so that open sockets stay counted.
type Site struct {
	max   atomic.Int64
	open  atomic.Int64
	gauge prometheus.Gauge
}

// NewSite returns a Site allowing max WebSockets at once; max <= 0 means no
// site-wide cap (the config layer applies defaults before this point).
func NewSite(max int) *Site {
	s := &Site{gauge: openGauge.WithLabelValues("")}
	s.max.Store(int64(max))
	return s
}

// Named sets the site label of rampart_websockets_open (the configured
// host) and returns s. Call it before the site is used.
func (s *Site) Named(host string) *Site {
	s.gauge = openGauge.WithLabelValues(host)
	return s
}

// Update sets a new cap. Open sockets stay counted; over a lowered cap no
// new socket is admitted until enough have closed.
func (s *Site) Update(max int) { s.max.Store(int64(max)) }

// Open returns the number of WebSockets open on the site.
func (s *Site) Open() int { return int(s.open.Load()) }

// Route returns the counter of one route of s: at most max WebSockets on
// the route and perClient per client; <= 0 means no cap at that level.
func (s *Site) Route(max, perClient int) *Route {
	r := &Route{site: s, clients: make(map[netip.Addr]int)}
	r.Update(max, perClient)
	return r
}

// Route counts the WebSockets of one route.
type Route struct {
	site      *Site
	max       atomic.Int64
	perClient atomic.Int64
	open      atomic.Int64

	mu      sync.Mutex
	clients map[netip.Addr]int // open sockets per client; no zero entries
}

// Update sets new caps, keeping the sockets already open.
func (r *Route) Update(max, perClient int) {
	r.max.Store(int64(max))
	r.perClient.Store(int64(perClient))
}

// Open returns the number of WebSockets open on the route.
func (r *Route) Open() int { return int(r.open.Load()) }

// Acquire takes a slot for a WebSocket of client. When ok, release gives it
// back; calling release more than once is harmless. Otherwise reason says
// which cap was reached (ReasonSite, ReasonRoute, ReasonPerClient) and the
// caller answers 503 without contacting the upstream.
//
// A client is an IPv4 address or an IPv6 /64, as for the connection caps.
// The per-client map holds only clients with sockets open, so it is bounded
// by the route (or site) cap.
func (r *Route) Acquire(client netip.Addr) (release func(), reason string, ok bool) {
	s := r.site
	if !tryInc(&s.open, s.max.Load()) {
		return nil, ReasonSite, false
	}
	if !tryInc(&r.open, r.max.Load()) {
		s.open.Add(-1)
		return nil, ReasonRoute, false
	}
	key := state.ClientUnit(client)
	r.mu.Lock()
	n := r.clients[key]
	if pc := r.perClient.Load(); pc > 0 && int64(n) >= pc {
		r.mu.Unlock()
		r.open.Add(-1)
		s.open.Add(-1)
		return nil, ReasonPerClient, false
	}
	r.clients[key] = n + 1
	r.mu.Unlock()
	gauge := s.gauge
	gauge.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			if n := r.clients[key] - 1; n > 0 {
				r.clients[key] = n
			} else {
				delete(r.clients, key)
			}
			r.mu.Unlock()
			r.open.Add(-1)
			s.open.Add(-1)
			gauge.Dec()
		})
	}, "", true
}

// tryInc increments v unless it has reached max (max <= 0: no cap).
func tryInc(v *atomic.Int64, max int64) bool {
	for {
		n := v.Load()
		if max > 0 && n >= max {
			return false
		}
		if v.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Handler serves the upgrade requests of the route (WebSockets) through
// next, the proxy. Over a cap it answers 503 through observe.Refuse and
// next never sees the request. Otherwise the slot is held until the
// WebSocket ends, whichever side ends it, and the tunnel is closed after
// idle without traffic (idle <= 0: never). The tunnel is taken over from
// the proxy once it is set up (see tunnel.go); that needs the proxy's
// ModifyResponse to call AdoptUpgrade. Requests that are not upgrades pass
// through untouched.
//
// The client is reqinfo Client (stage 6), or the TCP peer when that stage
// did not run.
func (r *Route) Handler(idle time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !IsUpgrade(req) {
			next.ServeHTTP(w, req)
			return
		}
		release, reason, ok := r.Acquire(clientOf(req))
		if !ok {
			observe.Refuse(w, req, http.StatusServiceUnavailable, stage, reason)
			return
		}
		t := newTunnel(idle, release)
		t.req, t.host = reqinfo.Of(req), req.Host
		// Deferred: ReverseProxy panics (http.ErrAbortHandler) when a
		// response body breaks off, and a slot must not leak with it.
		defer func() {
			if !t.takenOver() {
				// Refused by the upstream, copied by the proxy itself or
				// aborted: over now.
				release()
			}
		}()
		next.ServeHTTP(&tunnelWriter{ResponseWriter: w, t: t}, req.WithContext(withTunnel(req.Context(), t)))
	})
}

func clientOf(req *http.Request) netip.Addr {
	info := reqinfo.Of(req)
	if info.Client.IsValid() {
		return info.Client
	}
	if info.Peer.IsValid() {
		return info.Peer.Addr()
	}
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}

// IsUpgrade reports whether req asks for a protocol switch the way
// httputil.ReverseProxy recognises one: an "upgrade" token in Connection
// and a non-empty Upgrade header. Any such request would become a tunnel,
// so every one is counted, whatever protocol it names.
func IsUpgrade(req *http.Request) bool {
	if req.Header.Get("Upgrade") == "" {
		return false
	}
	for _, line := range req.Header["Connection"] {
		for line != "" {
			var tok string
			tok, line, _ = strings.Cut(line, ",")
			if strings.EqualFold(strings.Trim(tok, " \t"), "upgrade") {
				return true
			}
		}
	}
	return false
}

var _ net.Conn = (*idleConn)(nil)
