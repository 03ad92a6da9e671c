package cache

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/units"
)

const mib = 1 << 20

func TestCache_MissThenHit(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)

	resp, body := env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", "v1")
	if got := resp.Header.Get("Age"); got != "0" {
		t.Errorf("Age on the stored miss = %q, want 0", got)
	}

	env.clock.Advance(42 * time.Second)
	resp, body = env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; hit", "v1")
	if got := resp.Header.Get("Age"); got != "42" {
		t.Errorf("Age = %q, want 42", got)
	}
	if got := resp.Header.Get("ETag"); got != `"v1"` {
		t.Errorf("ETag = %q, want the stored one", got)
	}
	if got := resp.Header.Get("Content-Length"); got != "2" {
		t.Errorf("Content-Length = %q, want 2", got)
	}
	if n := env.origin.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	if st := env.store.Stats(); st.Entries != 1 || st.Hits != 1 || st.Misses != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCache_CacheStateForAccessLog(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/a.js")
	env.get(t, "/a.js")
	env.clock.Advance(DefaultRevalidateAfter + time.Second)
	env.get(t, "/a.js")
	env.do(t, http.MethodPost, "/a.js")
	env.get(t, "/a.js", "Authorization", "Basic eDp5")

	want := []string{"miss", "hit", "stale", "bypass", "bypass"}
	waitFor(t, "all requests logged", func() bool {
		env.mu.Lock()
		defer env.mu.Unlock()
		return len(env.states) == len(want)
	})
	env.mu.Lock()
	defer env.mu.Unlock()
	if !slices.Equal(env.states, want) {
		t.Errorf("CacheState = %q, want %q", env.states, want)
	}
}

