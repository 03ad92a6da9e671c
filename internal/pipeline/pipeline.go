// Package pipeline is the one place that orders rampart's stages. A request
// passes them in this order, and a refusal at any stage ends it there:
//
//  1. connection guard  per-client and total connection caps, at accept   (connguard, in server)
//  2. TLS policy        versions, AEAD suites, ALPN http/1.1, mTLS         (tlspolicy + protoguard)
//  3. protocol guard    HTTP/1.1 only, strict framing, smuggling, sizes    (protoguard; verdict read below)
//  4. host gate         SNI and Host name the same configured site         (hostgate.go)
//  5. route match       canonical path, exact > prefix > regex, deny, methods (route)
//  6. client identity   trusted proxies / PROXY protocol → client address  (clientip)
//  7. ban check         brute-force and manual bans                        (bruteforce)
//  8. rate limit        per client and route class                         (ratelimit)
//  9. WAF               Coraza + OWASP CRS                                 (waf)
//  10. cache            static resources, revalidated                      (cache)
//  11. proxy            WebSocket caps, keepalive pool, response hardening (wscap, proxy)
//
// Stages 1–3 work on the connection before net/http parses a request;
// stages 4 and 5 run inline in ServeHTTP because they select the site and
// route whose own chain (stages 6–11, built once per config load in
// chain.go) handles the rest.
package pipeline

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-proxy/rampart/internal/auth"
	"github.com/rampart-proxy/rampart/internal/clientip"
	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/protoguard"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/route"
)

// Pipeline is the request handler built from one config. It is immutable;
// a reload builds a new one and swaps it in.
type Pipeline struct {
	Config   *config.Config
	sites    map[string]*site
	all      []*site
	auths    *auth.Set
	resolver *clientip.Resolver
}

// Resolver is this config's client identity: stage 6, and what the
// listeners under TLS (PROXY protocol, connection caps) ask about trusted
// proxies.
func (p *Pipeline) Resolver() *clientip.Resolver { return p.resolver }

// ServeHTTP runs the stages for one request.
func (p *Pipeline) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	gc := protoguard.FromContext(r.Context())
	info := &reqinfo.Info{ID: reqinfo.NewID(), Start: time.Now()}
	if gc != nil {
		info.Peer = gc.Peer()
		info.Client = info.Peer.Addr()
		info.TLSVersion = protoguard.VersionName(gc.TLS().Version)
	}
	r = r.WithContext(reqinfo.With(r.Context(), info))
	w := newStatusWriter(rw, gc)
	var s *site
	defer func() {
		p.finish(w, r, s, info)
		releaseStatusWriter(w)
	}()
	w.Header().Set("X-Request-ID", info.ID)

	// Stage 3: the guard's verdict on this request's head.
	if gc != nil {
		if rej := gc.Verdict(); rej != nil {
			w.Header().Set("Connection", "close")
			r.Host, r.RequestURI = "", "" // the synthetic stand-in's; the real line is logged
			observe.Refuse(w, r, rej.Status, rej.Stage, rej.Reason, slog.String("line", rej.Line))
			return
		}
	}

	// Stage 4: host gate.
	var reason string
	if s, reason = p.hostGate(r, gc); s == nil {
		refuse(w, r, http.StatusMisdirectedRequest, "hostgate", reason)
		return
	}
	info.Site = s.conf.Host
	s.setHeaders(w.Header())

	// Stage 5: route match on the canonical path.
	rt, status, reason := s.route(r, info)
	if status != 0 {
		if status == http.StatusMethodNotAllowed && rt != nil {
			w.Header().Set("Allow", rt.allow)
		}
		refuse(w, r, status, "route", reason)
		return
	}
	if r.ContentLength > int64(rt.conf.MaxBody) {
		refuse(w, r, http.StatusRequestEntityTooLarge, "route", "body-too-large")
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, int64(rt.conf.MaxBody))
	}

	// Stages 6–11.
	rt.handler.ServeHTTP(w, r)
}

// refuse answers a request refused by the host gate or the router. The
// connection is closed after malformed or misdirected requests (a client
// that sends one is broken or probing) and after any refusal of a request
// with a body, which would otherwise be read and discarded first.
func refuse(w http.ResponseWriter, r *http.Request, status int, stage, reason string) {
	if r.ContentLength != 0 || status == http.StatusBadRequest || status == http.StatusMisdirectedRequest {
		w.Header().Set("Connection", "close")
	}
	observe.Refuse(w, r, status, stage, reason)
}

func (p *Pipeline) finish(w *statusWriter, r *http.Request, s *site, info *reqinfo.Info) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	m := &unknownSite
	if s != nil {
		m = &s.metrics
	}
	if i := status/100 - 1; i >= 0 && i < len(m.requests) {
		m.requests[i].Inc()
	}
	m.duration.Observe(time.Since(info.Start).Seconds())
	observe.Default().Access(r, status, w.bytes)
}

// siteMetrics are a site's series, looked up once per config load rather
// than by label on every request.
type siteMetrics struct {
	requests [5]prometheus.Counter // 1xx … 5xx
	duration prometheus.Observer
}

func newSiteMetrics(site string) siteMetrics {
	var m siteMetrics
	for i, class := range [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		m.requests[i] = observe.Metrics.Requests.WithLabelValues(site, class)
	}
	m.duration = observe.Metrics.Duration.WithLabelValues(site)
	return m
}

// unknownSite counts requests refused before a site was selected.
var unknownSite = newSiteMetrics("unknown")

// requestPath returns the path of the request-target as the client sent it,
// without query, also for absolute-form targets (whose authority the guard
// already matched against Host).
func requestPath(uri string) string {
	if !strings.HasPrefix(uri, "/") {
		if i := strings.Index(uri, "://"); i >= 0 {
			rest := uri[i+3:]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				uri = rest[j:]
			} else {
				uri = "/"
			}
		}
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return uri
}

// route is stage 5 for one site: it returns the matched route, and the
// status and reason when the request is refused.
func (s *site) route(r *http.Request, info *reqinfo.Info) (*routeEntry, int, string) {
	res, err := route.Normalize(requestPath(r.RequestURI))
	if err != nil {
		return nil, http.StatusBadRequest, err.(*route.Error).Reason
	}
	info.Path = res.Path
	ri, di := s.matcher.Match(res.Path)
	if di >= 0 {
		info.Route = s.matcher.DescribeDeny(di)
		return nil, s.conf.Deny[di].Status, "deny"
	}
	if ri < 0 {
		return nil, s.conf.DenyStatus, "no-route"
	}
	rt := s.routes[ri]
	info.Route = rt.desc
	if res.JSessionID != "" && !rt.conf.AllowJSessionID {
		return nil, http.StatusBadRequest, route.ReasonPathParameter
	}
	if r.Method == http.MethodTrace || r.Method == "TRACK" {
		return rt, http.StatusMethodNotAllowed, "trace"
	}
	if !rt.methods[r.Method] {
		return rt, http.StatusMethodNotAllowed, "method-not-allowed"
	}
	if isUpgrade(r) {
		if !rt.conf.WebSocket {
			return rt, http.StatusForbidden, "upgrade-not-allowed"
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Method != http.MethodGet {
			return rt, http.StatusBadRequest, "upgrade-not-websocket"
		}
	}
	return rt, 0, ""
}

func isUpgrade(r *http.Request) bool {
	if _, ok := r.Header["Upgrade"]; ok {
		return true
	}
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}
