// Package audit is a black-box security audit of a running TLS reverse
// proxy: it probes the target from outside, as an attacker would, and
// reports pass, fail, warn or skip per check with the evidence seen.
//
// Every probe is bounded (per-probe timeout, a total request cap, at most
// four connections in flight, a paced handshake rate) and polite: only
// GET, HEAD and OPTIONS change hands, except the request-smuggling probes,
// which send a complete, harmless body that means the same request under
// every framing interpretation, and, only with Slow, one POST whose body
// is dripped and never finished. See README.md for the check ids.
package audit

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Status is the outcome of one check.
type Status string

// The four outcomes. Fail means the target is exploitable or misconfigured
// in a way the check is sure of; warn is a weakness or an inconclusive
// answer; skip means the check did not run (and says why).
const (
	Pass Status = "pass"
	Fail Status = "fail"
	Warn Status = "warn"
	Skip Status = "skip"
)

// Categories in report order.
const (
	CatTLS       = "tls"
	CatProtocol  = "protocol"
	CatHost      = "host"
	CatPaths     = "paths"
	CatSmuggling = "smuggling"
	CatHeaders   = "headers"
	CatLimits    = "limits"
)

// Categories lists the categories in the order reports show them.
var Categories = []string{CatTLS, CatProtocol, CatHost, CatPaths, CatSmuggling, CatHeaders, CatLimits}

// Check is the result of one check.
type Check struct {
	ID       string `json:"id"`       // stable, e.g. "tls.version.1.0" or "paths.bypass:/admin/"
	Category string `json:"category"` // one of Categories
	Status   Status `json:"status"`
	Evidence string `json:"evidence"` // what was sent and what came back
}

// Summary counts checks by status.
type Summary struct {
	Pass int `json:"pass"`
	Fail int `json:"fail"`
	Warn int `json:"warn"`
	Skip int `json:"skip"`
}

// Report is the outcome of Run.
type Report struct {
	Target   string        `json:"target"`
	Checks   []Check       `json:"checks"`
	Summary  Summary       `json:"summary"`
	Hosts    []string      `json:"-"` // the names probed (first is the primary)
	Started  time.Time     `json:"-"`
	Duration time.Duration `json:"-"`
	Requests int           `json:"-"` // connections and requests sent, the burst included
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return r.Summary.Fail > 0 }

