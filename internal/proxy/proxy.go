// Package proxy is the last stage: it forwards an admitted request to one
// of the site's upstream targets over a keepalive pool, and hardens what
// comes back.
//
// What the upstream receives: the canonical path the router matched (never
// the raw one), Host set to the public host (or upstream.host_header),
// X-Forwarded-For/-Proto/-Host/-Port, X-Real-IP and X-Request-ID set by
// rampart — whatever the client sent in those headers is dropped — and no
// hop-by-hop headers. Redirects from the upstream are passed to the client,
// never followed.
//
// Requests without a body to a plain-HTTP target go out on the handler's
// goroutine over a pool of keepalive connections (direct.go); the others
// (bodies, WebSocket upgrades, HTTPS targets) through http.Transport. Both
// paths share the timeouts (connect, response head, read_timeout for each
// pause in a response body), the 1 MiB bound on a response head and the
// number of idle connections kept per target (upstream.keepalive).
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/deadline"
	"github.com/rampart-proxy/rampart/internal/egress"
	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/protoguard"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/tlspolicy"
	"github.com/rampart-proxy/rampart/internal/wscap"
)

// Upstream forwards to one site's targets.
type Upstream struct {
	rp          *httputil.ReverseProxy
	targets     []*target
	next        atomic.Uint64
	transport   *http.Transport
	headerWait  time.Duration // response_header_timeout
	readWait    time.Duration // read_timeout
	hostHeader  string
	strip       []string
	site        string
	failTimeout time.Duration
}

type target struct {
	url       *url.URL
	name      string
	downUntil atomic.Int64 // unix nanos; passive health

	// direct carries requests without a body to a plain-HTTP target
	// (direct.go); nil for an HTTPS target.
	direct *directPool

	// rampart_upstream_requests_total series, resolved once per config
	// load rather than by label on every request.
	ok, failed, connectFailed prometheus.Counter
}

func newTarget(u *url.URL) *target {
	m := observe.Metrics.Upstream
	return &target{
		url:           u,
		name:          u.Host,
		ok:            m.WithLabelValues(u.Host, "ok"),
		failed:        m.WithLabelValues(u.Host, "error"),
		connectFailed: m.WithLabelValues(u.Host, "connect-failed"),
	}
}

// copyBuffers are the 32 KiB buffers ReverseProxy copies bodies through;
// without a pool it allocates one per response.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte  { return *p.pool.Get().(*[]byte) }
func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

// alwaysStripped are response headers that advertise upstream internals.
var alwaysStripped = []string{"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Runtime", "X-Generator"}

// New builds the upstream of site s. Certificates and CA files are read now.
func New(cfg *config.Config, s *config.Site, dialer *egress.Dialer, owned []string) (*Upstream, error) {
	u := &Upstream{hostHeader: s.Upstream.HostHeader, site: s.Host, failTimeout: s.Upstream.FailTimeout.D(),
		headerWait: s.Upstream.ResponseHeaderTimeout.D(), readWait: s.Upstream.ReadTimeout.D()}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, s.Upstream.ConnectTimeout.D())
		defer cancel()
		return dialer.DialContext(ctx, network, addr)
	}
	for _, raw := range s.Upstream.Targets {
		pu, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		t := newTarget(pu)
		if pu.Scheme == "http" {
			t.direct = &directPool{
				dial:        func(ctx context.Context) (net.Conn, error) { return dial(ctx, "tcp", t.name) },
				max:         s.Upstream.Keepalive,
				idleTimeout: idleConnTimeout,
				readTimeout: s.Upstream.ReadTimeout.D(),
			}
		}
		u.targets = append(u.targets, t)
	}
	tc, err := upstreamTLS(cfg, s)
	if err != nil {
		return nil, err
	}
	sendWait := s.Upstream.SendTimeout.D()
	u.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil || sendWait <= 0 {
				return c, err
			}
			return &sendBoundConn{Conn: c, timeout: sendWait}, nil
		},
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  u.headerWait,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		MaxIdleConns:           s.Upstream.Keepalive * len(u.targets),
		MaxIdleConnsPerHost:    s.Upstream.Keepalive,
		IdleConnTimeout:        idleConnTimeout,
		ExpectContinueTimeout:  time.Second,
		// The client's Accept-Encoding is passed on as it is; the proxy
		// does not ask for gzip itself and unpack it (nor does the direct
		// path).
		DisableCompression: true,
		// HTTP/1.1 to upstreams: WebSocket upgrades and the framing the
		// guard checked stay the same on both legs.
		ForceAttemptHTTP2: false,
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		Proxy:             nil, // never an outbound proxy from the environment
	}
	u.strip = append(append([]string{}, alwaysStripped...), owned...)
	u.strip = append(u.strip, s.Headers.Remove...)
	u.rp = &httputil.ReverseProxy{
		Rewrite:   u.rewrite,
		Transport: u,
		// Streaming answers (unknown length, event streams) are flushed at
		// once by ReverseProxy itself; the rest is written in full buffers,
		// not one system call per upstream read.
		FlushInterval:  0,
		BufferPool:     copyBuffers,
		ModifyResponse: u.modifyResponse,
		ErrorHandler:   u.errorHandler,
		// What ReverseProxy reports itself (a body that broke off after
		// the head was sent: the client's answer is cut short) goes to
		// the security log as an upstream event, not to stderr.
		ErrorLog: log.New(proxyErrors{site: s.Host}, "", 0),
	}
	return u, nil
}

