package cache

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// discardWriter is the cheapest ResponseWriter: its header map is reused
// across iterations, so the benchmark measures the cache, not the writer.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkCache_Hit20KiB serves a fresh 20 KiB entry that varies on
// Accept-Encoding, as the desktop's JS does, to a request carrying the
// pipeline's request info.
func BenchmarkCache_Hit20KiB(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 20<<10)
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/javascript")
		h.Set("ETag", `"abc123"`)
		h.Set("Last-Modified", "Sat, 01 Feb 2025 00:00:00 GMT")
		h.Set("Vary", "Accept-Encoding")
		h.Set("Cache-Control", "max-age=86400")
		w.Write(body)
	})
	s := NewStore(testSite, 64*mib)
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	h := s.Handler(RouteConfig{Enabled: true}, origin)

	req := httptest.NewRequest(http.MethodGet, "/desktop/js/finesse.js?v=11.6.1", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	info := &reqinfo.Info{Site: testSite, Path: "/desktop/js/finesse.js"}
	req = req.WithContext(reqinfo.With(req.Context(), info))

	w := &discardWriter{h: make(http.Header)}
	h.ServeHTTP(w, req) // fill
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		clear(w.h)
		w.n = 0
		h.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK || w.n != len(body) || info.CacheState != "hit" {
		b.Fatalf("last answer: %d, %d bytes, %s", w.status, w.n, info.CacheState)
	}
}

func TestCache_HitPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept-Encoding")
		w.Write(bytes.Repeat([]byte("x"), 20<<10))
	})
	s := NewStore(testSite, 64*mib)
	h := s.Handler(RouteConfig{Enabled: true}, origin)
	req := httptest.NewRequest(http.MethodGet, "/a.js?v=1", nil)
	req.Header.Set("Accept-Encoding", "gzip, br")
	req = req.WithContext(reqinfo.With(req.Context(), &reqinfo.Info{Site: testSite, Path: "/a.js"}))
	w := &discardWriter{h: make(http.Header)}
	h.ServeHTTP(w, req)

	allocs := testing.AllocsPerRun(200, func() {
		clear(w.h)
		h.ServeHTTP(w, req)
	})
	if allocs > 2 {
		t.Errorf("a hit allocates %.0f times, want at most 2 (the body must not be copied)", allocs)
	}
}
