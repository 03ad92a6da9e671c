package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

func TestBasicVerifiedOnceThenCached(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "s3cret"})
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	next := &counter{}
	h := a.Handler(next)
	cachedBefore := value(authTotal.WithLabelValues(mBasic, rCached))
	for i := range 10 {
		if w := do(h, withAuth(basicAuth("agent1", "s3cret"))); w.Code != 200 {
			t.Fatalf("request %d: status %d", i, w.Code)
		}
	}
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("verify called %d times, want 1", n)
	}
	if n := next.n.Load(); n != 10 {
		t.Fatalf("next reached %d times, want 10", n)
	}
	if got := value(authTotal.WithLabelValues(mBasic, rCached)) - cachedBefore; got != 9 {
		t.Fatalf("rampart_auth_total{basic,cached} grew by %v, want 9", got)
	}
	// The Authorization header goes upstream unchanged: Finesse needs it.
	if got := next.header().Get("Authorization"); got != basicAuth("agent1", "s3cret") {
		t.Fatalf("upstream saw Authorization %q", got)
	}
}

func TestBasicCacheStoresNoPassword(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "s3cret-password"})
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	do(a.Handler(&counter{}), withAuth(basicAuth("agent1", "s3cret-password")))
	e, ok := a.creds.get("agent1")
	if !ok {
		t.Fatal("not cached")
	}
	if strings.Contains(string(e.mac[:]), "s3cret") {
		t.Fatal("the cache holds the password")
	}
	// Another process (another key) derives another hash.
	b := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	if b.mac("agent1", "s3cret-password") == e.mac {
		t.Fatal("the hash key is not per process")
	}
}

func TestBasicRequestInfoUsername(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	info := &reqinfo.Info{}
	do(a.Handler(&counter{}), func(r *http.Request) {
		*r = *r.WithContext(reqinfo.With(r.Context(), info))
		r.Header.Set("Authorization", basicAuth("agent1", "pw"))
	})
	if info.Username != "agent1" {
		t.Fatalf("reqinfo.Username = %q", info.Username)
	}
}

func TestBasicWrongPassword(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "right"})
	var fails failures
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify, OnFailure: fails.record})
	next := &counter{}
	h := a.Handler(next)

	if w := do(h, withAuth(basicAuth("agent1", "right"))); w.Code != 200 {
		t.Fatalf("right password: %d", w.Code)
	}
	if _, ok := a.creds.get("agent1"); !ok {
		t.Fatal("not cached after success")
	}
	w := do(h, withAuth(basicAuth("agent1", "wrong")))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d, want 401", w.Code)
	}
	if got := w.Header().Get("WWW-Authenticate"); got != `Basic realm="rampart"` {
		t.Fatalf("WWW-Authenticate %q", got)
	}
	if got := fails.list(); !slices.Equal(got, []string{"agent1"}) {
		t.Fatalf("OnFailure calls %q, want [agent1]", got)
	}
	if _, ok := a.creds.get("agent1"); ok {
		t.Fatal("cache entry not evicted after a 401 from the upstream")
	}
	if strings.Contains(w.Body.String(), "agent1") || strings.Contains(w.Body.String(), "wrong") {
		t.Fatalf("refusal echoes credentials: %q", w.Body.String())
	}
	// Evicted: the right password is verified again.
	if w := do(h, withAuth(basicAuth("agent1", "right"))); w.Code != 200 {
		t.Fatalf("right password again: %d", w.Code)
	}
	if n := up.calls.Load(); n != 3 {
		t.Fatalf("verify called %d times, want 3", n)
	}
	if n := next.n.Load(); n != 2 {
		t.Fatalf("next reached %d times, want 2", n)
	}
}

func TestBasicForbiddenIsFailure(t *testing.T) {
	up := newUpstream(nil)
	up.status = http.StatusForbidden
	var fails failures
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify, OnFailure: fails.record})
	if w := do(a.Handler(&counter{}), withAuth(basicAuth("locked", "pw"))); w.Code != 401 {
		t.Fatalf("status %d, want 401", w.Code)
	}
	if len(fails.list()) != 1 {
		t.Fatal("OnFailure not called")
	}
}