func TestCache_HeadServedFromGetEntry(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/desktop/js/app.js")

	resp, body := env.do(t, http.MethodHead, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; hit", "")
	if resp.ContentLength != 2 {
		t.Errorf("HEAD Content-Length = %d, want 2", resp.ContentLength)
	}
	if n := env.origin.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

func TestCache_HeadMissFetchesGetAndStores(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)

	resp, body := env.do(t, http.MethodHead, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", "")
	resp, body = env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; hit", "v1")
	if env.origin.methods[0] != http.MethodGet {
		t.Errorf("origin saw %s, want the cache to fetch with GET", env.origin.methods[0])
	}
}

func TestCache_ClientConditionalAnsweredFromCache(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/desktop/js/app.js")

	resp, body := env.get(t, "/desktop/js/app.js", "If-None-Match", `W/"v0", "v1"`)
	expect(t, resp, body, http.StatusNotModified, "rampart; hit", "")
	if resp.Header.Get("ETag") != `"v1"` || resp.Header.Get("Age") == "" {
		t.Errorf("304 lacks ETag or Age: %v", resp.Header)
	}
	if resp.Header.Get("Content-Type") != "" {
		t.Errorf("304 carries Content-Type %q", resp.Header.Get("Content-Type"))
	}

	resp, body = env.get(t, "/desktop/js/app.js", "If-Modified-Since", env.origin.lastMod.Add(time.Hour).Format(http.TimeFormat))
	expect(t, resp, body, http.StatusNotModified, "rampart; hit", "")

	resp, body = env.get(t, "/desktop/js/app.js", "If-None-Match", `"v0"`)
	expect(t, resp, body, 200, "rampart; hit", "v1")

	resp, body = env.get(t, "/desktop/js/app.js", "If-Modified-Since", env.origin.lastMod.Add(-time.Hour).Format(http.TimeFormat))
	expect(t, resp, body, 200, "rampart; hit", "v1")

	if n := env.origin.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1: conditionals are answered by the cache", n)
	}
}

func TestCache_RevalidatesOnceUnderConcurrentLoad(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/desktop/js/app.js")

	// Past freshness and past stale-while-revalidate: every client must
	// wait for the revalidation, and there must be only one.
	env.clock.Advance(DefaultRevalidateAfter + DefaultStaleWhileRevalidate + time.Second)
	gate := make(chan struct{})
	env.origin.set(func(o *origin) { o.gate = gate })

	done := make(chan struct{})
	var statuses, bodies []string
	go func() {
		defer close(done)
		statuses, bodies = env.parallel(t, 100, "/desktop/js/app.js")
	}()
	waitFor(t, "the conditional request", func() bool { return env.origin.cond.Load() == 1 })
	time.Sleep(50 * time.Millisecond) // let the other clients pile up behind it
	close(gate)
	<-done

	if n := env.origin.inm.Load(); n != 1 {
		t.Errorf("origin saw %d requests with If-None-Match, want exactly 1", n)
	}
	if n := env.origin.hits.Load(); n != 2 {
		t.Errorf("origin saw %d requests in all, want 2 (the fill and one revalidation)", n)
	}
	if got := env.origin.headers()[1].Get("If-None-Match"); got != `"v1"` {
		t.Errorf("revalidation sent If-None-Match %q, want the stored ETag", got)
	}
	if n := count(bodies, "v1"); n != 100 {
		t.Errorf("%d of 100 clients got the body", n)
	}
	leader := count(statuses, "rampart; fwd=stale; fwd-status=304")
	collapsed := count(statuses, "rampart; fwd=stale; fwd-status=304; collapsed")
	hits := count(statuses, "rampart; hit")
	if leader != 1 || leader+collapsed+hits != 100 || collapsed == 0 {
		t.Errorf("leader=%d collapsed=%d hits=%d; statuses %q", leader, collapsed, hits, statuses)
	}
	if st := env.store.Stats(); st.Revalidated != 1 {
		t.Errorf("revalidated_304 = %d, want 1", st.Revalidated)
	}
}

func TestCache_StaleWhileRevalidateServesStaleAndRevalidatesOnce(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/desktop/js/app.js")

	env.clock.Advance(DefaultRevalidateAfter + 10*time.Second) // within stale_while_revalidate
	gate := make(chan struct{})
	env.origin.set(func(o *origin) { o.gate = gate })

	statuses, bodies := env.parallel(t, 100, "/desktop/js/app.js")
	if n := count(statuses, "rampart; hit; detail=stale-while-revalidate"); n != 100 {
		t.Errorf("%d of 100 clients got the stale copy at once; statuses %q", n, statuses)
	}
	if n := count(bodies, "v1"); n != 100 {
		t.Errorf("%d of 100 clients got the body", n)
	}
	waitFor(t, "the background revalidation", func() bool { return env.origin.cond.Load() == 1 })
	close(gate)
	waitFor(t, "the refresh", func() bool { return env.store.Stats().Revalidated == 1 })

	resp, body := env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; hit", "v1")
	if got := resp.Header.Get("Age"); got != "0" {
		t.Errorf("Age after refresh = %q, want 0", got)
	}
	if n := env.origin.cond.Load(); n != 1 {
		t.Errorf("origin saw %d conditional requests, want 1", n)
	}
	if st := env.store.Stats(); st.StaleServed != 100 {
		t.Errorf("stale_served = %d, want 100", st.StaleServed)
	}
}

func TestCache_NotModifiedRefreshesEntry(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/desktop/js/app.js")
	bodyBytes := env.origin.bodyBytes.Load()

	env.clock.Advance(DefaultRevalidateAfter + time.Hour) // past stale_while_revalidate: answered after the 304
	env.origin.set(func(o *origin) { o.extra = http.Header{"X-Build": {"42"}} })
	resp, body := env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=304", "v1")
	if got := resp.Header.Get("Age"); got != "0" {
		t.Errorf("Age after the 304 = %q, want 0 (reset)", got)
	}
	if n := env.origin.bodyBytes.Load(); n != bodyBytes {
		t.Errorf("origin sent %d body bytes for the revalidation, want none", n-bodyBytes)
	}

	env.clock.Advance(DefaultRevalidateAfter - time.Second)
	resp, body = env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; hit", "v1")
	if got := resp.Header.Get("Age"); got != strconv.Itoa(int((DefaultRevalidateAfter - time.Second).Seconds())) {
		t.Errorf("Age = %q, counted from the refresh", got)
	}
	if n := env.origin.hits.Load(); n != 2 {
		t.Errorf("origin saw %d requests, want 2", n)
	}
}

func TestCache_ValidatesWithLastModifiedWithoutETag(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.origin.set(func(o *origin) { o.etag = "" })
	env.get(t, "/desktop/css/finesse.css")

	env.clock.Advance(DefaultRevalidateAfter + time.Hour)
	resp, body := env.get(t, "/desktop/css/finesse.css")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=304", "v1")
	h := env.origin.headers()[1]
	if h.Get("If-Modified-Since") != env.origin.lastMod.Format(http.TimeFormat) || h.Get("If-None-Match") != "" {
		t.Errorf("revalidation sent %v, want If-Modified-Since only", h)
	}
}

func TestCache_ChangedResourceReplacedAfterRevalidation(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/desktop/js/app.js")

	env.origin.set(func(o *origin) { o.body, o.etag = "v2", `"v2"` })
	env.clock.Advance(DefaultRevalidateAfter + time.Hour)
	resp, body := env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=200; stored", "v2")

	resp, body = env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; hit", "v2")
	if got := resp.Header.Get("ETag"); got != `"v2"` {
		t.Errorf("ETag = %q, want the new one", got)
	}
	if st := env.store.Stats(); st.Replaced != 1 || st.Entries != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCache_StaleIfErrorWhileUpstreamDown(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/desktop/js/app.js")
	env.clock.Advance(DefaultRevalidateAfter + time.Minute) // past stale_while_revalidate

	env.origin.set(func(o *origin) { o.status = http.StatusServiceUnavailable })
	resp, body := env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=503; detail=stale-if-error", "v1")

	// Right after a failure the stale copy is served without another try.
	hits := env.origin.hits.Load()
	resp, body = env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; hit; detail=stale-if-error", "v1")
	if n := env.origin.hits.Load(); n != hits {
		t.Errorf("origin was asked again during the back-off")
	}

	// The upstream is gone altogether: the proxy answers 502.
	env.clock.Advance(errorBackoff + time.Second)
	env.up.Close()
	resp, body = env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=502; detail=stale-if-error", "v1")

	// Past stale_if_error the error reaches the client.
	env.clock.Advance(DefaultStaleIfError)
	resp, _ = env.get(t, "/desktop/js/app.js")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Cache-Status") != "rampart; fwd=stale; fwd-status=502" {
		t.Errorf("past stale_if_error: %d %q, want 502 from the upstream", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	if st := env.store.Stats(); st.RevalidationErrors != 3 || st.StaleServed != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCache_MustRevalidateIsNeverServedStale(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.origin.set(func(o *origin) { o.cc = "max-age=60, must-revalidate" })
	env.get(t, "/gadget.xml")

	env.clock.Advance(61 * time.Second) // within stale_while_revalidate, but the upstream forbids it
	env.origin.set(func(o *origin) { o.status = http.StatusServiceUnavailable })
	resp, _ := env.get(t, "/gadget.xml")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want the upstream's 503", resp.StatusCode)
	}
	if got := resp.Header.Get("Cache-Status"); got != "rampart; fwd=stale; fwd-status=503" {
		t.Errorf("Cache-Status = %q", got)
	}
}

func TestCache_DoesNotStoreUncacheableResponses(t *testing.T) {
	cases := []struct {
		name  string
		cc    string
		extra http.Header
	}{
		{"private", "private, max-age=600", nil},
		{"no-store", "no-store", nil},
		{"set-cookie", "max-age=600", http.Header{"Set-Cookie": {"JSESSIONID=abc; Secure"}}},
		{"vary-star", "", http.Header{"Vary": {"*"}}},
		{"vary-cookie", "", http.Header{"Vary": {"Cookie"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, RouteConfig{}, 64*mib)
			env.origin.set(func(o *origin) { o.cc, o.extra = tc.cc, tc.extra })

			resp, body := env.get(t, "/finesse/api/User")
			expect(t, resp, body, 200, "rampart; fwd=uri-miss", "v1")
			if tc.extra.Get("Set-Cookie") != "" && resp.Header.Get("Set-Cookie") == "" {
				t.Errorf("the client that asked lost its Set-Cookie")
			}
			resp, body = env.get(t, "/finesse/api/User")
			expect(t, resp, body, 200, "rampart; fwd=miss; detail=uncacheable", "v1")
			if n := env.origin.hits.Load(); n != 2 {
				t.Errorf("origin saw %d requests, want 2", n)
			}
			if st := env.store.Stats(); st.Entries != 0 {
				t.Errorf("%d entries stored", st.Entries)
			}
		})
	}
}

func TestCache_DoesNotStoreUncacheableStatuses(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.origin.set(func(o *origin) {
		o.serve = func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/redirect":
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(http.StatusFound)
			case "/redirect-fresh":
				w.Header().Set("Location", "/elsewhere")
				w.Header().Set("Cache-Control", "max-age=60")
				w.WriteHeader(http.StatusFound)
			case "/broken":
				w.WriteHeader(http.StatusInternalServerError)
			default:
				http.NotFound(w, r)
			}
		}
	})
	for _, tc := range []struct {
		path   string
		status int
		second string
	}{
		{"/redirect", http.StatusFound, "rampart; fwd=uri-miss"},
		{"/redirect-fresh", http.StatusFound, "rampart; hit"},
		{"/broken", http.StatusInternalServerError, "rampart; fwd=uri-miss; fwd-status=500"},
		{"/missing", http.StatusNotFound, "rampart; hit"},
	} {
		env.get(t, tc.path)
		resp, _ := env.get(t, tc.path)
		if resp.StatusCode != tc.status || resp.Header.Get("Cache-Status") != tc.second {
			t.Errorf("%s: second answer %d %q, want %d %q", tc.path, resp.StatusCode, resp.Header.Get("Cache-Status"), tc.status, tc.second)
		}
	}
}

func TestCache_CredentialsBypassUnlessPublic(t *testing.T) {
	for _, field := range []string{"Authorization", "Cookie"} {
		t.Run(field, func(t *testing.T) {
			env := newTestEnv(t, RouteConfig{}, 64*mib)
			env.get(t, "/desktop/js/app.js") // stored for anonymous clients
			for range 2 {
				resp, body := env.get(t, "/desktop/js/app.js", field, "secret")
				expect(t, resp, body, 200, "rampart; fwd=bypass; detail=credentials", "v1")
			}
			if n := env.origin.hits.Load(); n != 3 {
				t.Errorf("origin saw %d requests, want 3: credentialed requests bypass", n)
			}
			if h := env.origin.headers()[1]; h.Get(field) != "secret" {
				t.Errorf("bypassed request lost its %s", field)
			}
		})
		t.Run(field+"/public", func(t *testing.T) {
			env := newTestEnv(t, RouteConfig{Public: true}, 64*mib)
			resp, body := env.get(t, "/desktop/js/app.js", field, "secret")
			expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", "v1")
			resp, body = env.get(t, "/desktop/js/app.js", field, "other")
			expect(t, resp, body, 200, "rampart; hit", "v1")
			if n := env.origin.hits.Load(); n != 1 {
				t.Errorf("origin saw %d requests, want 1", n)
			}
		})
	}
}

func TestCache_VaryAcceptEncodingKeepsVariantsApart(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.origin.set(func(o *origin) {
		o.serve = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Encoding")
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				w.Header().Set("Content-Encoding", "gzip")
				w.Write([]byte("GZ"))
				return
			}
			w.Write([]byte("PLAIN"))
		}
	})

	resp, body := env.get(t, "/desktop/js/app.js", "Accept-Encoding", "gzip, deflate")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", "GZ")
	resp, body = env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; fwd=vary-miss; stored", "PLAIN")
	resp, body = env.get(t, "/desktop/js/app.js", "Accept-Encoding", "deflate;q=0.5, GZIP")
	expect(t, resp, body, 200, "rampart; hit", "GZ")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("gzip variant lost its Content-Encoding")
	}
	resp, body = env.get(t, "/desktop/js/app.js", "Accept-Encoding", "gzip;q=0") // refuses gzip: the identity variant
	expect(t, resp, body, 200, "rampart; hit", "PLAIN")
	if resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("identity variant carries Content-Encoding")
	}
	resp, body = env.get(t, "/desktop/js/app.js", "Accept-Encoding", "deflate")
	expect(t, resp, body, 200, "rampart; fwd=vary-miss; stored", "PLAIN")
	if n := env.origin.hits.Load(); n != 3 {
		t.Errorf("origin saw %d requests, want 3", n)
	}
}

