package waf

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// testSet shares built WAFs between tests: building CRS takes about half a
// second, and most tests use one of a few configurations.
var testSet = NewSet()

func mustWAF(t testing.TB, cfg Config) *WAF {
	t.Helper()
	w, err := testSet.Get(cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func boolPtr(b bool) *bool { return &b }

// upstream counts the requests that reach it and keeps the last body.
type upstream struct {
	count atomic.Int32
	mu    sync.Mutex
	body  []byte
	cl    int64
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.count.Add(1)
	body, _ := io.ReadAll(r.Body)
	_ = r.Body.Close()
	u.mu.Lock()
	u.body, u.cl = body, r.ContentLength
	u.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "upstream ok")
}

func (u *upstream) lastBody() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.body
}

var reqSeq atomic.Int64

// newRequest builds a request as the pipeline hands it to the WAF: with a
// request id in reqinfo and the headers a Chrome browser sends.
func newRequest(method, target, contentType string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.Host = "finesse.example.com"
	r.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-US,en;q=0.9")
	r.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	id := fmt.Sprintf("req-%06d", reqSeq.Add(1))
	info := &reqinfo.Info{ID: id, Route: "prefix:/", Path: r.URL.Path}
	return r.WithContext(reqinfo.With(context.Background(), info))
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// assertRefused checks a refusal: the status, the request id in header and
// body, and that nothing reached the upstream.
func assertRefused(t *testing.T, rec *httptest.ResponseRecorder, r *http.Request, up *upstream, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %q", rec.Code, status, rec.Body.String())
	}
	id := reqinfo.Of(r).ID
	if got := rec.Header().Get("X-Request-ID"); got != id {
		t.Errorf("X-Request-ID %q, want %q", got, id)
	}
	if !strings.Contains(rec.Body.String(), id) {
		t.Errorf("body %q does not name the request id %q", rec.Body.String(), id)
	}
	if n := up.count.Load(); n != 0 {
		t.Errorf("upstream reached %d times, want 0", n)
	}
}