// Check returns the check with the given id.
func (r *Report) Check(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// Options configure Run. Only Target is required.
type Options struct {
	// Target is https://host[:port]; the address every probe connects to.
	Target string
	// Hosts are the public names of the site. The first is sent as SNI and
	// Host by every probe; the others are used by the domain-fronting
	// check. Default: the host of Target.
	Hosts []string
	// CAFile is a PEM file of roots to verify the certificate chain with;
	// empty means the system roots.
	CAFile string
	// Insecure downgrades certificate chain and name failures to warnings.
	Insecure bool
	// ExpectPaths are the paths the site should serve ("/api/*" is a
	// prefix): each must be reachable and its neighbours refused.
	ExpectPaths []string
	// ForbiddenPaths must never be served, however spelt. Empty means
	// DefaultForbiddenPaths.
	ForbiddenPaths []string
	// Burst, when > 0, sends that many quick requests to / and looks for a
	// 429 or 503. At most MaxBurst.
	Burst int
	// Slow runs the slow-request probes limits.slow-headers (a request
	// head sent a byte a second, never finished) and limits.slow-body (a
	// POST body sent 10 bytes a second): each holds one connection until
	// the target closes it or answers, or SlowFor has passed.
	Slow bool
	// SlowFor bounds how long each slow probe holds its connection, from
	// MinSlowFor to MaxSlowFor. Default DefaultSlowFor.
	SlowFor time.Duration
	// Timeout bounds each probe (dial, handshake, response). Default 5s.
	Timeout time.Duration
	// MaxRequests caps the connections and requests of all checks but the
	// burst. Default DefaultMaxRequests.
	MaxRequests int
	// Concurrency is the number of probes in flight, 1..MaxConcurrency.
	// Default MaxConcurrency.
	Concurrency int
	// HandshakeRate paces new connections per second (burst the same).
	// Default DefaultHandshakeRate, under the per-client handshake limits
	// of a careful proxy so that pacing, not refusals, sets the speed.
	HandshakeRate float64
}

// Limits and defaults.
const (
	MaxBurst             = 500
	MaxConcurrency       = 4
	DefaultMaxRequests   = 300
	DefaultTimeout       = 5 * time.Second
	DefaultHandshakeRate = 15
	DefaultSlowFor       = 30 * time.Second
	MinSlowFor           = 5 * time.Second
	MaxSlowFor           = 2 * time.Minute
)

// DefaultForbiddenPaths are consoles and files of common application
// servers that a reverse proxy in the DMZ should never expose.
var DefaultForbiddenPaths = []string{"/admin/", "/manager/html", "/WEB-INF/web.xml", "/idsadmin/", "/cfadmin/", "/server-status"}

// UsageError is an invalid option: the caller's mistake, not the target's.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// Validate checks the options without sending anything (it reads CAFile).
func (o *Options) Validate() error {
	_, err := o.resolve()
	return err
}

// target is the validated form of Options.
type target struct {
	url      string
	addr     string // host:port to dial
	hosts    []string
	sni      string // "" when the primary name is an IP address
	hostHdr  string // Host header value of the primary name
	roots    *x509.CertPool
	forbid   []string
	expect   []string
	timeout  time.Duration
	maxReq   int
	conc     int
	hsRate   float64
	burst    int
	slow     bool
	slowFor  time.Duration
	insecure bool
}

func (o *Options) resolve() (*target, error) {
	u, err := url.Parse(o.Target)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, usagef("target %q: want https://host[:port]", o.Target)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, usagef("target %q: want https://host[:port] without path, query or credentials", o.Target)
	}
	t := &target{insecure: o.Insecure}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	t.url = "https://" + u.Host
	t.addr = net.JoinHostPort(u.Hostname(), port)
	for _, h := range o.Hosts {
		h = strings.TrimSpace(h)
		isIP := net.ParseIP(strings.Trim(h, "[]")) != nil
		if h == "" || (!isIP && strings.ContainsAny(h, "/ :@[]\r\n\t")) {
			return nil, usagef("--host %q: want a host name or IP address", h)
		}
		if !slices.Contains(t.hosts, h) {
			t.hosts = append(t.hosts, h)
		}
	}
	if len(t.hosts) == 0 {
		t.hosts = []string{u.Hostname()}
	}
	primary := t.hosts[0]
	if net.ParseIP(strings.Trim(primary, "[]")) == nil {
		t.sni = primary
	}
	t.hostHdr = primary
	if ip := net.ParseIP(strings.Trim(primary, "[]")); ip != nil && ip.To4() == nil {
		t.hostHdr = "[" + strings.Trim(primary, "[]") + "]"
	}
	if port != "443" {
		t.hostHdr += ":" + port
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, usagef("--ca: %v", err)
		}
		t.roots = x509.NewCertPool()
		if !t.roots.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca %s: no PEM certificate in the file", o.CAFile)
		}
	}
	t.forbid = o.ForbiddenPaths
	if len(t.forbid) == 0 {
		t.forbid = DefaultForbiddenPaths
	}
	for _, p := range t.forbid {
		if err := checkPath(p); err != nil {
			return nil, usagef("forbidden path %q: %v", p, err)
		}
	}
	for _, p := range o.ExpectPaths {
		if err := checkPath(strings.TrimSuffix(p, "*")); err != nil {
			return nil, usagef("expected path %q: %v", p, err)
		}
	}
	t.expect = o.ExpectPaths
	if o.Burst < 0 || o.Burst > MaxBurst {
		return nil, usagef("--burst %d: want 1..%d", o.Burst, MaxBurst)
	}
	t.burst = o.Burst
	t.slow = o.Slow
	t.slowFor = o.SlowFor
	if t.slowFor == 0 {
		t.slowFor = DefaultSlowFor
	}
	if t.slowFor < MinSlowFor || t.slowFor > MaxSlowFor {
		return nil, usagef("--slow-for %v: want 5s to 2m", o.SlowFor)
	}
	t.timeout = o.Timeout
	if t.timeout < 0 {
		return nil, usagef("--timeout %v: must be positive", o.Timeout)
	}
	if t.timeout == 0 {
		t.timeout = DefaultTimeout
	}
	t.maxReq = o.MaxRequests
	if t.maxReq <= 0 {
		t.maxReq = DefaultMaxRequests
	}
	t.conc = o.Concurrency
	if t.conc <= 0 || t.conc > MaxConcurrency {
		t.conc = MaxConcurrency
	}
	t.hsRate = o.HandshakeRate
	if t.hsRate <= 0 {
		t.hsRate = DefaultHandshakeRate
	}
	return t, nil
}