func TestCache_CollapsedRequestOfOtherVariantFetchesItsOwn(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	gate := make(chan struct{})
	env.origin.set(func(o *origin) {
		o.gate, o.gateAll = gate, true
		o.serve = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Language")
			w.Write([]byte("lang=" + r.Header.Get("Accept-Language")))
		}
	})
	type answer struct{ body, cs string }
	answers := make(chan answer, 2)
	for _, lang := range []string{"de", "fr"} {
		go func() {
			resp, body := env.get(t, "/cuic/labels.js", "Accept-Language", lang)
			answers <- answer{body, resp.Header.Get("Cache-Status")}
		}()
	}
	waitFor(t, "the first fetch", func() bool { return env.origin.hits.Load() == 1 })
	time.Sleep(30 * time.Millisecond)
	env.origin.set(func(o *origin) { o.gateAll = false })
	close(gate)

	got := map[string]bool{}
	for range 2 {
		a := <-answers
		got[a.body] = true
	}
	if !got["lang=de"] || !got["lang=fr"] {
		t.Errorf("bodies = %v, want each client its own language", got)
	}
}

func TestCache_ConcurrentMissesCollapse(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	gate := make(chan struct{})
	env.origin.set(func(o *origin) { o.gate, o.gateAll = gate, true })

	done := make(chan struct{})
	var statuses, bodies []string
	go func() {
		defer close(done)
		statuses, bodies = env.parallel(t, 50, "/desktop/js/app.js")
	}()
	waitFor(t, "the fill", func() bool { return env.origin.hits.Load() == 1 })
	time.Sleep(50 * time.Millisecond)
	close(gate)
	<-done

	if n := env.origin.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	if n := count(bodies, "v1"); n != 50 {
		t.Errorf("%d of 50 clients got the body", n)
	}
	stored := count(statuses, "rampart; fwd=uri-miss; stored")
	collapsed := count(statuses, "rampart; fwd=uri-miss; collapsed")
	hits := count(statuses, "rampart; hit")
	if stored != 1 || collapsed == 0 || stored+collapsed+hits != 50 {
		t.Errorf("stored=%d collapsed=%d hits=%d; statuses %q", stored, collapsed, hits, statuses)
	}
}