func upstreamTLS(cfg *config.Config, s *config.Site) (*tls.Config, error) {
	ut := s.Upstream.TLS
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         ut.ServerName,
		InsecureSkipVerify: ut.InsecureSkipVerify,
		NextProtos:         []string{"http/1.1"},
	}
	if ut.CA != "" {
		pool, err := tlspolicy.LoadPool(cfg.Path(ut.CA))
		if err != nil {
			return nil, fmt.Errorf("%s: upstream.tls.ca: %w", s.Host, err)
		}
		tc.RootCAs = pool
	}
	if ut.Cert != "" {
		if err := tlspolicy.CheckKeyFile(cfg.Path(ut.Key)); err != nil {
			return nil, fmt.Errorf("%s: upstream.tls.key: %w", s.Host, err)
		}
		c, err := tls.LoadX509KeyPair(cfg.Path(ut.Cert), cfg.Path(ut.Key))
		if err != nil {
			return nil, fmt.Errorf("%s: upstream.tls cert/key: %w", s.Host, err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// ServeHTTP implements http.Handler.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.rp.ServeHTTP(w, r) }

// bodyFailure is why the client's body of r broke off, as the protocol
// guard that cut it knows (nil without a guarded connection): a request
// that fails for that is the client's failure, not an upstream's.
func bodyFailure(r *http.Request) error {
	if gc := protoguard.FromContext(r.Context()); gc != nil {
		return gc.BodyFailure()
	}
	return nil
}

// Close drops idle upstream connections (after a reload replaced u).
func (u *Upstream) Close() {
	u.transport.CloseIdleConnections()
	for _, t := range u.targets {
		if t.direct != nil {
			t.direct.close()
		}
	}
}

func (u *Upstream) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	info := reqinfo.Of(in)
	out.URL.Scheme = "http"
	out.URL.Host = u.targets[0].name // replaced per attempt in RoundTrip
	// Opaque is written to the request line as is: exactly the canonical
	// path that was matched.
	out.URL.Opaque = info.Path
	out.URL.Path, out.URL.RawPath = "", ""
	out.URL.RawQuery = in.URL.RawQuery
	if u.hostHeader != "" {
		out.Host = u.hostHeader
	} else {
		out.Host = in.Host
	}
	// The client's own forwarding headers (X-Forwarded-*, X-Real-IP,
	// X-Client-IP, True-Client-IP, …) are already gone: the client identity
	// stage, first in every route chain, strips them in any spelling. The
	// keys below are written in canonical form so that Set need not
	// allocate a canonical copy on every request.
	h := out.Header
	h.Del("Via")
	client := info.Client.String()
	h.Set("X-Forwarded-For", client)
	h.Set("X-Real-Ip", client)
	h.Set("X-Forwarded-Proto", "https")
	h.Set("X-Forwarded-Host", in.Host)
	if la, ok := in.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		h.Set("X-Forwarded-Port", strconv.Itoa(la.Port))
	}
	h.Set("X-Request-Id", info.ID)
}

// RoundTrip picks a healthy target round-robin. A target that refuses the
// connection is skipped for fail_timeout; requests without a body are
// retried on the next target, since nothing reached the first.
func (u *Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	var lastErr error
	tries := len(u.targets)
	for attempt := 0; attempt < tries; attempt++ {
		t := u.pick()
		if t.url.Scheme == "https" {
			req.URL.Scheme = "https"
		} else {
			req.URL.Scheme = "http"
		}
		req.URL.Host = t.name
		reqinfo.Of(req).Upstream = t.name
		var resp *http.Response
		var err error
		if t.direct != nil && directEligible(req) {
			resp, err = t.direct.roundTrip(req, u.headerWait)
		} else {
			resp, err = u.transportRoundTrip(req)
		}
		if err == nil {
			t.ok.Inc()
			return resp, nil
		}
		lastErr = err
		if bodyFailure(req) != nil {
			// The client's body broke off: not the target's failure
			// (errorHandler answers 408/400).
			return nil, err
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.failed.Inc()
			return nil, err
		}
		t.connectFailed.Inc()
		t.downUntil.Store(time.Now().Add(u.failTimeout).UnixNano())
		if req.Body != nil && req.Body != http.NoBody {
			break
		}
	}
	return nil, lastErr
}

// transportRoundTrip sends req through http.Transport, the response body
// bounded by read_timeout per pause — also the refusal of an upgrade; a
// 101's body is the tunnel, which has its own idle timeout.
func (u *Upstream) transportRoundTrip(req *http.Request) (*http.Response, error) {
	if u.readWait <= 0 {
		return u.transport.RoundTrip(req)
	}
	ctx, cancel := context.WithCancel(req.Context())
	resp, err := u.transport.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The tunnel no longer depends on the context; release it with
		// the request's.
		context.AfterFunc(req.Context(), cancel)
		return resp, nil
	}
	resp.Body = newPauseBoundBody(resp.Body, u.readWait, cancel)
	return resp, nil
}