// checkPath accepts an origin-form path that can be written on a request
// line as is.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("must start with /")
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return errors.New("must not contain spaces or control bytes")
		}
	}
	return nil
}

// auditor is one run.
type auditor struct {
	t        *target
	pace     *rate.Limiter
	sent     atomic.Int64 // budgeted requests
	burstN   atomic.Int64 // burst requests
	idle     chan *pconn
	sem      chan struct{}
	mu       sync.Mutex
	checks   []Check
	root     *response // GET / with the primary host
	notFound *response // GET of a path that exists nowhere
}

// Run audits the target. It returns an error for invalid options (a
// *UsageError) or when no TLS connection to the target can be made at all;
// everything else is a check in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	t, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	a := newAuditor(t)
	defer a.closeIdle()
	start := time.Now()
	c, err := a.dialTLS(ctx, a.httpTLS(t.sni))
	if err == nil {
		_ = c.Close()
	} else {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !isHandshakeRefusal(err) {
			return nil, fmt.Errorf("cannot connect to %s: %w", t.addr, err)
		}
		// A handshake refused for our ClientHello is still an answer: the
		// TLS checks will say what the target accepts.
	}
	a.sent.Add(1)

	a.runTLS(ctx)
	a.baselines(ctx)
	a.runProtocol(ctx)
	a.runHost(ctx)
	a.runHeaders()
	a.runSmuggling(ctx)
	a.cookies(a.runExpect(ctx))
	a.runPaths(ctx)
	a.runLimits(ctx) // last: a burst may exhaust the target's rate limit
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r := &Report{
		Target:   t.url,
		Hosts:    t.hosts,
		Started:  start,
		Duration: time.Since(start),
		Requests: int(a.sent.Load() + a.burstN.Load()),
	}
	for _, cat := range Categories {
		for _, c := range a.checks {
			if c.Category == cat {
				r.Checks = append(r.Checks, c)
			}
		}
	}
	for _, c := range r.Checks {
		switch c.Status {
		case Pass:
			r.Summary.Pass++
		case Fail:
			r.Summary.Fail++
		case Warn:
			r.Summary.Warn++
		case Skip:
			r.Summary.Skip++
		}
	}
	return r, nil
}

func newAuditor(t *target) *auditor {
	return &auditor{
		t:    t,
		pace: rate.NewLimiter(rate.Limit(t.hsRate), max(1, int(t.hsRate))),
		idle: make(chan *pconn, t.conc),
		sem:  make(chan struct{}, t.conc),
	}
}

// add records a check.
func (a *auditor) add(cat, id string, st Status, format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, Check{ID: id, Category: cat, Status: st, Evidence: fmt.Sprintf(format, args...)})
}

// take reserves one request of the budget.
func (a *auditor) take() bool {
	if a.sent.Add(1) > int64(a.t.maxReq) {
		a.sent.Add(-1)
		return false
	}
	return true
}

const budgetMsg = "request budget exhausted (%d requests); not probed"

// skipBudget records id as not run because the request budget is spent.
func (a *auditor) skipBudget(cat, id string) {
	a.add(cat, id, Skip, budgetMsg, a.t.maxReq)
}

// baselines fetches the answers other checks compare with.
func (a *auditor) baselines(ctx context.Context) {
	a.root = a.do(ctx, "GET", a.req("GET", "/"))
	a.notFound = a.do(ctx, "GET", a.req("GET", "/"+randToken()+"/"+randToken()+".html"))
}