func TestCache_ClientNoCacheIsServedFromCache(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/desktop/js/app.js")
	for _, hdr := range [][]string{
		{"Cache-Control", "no-cache"},
		{"Cache-Control", "max-age=0"},
		{"Pragma", "no-cache"},
		{"Cache-Control", "no-store"},
	} {
		resp, body := env.get(t, "/desktop/js/app.js", hdr...)
		expect(t, resp, body, 200, "rampart; hit", "v1")
	}
	if n := env.origin.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests: a client forced a fetch", n)
	}
}

func TestCache_QueryParametersNormalised(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	resp, body := env.get(t, "/desktop/js/app.js?v=12&lang=en")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", "v1")
	resp, body = env.get(t, "/desktop/js/app.js?lang=en&v=12")
	expect(t, resp, body, 200, "rampart; hit", "v1")
	resp, body = env.get(t, "/desktop/js/app.js?v=13&lang=en")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", "v1")
}

func TestCache_UpstreamLifetimeShortensFreshness(t *testing.T) {
	env := newTestEnv(t, RouteConfig{StaleWhileRevalidate: dur(time.Second)}, 64*mib)
	env.origin.set(func(o *origin) { o.cc = "max-age=60" })
	env.get(t, "/a.js")
	env.clock.Advance(59 * time.Second)
	resp, body := env.get(t, "/a.js")
	expect(t, resp, body, 200, "rampart; hit", "v1")
	env.clock.Advance(5 * time.Second)
	resp, body = env.get(t, "/a.js")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=304", "v1")

	// A longer upstream lifetime is capped at revalidate_after.
	env.origin.set(func(o *origin) { o.cc = "max-age=86400" })
	env.get(t, "/b.js")
	env.clock.Advance(DefaultRevalidateAfter + 2*time.Second)
	resp, body = env.get(t, "/b.js")
	expect(t, resp, body, 200, "rampart; fwd=stale; fwd-status=304", "v1")
}

