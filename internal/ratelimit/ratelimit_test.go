package ratelimit

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/units"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func rate(n int) units.Rate { return units.Rate{Count: n, Per: time.Second} }

var testClasses = map[string]Class{
	"default": {Rate: rate(45), Burst: 50},
	"login":   {Rate: rate(5), Burst: 5},
}

// fixture is a limiter over a memory store with a settable clock, in front
// of an upstream that counts what reaches it.
type fixture struct {
	clock    *clock
	store    *state.Memory
	limiter  *Limiter
	upstream atomic.Int64
	next     http.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: newClock()}
	f.store = state.NewMemory(state.MemoryOptions{SweepInterval: -1, Now: f.clock.Now})
	t.Cleanup(func() { f.store.Close() })
	l, err := New(f.store, testClasses)
	if err != nil {
		t.Fatal(err)
	}
	f.limiter = l
	f.next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.upstream.Add(1)
		io.WriteString(w, "ok")
	})
	return f
}

func (f *fixture) handler(t *testing.T, class string) http.Handler {
	t.Helper()
	h, err := f.limiter.Handler(class, f.next)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func request(client string, mod func(*reqinfo.Info)) *http.Request {
	r := httptest.NewRequest("GET", "https://cc.example/finesse/", nil)
	info := &reqinfo.Info{ID: "req-1", Client: netip.MustParseAddr(client)}
	if mod != nil {
		mod(info)
	}
	return r.WithContext(reqinfo.With(r.Context(), info))
}

func do(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestLimiter_BurstThenRefuse(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, "login")
	for i := range 5 {
		if w := do(h, request("198.51.100.1", nil)); w.Code != 200 {
			t.Fatalf("request %d within the burst: %d", i+1, w.Code)
		}
	}
	w := do(h, request("198.51.100.1", nil))
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("request over the burst: %d, want 429", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q, want 1 (0.2s rounded up)", got)
	}
	if !strings.Contains(w.Body.String(), "req-1") || strings.Contains(w.Body.String(), "login") {
		t.Fatalf("body %q: want the generic refusal with the request id", w.Body.String())
	}
	if n := f.upstream.Load(); n != 5 {
		t.Fatalf("upstream saw %d requests, want 5", n)
	}
}

func TestLimiter_RetryAfterRoundsUp(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {59*time.Second + 2*time.Microsecond, 60}, {40*time.Second + 1, 40}}
	for _, tt := range tests {
		if got := RetryAfterSeconds(tt.in); got != tt.want {
			t.Errorf("%v: got %d, want %d", tt.in, got, tt.want)
		}
	}
	// A slow class: one per minute.
	f := newFixture(t)
	l, _ := New(f.store, map[string]Class{"slow": {Rate: units.Rate{Count: 1, Per: time.Minute}, Burst: 1}})
	h, _ := l.Handler("slow", f.next)
	do(h, request("198.51.100.1", nil))
	f.clock.Advance(20 * time.Second)
	if got := do(h, request("198.51.100.1", nil)).Header().Get("Retry-After"); got != "40" {
		t.Fatalf("Retry-After %q, want 40", got)
	}
}

func TestLimiter_RefillsAfterTime(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, "login")
	for range 6 {
		do(h, request("198.51.100.1", nil))
	}
	f.clock.Advance(200 * time.Millisecond)
	if w := do(h, request("198.51.100.1", nil)); w.Code != 200 {
		t.Fatalf("after 200ms at 5/s: %d, want 200", w.Code)
	}
	if w := do(h, request("198.51.100.1", nil)); w.Code != 429 {
		t.Fatalf("the refilled token was spent: %d, want 429", w.Code)
	}
	f.clock.Advance(time.Second)
	for i := range 5 {
		if w := do(h, request("198.51.100.1", nil)); w.Code != 200 {
			t.Fatalf("after a full refill, request %d: %d", i+1, w.Code)
		}
	}
}

func TestLimiter_Independence(t *testing.T) {
	tests := []struct {
		name        string
		exhaust     string // class exhausted by client A
		class       string // class of the checked request
		client      string
		wantAllowed bool
	}{
		{"the same class and client is refused", "login", "login", "198.51.100.1", false},
		{"another class of the same client still passes", "login", "default", "198.51.100.1", true},
		{"another client in the same class still passes", "login", "login", "198.51.100.2", true},
		{"IPv6 addresses in one /64 share a bucket", "login", "login", "2001:db8::2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			first := "198.51.100.1"
			if strings.Contains(tt.client, ":") {
				first = "2001:db8::1"
			}
			ex := f.handler(t, tt.exhaust)
			for range 10 {
				do(ex, request(first, nil))
			}
			w := do(f.handler(t, tt.class), request(tt.client, nil))
			if (w.Code == 200) != tt.wantAllowed {
				t.Fatalf("got %d, want allowed=%v", w.Code, tt.wantAllowed)
			}
		})
	}
}

func TestLimiter_ExemptClientsBypass(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, "login")
	for i := range 100 {
		w := do(h, request("10.1.2.3", func(i *reqinfo.Info) { i.Exempt = true }))
		if w.Code != 200 {
			t.Fatalf("exempt request %d: %d", i+1, w.Code)
		}
	}
}