// sendBoundConn bounds every write to an upstream connection by
// send_timeout: http.Transport starts response_header_timeout only once
// the request is written, so an upstream that stopped reading a request
// body held the exchange (and the client) for good.
type sendBoundConn struct {
	net.Conn
	timeout  time.Duration
	writeBy  deadline.Rolling
	external atomic.Bool // someone else's write deadline is in force
}

// NetConn is the connection underneath (a WebSocket tunnel parks it by its
// file descriptor).
func (c *sendBoundConn) NetConn() net.Conn { return c.Conn }

// SetWriteDeadline hands the write deadline to the caller until it clears
// it again.
func (c *sendBoundConn) SetWriteDeadline(t time.Time) error {
	c.external.Store(!t.IsZero())
	c.writeBy.Forget()
	return c.Conn.SetWriteDeadline(t)
}

func (c *sendBoundConn) SetDeadline(t time.Time) error {
	c.external.Store(!t.IsZero())
	c.writeBy.Forget()
	return c.Conn.SetDeadline(t)
}

func (c *sendBoundConn) Write(b []byte) (int, error) {
	if c.external.Load() {
		return c.Conn.Write(b)
	}
	if by, due := c.writeBy.Next(c.timeout); due {
		_ = c.Conn.SetWriteDeadline(by)
	}
	return c.Conn.Write(b)
}

// proxyErrors carries ReverseProxy's own error reports into the security
// log.
type proxyErrors struct{ site string }

func (p proxyErrors) Write(b []byte) (int, error) {
	observe.Default().Event(slog.LevelWarn, "upstream",
		slog.String("reason", "response-cut-short"), slog.String("site", p.site),
		slog.String("error", observe.Clip(strings.TrimSpace(string(b)), 300)))
	return len(b), nil
}

func (u *Upstream) pick() *target {
	n := uint64(len(u.targets))
	start := u.next.Add(1)
	now := time.Now().UnixNano()
	for i := uint64(0); i < n; i++ {
		t := u.targets[(start+i)%n]
		if t.downUntil.Load() <= now {
			return t
		}
	}
	// Every target failed recently: try one anyway rather than refuse.
	return u.targets[start%n]
}

func (u *Upstream) modifyResponse(resp *http.Response) error {
	for _, k := range u.strip {
		resp.Header.Del(k)
	}
	wscap.AdoptUpgrade(resp) // a 101: the WebSocket tunnel takes the connection over
	return nil
}

func (u *Upstream) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	reason := "upstream-error"
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		status = http.StatusGatewayTimeout
		reason = "upstream-timeout"
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		reason = "client-gone"
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		observe.Refuse(w, r, http.StatusRequestEntityTooLarge, "route", "body-too-large")
		return
	}
	if failed := bodyFailure(r); failed != nil {
		observe.BrokenBody(w, r, failed) // the client's failure, not the upstream's
		return
	}
	info := reqinfo.Of(r)
	observe.Default().Event(slog.LevelWarn, "upstream",
		slog.String("reason", reason), slog.String("request_id", info.ID),
		slog.String("site", u.site), slog.String("upstream", info.Upstream), slog.String("error", err.Error()))
	observe.WriteError(w, r, status)
}

// Get sends a GET for path to the site's targets (round-robin, the same
// keepalive pool and TLS policy as proxied requests, and so the egress
// allowlist) on rampart's own behalf: edge authentication uses it to verify
// credentials and fetch signing keys. The caller closes the body.
func (u *Upstream) Get(ctx context.Context, path string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://upstream"+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Host = u.site
	if u.hostHeader != "" {
		req.Host = u.hostHeader
	}
	return u.RoundTrip(req)
}

// Serves reports whether hostport ("10.0.0.5:8553") is one of the targets.
func (u *Upstream) Serves(hostport string) bool {
	for _, t := range u.targets {
		if t.name == hostport {
			return true
		}
	}
	return false
}