func TestCache_MaxAgeDropsEntry(t *testing.T) {
	env := newTestEnv(t, RouteConfig{RevalidateAfter: dur(time.Minute), MaxAge: dur(time.Hour)}, 64*mib)
	env.get(t, "/a.js")
	env.clock.Advance(time.Hour)
	resp, body := env.get(t, "/a.js")
	expect(t, resp, body, 200, "rampart; fwd=miss; stored", "v1")
	if h := env.origin.headers()[1]; h.Get("If-None-Match") != "" {
		t.Errorf("an entry past max_age was revalidated instead of refetched")
	}
}

func TestCache_TooLargeObjectPassesThroughUncached(t *testing.T) {
	const budget = 64 << 10 // largest object budget/8 = 8KiB
	big := strings.Repeat("x", 20<<10)
	for _, chunked := range []bool{false, true} {
		t.Run("chunked="+strconv.FormatBool(chunked), func(t *testing.T) {
			env := newTestEnv(t, RouteConfig{}, budget)
			env.origin.set(func(o *origin) {
				o.serve = func(w http.ResponseWriter, r *http.Request) {
					if !chunked {
						w.Header().Set("Content-Length", strconv.Itoa(len(big)))
					}
					for i := 0; i < len(big); i += 4 << 10 {
						w.Write([]byte(big[i : i+4<<10]))
						w.(http.Flusher).Flush()
					}
				}
			})
			resp, body := env.get(t, "/recording.wav")
			expect(t, resp, body, 200, "rampart; fwd=uri-miss; detail=too-large", big)
			resp, body = env.get(t, "/recording.wav")
			expect(t, resp, body, 200, "rampart; fwd=miss; detail=uncacheable", big)
			if st := env.store.Stats(); st.Entries != 0 || st.Markers != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestCache_EvictsLeastRecentlyUsedWithinBudget(t *testing.T) {
	body := strings.Repeat("b", 1000)
	probe := newTestEnv(t, RouteConfig{}, 64*mib)
	probe.origin.set(func(o *origin) { o.body = body })
	probe.get(t, "/e/0")
	size := probe.store.Stats().Bytes

	env := newTestEnv(t, RouteConfig{}, 8*size+size/2) // room for 8 entries
	env.origin.set(func(o *origin) { o.body = body })
	for i := range 8 {
		env.get(t, "/e/"+strconv.Itoa(i))
	}
	if st := env.store.Stats(); st.Entries != 8 || st.Evictions != 0 || st.Bytes != 8*size {
		t.Fatalf("after 8 fills: %+v (entry size %d)", st, size)
	}
	env.get(t, "/e/0") // now the most recently used
	env.get(t, "/e/8") // evicts /e/1, the least recently used

	st := env.store.Stats()
	if st.Entries != 8 || st.Evictions != 1 || st.Bytes > st.Budget {
		t.Errorf("after the 9th fill: %+v", st)
	}
	resp, _ := env.get(t, "/e/0")
	if got := resp.Header.Get("Cache-Status"); got != "rampart; hit" {
		t.Errorf("/e/0: %q, want a hit", got)
	}
	resp, _ = env.get(t, "/e/1")
	if got := resp.Header.Get("Cache-Status"); got != "rampart; fwd=uri-miss; stored" {
		t.Errorf("/e/1: %q, want it evicted", got)
	}
}

func TestCache_PurgeByKeyPrefixAndSite(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	for _, p := range []string{"/desktop/js/a.js", "/desktop/js/b.js?v=1&x=2", "/desktop/css/c.css", "/cuic/d.js"} {
		env.get(t, p)
	}
	s := env.store

	if !s.PurgeKey("/desktop/js/b.js?x=2&v=1") {
		t.Error("PurgeKey by path with parameters in another order found nothing")
	}
	if s.PurgeKey("/desktop/js/b.js?x=2&v=1") {
		t.Error("PurgeKey found the purged key again")
	}
	if !s.PurgeKey(testSite + "/cuic/d.js") {
		t.Error("PurgeKey by full key found nothing")
	}
	if n := s.Purge("/desktop/js/"); n != 1 {
		t.Errorf("Purge(/desktop/js/) = %d, want 1", n)
	}
	resp, _ := env.get(t, "/desktop/js/a.js")
	if got := resp.Header.Get("Cache-Status"); got != "rampart; fwd=uri-miss; stored" {
		t.Errorf("purged entry answered %q", got)
	}
	if n := s.Purge(testSite + "/desktop/"); n != 2 {
		t.Errorf("Purge(site/desktop/) = %d, want 2", n)
	}
	env.get(t, "/desktop/js/a.js")
	if n := s.Purge(""); n != 1 {
		t.Errorf("Purge(\"\") = %d, want 1", n)
	}
	if st := s.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("after purging everything: %+v", st)
	}
}

func TestCache_PurgeDuringRevalidationIsNotUndone(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/a.js")
	env.clock.Advance(DefaultRevalidateAfter + time.Second)
	gate := make(chan struct{})
	env.origin.set(func(o *origin) { o.gate = gate })
	env.get(t, "/a.js") // stale, revalidation starts in the background
	waitFor(t, "the revalidation", func() bool { return env.origin.cond.Load() == 1 })
	env.store.Purge("")
	close(gate)
	waitFor(t, "the revalidation to finish", func() bool { return env.store.Stats().Revalidated == 1 })
	if st := env.store.Stats(); st.Entries != 0 {
		t.Errorf("the revalidation put a purged entry back: %+v", st)
	}
}

func TestCache_UnsafeMethodInvalidates(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.get(t, "/a.js")
	resp, _ := env.do(t, http.MethodPost, "/a.js")
	if got := resp.Header.Get("Cache-Status"); got != "rampart; fwd=method" {
		t.Errorf("POST Cache-Status = %q", got)
	}
	resp, body := env.get(t, "/a.js")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", "v1")
}

func TestCache_DisabledRoutePassesThrough(t *testing.T) {
	next := http.NotFoundHandler()
	if _, wrapped := NewStore(testSite, mib).Handler(RouteConfig{Enabled: false}, next).(*handler); wrapped {
		t.Error("a disabled route was wrapped")
	}
	if _, wrapped := NewStore(testSite, 0).Handler(RouteConfig{Enabled: true}, next).(*handler); wrapped {
		t.Error("a store without budget wrapped the route")
	}
}

func dur(d time.Duration) units.Duration { return units.Duration(d) }

func TestCache_FetchOutlivesTheClientThatStartedIt(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	gate := make(chan struct{})
	env.origin.set(func(o *origin) { o.gate, o.gateAll = gate, true })

	req, _ := http.NewRequest(http.MethodGet, env.front.URL+"/desktop/js/app.js", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := env.client.Do(req.WithContext(ctx)); err == nil {
		t.Fatal("the request was answered before the origin was let go")
	}
	env.origin.set(func(o *origin) { o.gateAll = false })
	close(gate)
	waitFor(t, "the fill to be stored", func() bool { return env.store.Stats().Entries == 1 })

	resp, body := env.get(t, "/desktop/js/app.js")
	expect(t, resp, body, 200, "rampart; hit", "v1")
	if n := env.origin.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

func TestCache_FetchIsBoundedByTimeout(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	env.store.fetchTimeout = 50 * time.Millisecond
	env.origin.set(func(o *origin) { o.gate, o.gateAll = make(chan struct{}), true })

	resp, _ := env.get(t, "/desktop/js/app.js")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502 once the fetch timed out", resp.StatusCode)
	}
	if got := resp.Header.Get("Cache-Status"); got != "rampart; fwd=uri-miss; fwd-status=502" {
		t.Errorf("Cache-Status = %q", got)
	}
}

// At most maxFetches fetches run at once per store: they are detached from
// their clients, so clients asking for many URLs and leaving could
// otherwise start any number. Over the bound a request is passed through
// uncached, tied to its own client.
func TestCache_FetchesBeyondTheBoundPassThrough(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	release := make(chan struct{})
	var held atomic.Int64
	env.origin.set(func(o *origin) {
		o.serve = func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/hold/") {
				held.Add(1)
				<-release
			}
			w.Header().Set("Cache-Control", "max-age=60")
			w.Write([]byte("ok"))
		}
	})
	var wg sync.WaitGroup
	for i := range maxFetches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env.get(t, "/hold/"+strconv.Itoa(i))
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); held.Load() < maxFetches; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d fetches reached the origin", held.Load(), maxFetches)
		}
	}
	resp, body := env.get(t, "/free")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; detail=busy", "ok")
	close(release)
	wg.Wait()
	// With the fetches done, the next miss is fetched and stored again.
	resp, body = env.get(t, "/free2")
	expect(t, resp, body, 200, "rampart; fwd=uri-miss; stored", "ok")
}

func TestCapture_DeclaredLengthReservesAtMostCapturePrealloc(t *testing.T) {
	c := &capture{header: http.Header{"Content-Length": {"8000000"}}, limit: 8 << 20}
	c.WriteHeader(http.StatusOK)
	if cap(c.body) > capturePrealloc {
		t.Errorf("reserved %d bytes for a declared 8 MB body, want at most %d", cap(c.body), capturePrealloc)
	}
}