func TestBasicPasswordChange(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "old"})
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	h := a.Handler(&counter{})
	do(h, withAuth(basicAuth("agent1", "old")))
	up.setPassword("agent1", "new")
	if w := do(h, withAuth(basicAuth("agent1", "new"))); w.Code != 200 {
		t.Fatalf("new password: %d", w.Code)
	}
	// The new password replaced the old one in the cache.
	if w := do(h, withAuth(basicAuth("agent1", "old"))); w.Code != 401 {
		t.Fatalf("old password after change: %d", w.Code)
	}
}

func TestBasicCacheExpires(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	now := time.Now()
	a.now = func() time.Time { return now }
	h := a.Handler(&counter{})
	do(h, withAuth(basicAuth("agent1", "pw")))
	now = now.Add(DefaultCache - time.Second)
	do(h, withAuth(basicAuth("agent1", "pw")))
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("verify called %d times within cache, want 1", n)
	}
	now = now.Add(2 * time.Second)
	do(h, withAuth(basicAuth("agent1", "pw")))
	if n := up.calls.Load(); n != 2 {
		t.Fatalf("verify called %d times after cache expiry, want 2", n)
	}
}

func TestBasicCacheBounded(t *testing.T) {
	users := map[string]string{}
	for i := range 10 {
		users[fmt.Sprintf("agent%d", i)] = "pw"
	}
	up := newUpstream(users)
	cfg := basicConfig()
	cfg.MaxEntries = 3
	a := mustNew(t, cfg, Deps{Verify: up.Verify})
	h := a.Handler(&counter{})
	for i := range 10 {
		do(h, withAuth(basicAuth(fmt.Sprintf("agent%d", i), "pw")))
		if n := a.creds.len(); n > 3 {
			t.Fatalf("cache holds %d entries, bound 3", n)
		}
	}
	if _, ok := a.creds.get("agent0"); ok {
		t.Fatal("least recently used entry kept")
	}
	if _, ok := a.creds.get("agent9"); !ok {
		t.Fatal("most recent entry evicted")
	}
	calls := up.calls.Load()
	do(h, withAuth(basicAuth("agent0", "pw")))
	if up.calls.Load() != calls+1 {
		t.Fatal("evicted user not verified again")
	}
}

func TestBasicBurstMakesOneVerify(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	up.release = make(chan struct{})
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	next := &counter{}
	h := a.Handler(next)
	const burst = 50
	var wg sync.WaitGroup
	codes := make([]int, burst)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = do(h, withAuth(basicAuth("agent1", "pw"))).Code
		}()
	}
	eventually(t, "the first verify", func() bool { return up.calls.Load() == 1 })
	time.Sleep(100 * time.Millisecond) // let the rest of the burst queue on the flight
	close(up.release)
	wg.Wait()
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("verify called %d times for a burst of %d, want 1", n, burst)
	}
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: status %d", i, c)
		}
	}
	if next.n.Load() != burst {
		t.Fatalf("next reached %d times, want %d", next.n.Load(), burst)
	}
}

func TestBasicVerifyUnavailable(t *testing.T) {
	tests := []struct {
		name   string
		status int
		err    error
	}{
		{"transport error", 0, errors.New("connection refused")},
		{"upstream 500", http.StatusInternalServerError, nil},
		{"upstream 404", http.StatusNotFound, nil},
		{"upstream redirect", http.StatusFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(nil)
			up.status, up.err = tt.status, tt.err
			var fails failures
			a := mustNew(t, basicConfig(), Deps{Verify: up.Verify, OnFailure: fails.record})
			next := &counter{}
			h := a.Handler(next)
			for range 2 {
				if w := do(h, withAuth(basicAuth("agent1", "pw"))); w.Code != http.StatusServiceUnavailable {
					t.Fatalf("status %d, want 503", w.Code)
				}
			}
			if up.calls.Load() != 2 {
				t.Fatal("a failed verification was cached")
			}
			if len(fails.list()) != 0 {
				t.Fatal("an unavailable verifier counted as a failed login")
			}
			if next.n.Load() != 0 {
				t.Fatal("request forwarded without verification")
			}
		})
	}
}