func TestLimiter_PerRouteOverride(t *testing.T) {
	f := newFixture(t)
	h, err := f.limiter.SiteHandler("default", map[string]string{
		"exact:/api/login": "login",
		"prefix:/health":   Off,
	}, f.next)
	if err != nil {
		t.Fatal(err)
	}
	route := func(rt string) func(*reqinfo.Info) { return func(i *reqinfo.Info) { i.Route = rt } }
	for range 5 {
		do(h, request("198.51.100.1", route("exact:/api/login")))
	}
	if w := do(h, request("198.51.100.1", route("exact:/api/login"))); w.Code != 429 {
		t.Fatalf("sixth login: %d, want 429 from the login class", w.Code)
	}
	for i := range 40 {
		if w := do(h, request("198.51.100.1", route("prefix:/finesse/"))); w.Code != 200 {
			t.Fatalf("page request %d under the site class: %d", i+1, w.Code)
		}
	}
	for i := range 200 {
		if w := do(h, request("198.51.100.1", route("prefix:/health"))); w.Code != 200 {
			t.Fatalf("unlimited route, request %d: %d", i+1, w.Code)
		}
	}
}

func TestLimiter_UnknownClassIsAnError(t *testing.T) {
	f := newFixture(t)
	if _, err := f.limiter.Handler("logn", f.next); err == nil || !strings.Contains(err.Error(), "logn") {
		t.Fatalf("got %v", err)
	}
	if _, err := f.limiter.SiteHandler("default", map[string]string{"exact:/x": "nope"}, f.next); err == nil {
		t.Fatal("unknown route class accepted")
	}
	if h, err := f.limiter.Handler(Off, f.next); err != nil || h == nil {
		t.Fatalf("off: %v", err)
	}
}

// failingStore answers every call with ErrUnavailable, as a failover store
// under the deny policy does while Redis is down.
type failingStore struct{ state.Store }

func (failingStore) Allow(context.Context, string, float64, int) (bool, time.Duration, error) {
	return false, 0, state.ErrUnavailable
}

func TestLimiter_StoreUnavailableRefusesWith503(t *testing.T) {
	l, err := New(failingStore{}, testClasses)
	if err != nil {
		t.Fatal(err)
	}
	var reached bool
	h, _ := l.Handler("default", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	w := do(h, request("198.51.100.1", nil))
	if w.Code != http.StatusServiceUnavailable || reached {
		t.Fatalf("got %d (upstream reached: %v), want 503 and no upstream", w.Code, reached)
	}
}

// TestLimiter_BrowserIsNeverThrottled replays what a contact-center agent's
// browser does: page loads of ~40 parallel requests over 6 connections,
// then ~10 requests/s of polling, for a simulated minute. None may be
// refused under the default class.
func TestLimiter_BrowserIsNeverThrottled(t *testing.T) {
	f := newFixture(t)
	var refused atomic.Int64
	h := f.handler(t, "default")
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 6, MaxIdleConnsPerHost: 6}}
	get := func() {
		resp, err := client.Get(srv.URL + "/finesse/api/User")
		if err != nil {
			t.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			refused.Add(1)
		}
	}
	pageLoad := func() {
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(get)
		}
		wg.Wait()
	}
	for second := range 60 {
		if second%20 == 0 {
			pageLoad()
		}
		for range 10 {
			get()
			f.clock.Advance(100 * time.Millisecond)
		}
	}
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d of the browser's requests were refused", n)
	}
}

func TestConfig_DecodesAndValidates(t *testing.T) {
	var cfg struct {
		RateLimits map[string]Class `yaml:"rate_limits"`
	}
	src := `
rate_limits:
  default: {rate: 45/s, burst: 50}
  login:   {rate: 5/s, burst: 5}
  reports: {rate: 300/m, burst: 20}
`
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfg.RateLimits); err != nil {
		t.Fatal(err)
	}
	if c := cfg.RateLimits["reports"]; c.Rate.PerSecond() != 5 || c.Burst != 20 {
		t.Fatalf("reports: %+v", c)
	}
	if err := Validate(DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name    string
		classes map[string]Class
	}{
		{"a class without a rate", map[string]Class{"x": {Burst: 5}}},
		{"a class with burst 0", map[string]Class{"x": {Rate: rate(5)}}},
		{"a class named off", map[string]Class{"off": {Rate: rate(5), Burst: 5}}},
		{"a class name with a colon", map[string]Class{"a:b": {Rate: rate(5), Burst: 5}}},
	}
	for _, tt := range bad {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if err := Validate(tt.classes); err == nil {
				t.Fatal("accepted")
			}
			if _, err := New(state.NewMemory(state.MemoryOptions{SweepInterval: -1}), tt.classes); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	if err := yaml.Unmarshal([]byte("rate_limits: {x: {rate: 5/sec, burst: 1}}"), &cfg); err == nil {
		t.Fatal("a misspelt rate unit decoded")
	}
}

func BenchmarkLimiter_Allowed(b *testing.B) {
	store := state.NewMemory(state.MemoryOptions{SweepInterval: -1})
	defer store.Close()
	l, _ := New(store, map[string]Class{"big": {Rate: rate(1_000_000), Burst: 1_000_000}})
	h, _ := l.Handler("big", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := request("198.51.100.1", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
