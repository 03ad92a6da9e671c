package cache

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

const testSite = "finesse.example.com"

// fakeClock is the store's clock in tests: time moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// origin is the upstream: it serves one versioned resource per path,
// answers conditional requests, and counts what it saw.
type origin struct {
	mu      sync.Mutex
	body    string
	etag    string
	lastMod time.Time
	cc      string      // Cache-Control sent with every answer, "" for none
	extra   http.Header // more fields for 200 answers
	status  int         // when set, every request gets this status and no resource
	gate    chan struct{}
	gateAll bool // gate every request, not only conditional ones
	serve   http.HandlerFunc

	hits      atomic.Int64
	cond      atomic.Int64 // requests with If-None-Match or If-Modified-Since
	inm       atomic.Int64 // requests with If-None-Match
	bodyBytes atomic.Int64 // body bytes written
	seen      []http.Header
	methods   []string
}

func newOrigin() *origin {
	return &origin{body: "v1", etag: `"v1"`, lastMod: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}
}

func (o *origin) set(f func(o *origin)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.hits.Add(1)
	conditional := r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != ""
	if conditional {
		o.cond.Add(1)
	}
	if r.Header.Get("If-None-Match") != "" {
		o.inm.Add(1)
	}
	o.mu.Lock()
	o.seen = append(o.seen, r.Header.Clone())
	o.methods = append(o.methods, r.Method)
	gate, gateAll := o.gate, o.gateAll
	serve := o.serve
	body, etag, lastMod, cc, status := o.body, o.etag, o.lastMod, o.cc, o.status
	extra := o.extra.Clone()
	o.mu.Unlock()

	if gate != nil && (conditional || gateAll) {
		<-gate
	}
	if serve != nil {
		serve(w, r)
		return
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	h := w.Header()
	if cc != "" {
		h.Set("Cache-Control", cc)
	}
	if etag != "" {
		h.Set("ETag", etag)
	}
	if !lastMod.IsZero() {
		h.Set("Last-Modified", lastMod.Format(http.TimeFormat))
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && etag == "" && !lastMod.After(ims) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	for k, v := range extra {
		h[k] = v
	}
	h.Set("Content-Type", "application/javascript")
	n, _ := io.WriteString(w, body)
	o.bodyBytes.Add(int64(n))
}

func (o *origin) headers() []http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]http.Header(nil), o.seen...)
}

// testEnv is a cache in front of a real reverse proxy to a real origin,
// reached through a real front server, as in the pipeline.
type testEnv struct {
	clock   *fakeClock
	origin  *origin
	up      *httptest.Server
	store   *Store
	handler http.Handler // the cache stage in front of the proxy
	front   *httptest.Server
	client  *http.Client

	mu     sync.Mutex
	states []string // reqinfo CacheState of each finished request
}

func newTestEnv(t *testing.T, cfg RouteConfig, budget int64) *testEnv {
	t.Helper()
	return newTestEnvWith(t, cfg, NewStore(testSite, budget))
}

// newTestEnvWith is newTestEnv around a given store.
func newTestEnvWith(t *testing.T, cfg RouteConfig, store *Store) *testEnv {
	t.Helper()
	env := &testEnv{clock: newFakeClock(), origin: newOrigin()}
	env.up = httptest.NewServer(env.origin)
	target, _ := url.Parse(env.up.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	upTransport := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 200}
	proxy.Transport = upTransport
	proxy.ErrorLog = log.New(io.Discard, "", 0)

	env.store = store
	env.store.now = env.clock.Now
	cfg.Enabled = true
	h := env.store.Handler(cfg, proxy)
	env.handler = h
	env.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &reqinfo.Info{ID: reqinfo.NewID(), Site: testSite, Path: r.URL.Path}
		h.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
		env.mu.Lock()
		env.states = append(env.states, info.CacheState)
		env.mu.Unlock()
	}))
	clientTransport := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 200}
	env.client = &http.Client{
		Transport:     clientTransport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() {
		env.origin.set(func(o *origin) {
			if o.gate != nil {
				select {
				case <-o.gate:
				default:
					close(o.gate)
				}
			}
		})
		env.front.Close()
		env.up.Close()
		clientTransport.CloseIdleConnections()
		upTransport.CloseIdleConnections()
	})
	return env
}

// do sends a request through the front server; hdr holds name, value pairs.
func (env *testEnv) do(t *testing.T, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, env.front.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func (env *testEnv) get(t *testing.T, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return env.do(t, http.MethodGet, path, hdr...)
}

// expect checks status, Cache-Status and body of one answer.
func expect(t *testing.T, resp *http.Response, body string, wantStatus int, wantCacheStatus, wantBody string) {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Errorf("status = %d, want %d", resp.StatusCode, wantStatus)
	}
	if got := resp.Header.Get("Cache-Status"); got != wantCacheStatus {
		t.Errorf("Cache-Status = %q, want %q", got, wantCacheStatus)
	}
	if body != wantBody {
		t.Errorf("body = %q, want %q", body, wantBody)
	}
}

// waitFor polls cond for up to two seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// parallel sends n identical GETs at once and returns the answers.
func (env *testEnv) parallel(t *testing.T, n int, path string, hdr ...string) (statuses []string, bodies []string) {
	t.Helper()
	type answer struct{ cs, body string }
	out := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, env.front.URL+path, nil)
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Add(hdr[i], hdr[i+1])
			}
			resp, err := env.client.Do(req)
			if err != nil {
				out <- answer{cs: "error: " + err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out <- answer{cs: resp.Header.Get("Cache-Status"), body: string(b)}
		})
	}
	wg.Wait()
	close(out)
	for a := range out {
		statuses = append(statuses, a.cs)
		bodies = append(bodies, a.body)
	}
	return statuses, bodies
}

func count(values []string, want string) int {
	n := 0
	for _, v := range values {
		if v == want {
			n++
		}
	}
	return n
}