func TestBasicMalformedAndMissing(t *testing.T) {
	tests := []struct {
		name    string
		headers []string // Authorization lines
		reason  string
		failure bool // OnFailure expected
	}{
		{"missing", nil, ReasonMissing, false},
		{"other scheme", []string{"Digest username=\"a\""}, ReasonMissing, false},
		{"bearer on a basic site", []string{"Bearer abc.def.ghi"}, ReasonMissing, false},
		{"not base64", []string{"Basic !!!"}, ReasonMalformed, true},
		{"no colon", []string{"Basic " + b64std("agent1")}, ReasonMalformed, true},
		{"empty user", []string{"Basic " + b64std(":pw")}, ReasonMalformed, true},
		{"control character", []string{"Basic " + b64std("agent1\r\nX: y:pw")}, ReasonMalformed, true},
		{"invalid utf-8", []string{"Basic " + b64std("agent\xff:pw")}, ReasonMalformed, true},
		{"empty", []string{"Basic "}, ReasonMalformed, true},
		{"two headers", []string{basicAuth("a", "b"), basicAuth("c", "d")}, ReasonMalformed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(map[string]string{"a": "b"})
			var fails failures
			a := mustNew(t, basicConfig(), Deps{Verify: up.Verify, OnFailure: fails.record})
			next := &counter{}
			before := value(refusals(tt.reason))
			w := do(a.Handler(next), func(r *http.Request) {
				for _, v := range tt.headers {
					r.Header.Add("Authorization", v)
				}
			})
			if w.Code != 401 {
				t.Fatalf("status %d, want 401", w.Code)
			}
			if w.Header().Get("WWW-Authenticate") != `Basic realm="rampart"` {
				t.Fatalf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
			}
			if got := value(refusals(tt.reason)) - before; got != 1 {
				t.Fatalf("refusals{auth,%s} grew by %v", tt.reason, got)
			}
			if (len(fails.list()) == 1) != tt.failure {
				t.Fatalf("OnFailure calls %q, expected a failure: %v", fails.list(), tt.failure)
			}
			if up.calls.Load() != 0 || next.n.Load() != 0 {
				t.Fatal("malformed or missing credentials went further")
			}
		})
	}
}

func TestOffIsNext(t *testing.T) {
	for _, cfg := range []Config{{}, {Kind: KindOff}} {
		a := mustNew(t, cfg, Deps{})
		next := &counter{}
		if w := do(a.Handler(next), nil); w.Code != 200 || next.n.Load() != 1 {
			t.Fatalf("auth %q refused an anonymous request", cfg.Kind)
		}
	}
}

func TestNewNeedsDeps(t *testing.T) {
	if _, err := New(basicConfig(), Deps{}); err == nil {
		t.Fatal("basic_upstream without a verifier accepted")
	}
	if _, err := New(jwtConfig("https://ids.internal/keys"), Deps{}); err == nil {
		t.Fatal("keys_url without a fetcher accepted")
	}
	if _, err := New(Config{Kind: KindBasic}, Deps{Verify: newUpstream(nil).Verify}); err == nil {
		t.Fatal("basic_upstream without verify_url accepted")
	}
}

func b64std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func refusals(reason string) prometheus.Counter {
	return observe.Metrics.Refusals.WithLabelValues(Stage, reason)
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestBasicClientGoneDoesNotCancelVerify(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	up.release = make(chan struct{})
	a := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	next := &counter{}
	h := a.Handler(next)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- do(h, func(r *http.Request) {
			*r = *r.WithContext(ctx)
			r.Header.Set("Authorization", basicAuth("agent1", "pw"))
		}).Code
	}()
	eventually(t, "the verify call", func() bool { return up.calls.Load() == 1 })
	cancel()
	if code := <-done; code != http.StatusServiceUnavailable {
		t.Fatalf("abandoned request answered %d, want 503", code)
	}
	close(up.release)
	eventually(t, "the verification to be cached", func() bool { _, ok := a.creds.get("agent1"); return ok })
	if w := do(h, withAuth(basicAuth("agent1", "pw"))); w.Code != 200 || up.calls.Load() != 1 {
		t.Fatalf("status %d after %d verify calls", w.Code, up.calls.Load())
	}
	if next.n.Load() != 1 {
		t.Fatal("the abandoned request reached next")
	}
}
