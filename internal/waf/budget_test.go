package waf

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe/observetest"
)

func withBudget(t *testing.T, n int64) {
	t.Helper()
	prev := bufferBudget.Load()
	SetBufferBudget(n)
	t.Cleanup(func() { SetBufferBudget(prev) })
}

func jsonBody(n int) string {
	return `{"note":"` + strings.Repeat("a", n-11) + `"}`
}

// A body that would take the bodies held together over the budget is
// refused with 503 before the upstream sees it; what was counted is given
// back, so a smaller body passes afterwards.
func TestBufferBudget_BodyOverTheBudgetIs503(t *testing.T) {
	withBudget(t, 100)
	w := mustWAF(t, Config{})
	log := observetest.Security(t)
	up := &upstream{}
	r := newRequest("POST", "/api/notes", "application/json", strings.NewReader(jsonBody(200)))
	rec := serve(w.Handler(up), r)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || up.count.Load() != 0 {
		t.Fatalf("status %d, Retry-After %q, upstream %d; want 503 with Retry-After and no upstream request", rec.Code, rec.Header().Get("Retry-After"), up.count.Load())
	}
	if ev := log.String(); !strings.Contains(ev, `"reason":"buffer-budget"`) {
		t.Errorf("security log %s, want reason buffer-budget", ev)
	}
	if used := bufferUsed.Load(); used != 0 {
		t.Errorf("%d bytes still counted after the refusal", used)
	}
	r = newRequest("POST", "/api/notes", "application/json", strings.NewReader(jsonBody(60)))
	if rec := serve(w.Handler(up), r); rec.Code != http.StatusOK || up.count.Load() != 1 {
		t.Fatalf("small body: status %d, upstream %d; want 200 and forwarded", rec.Code, up.count.Load())
	}
	if used := bufferUsed.Load(); used != 0 {
		t.Errorf("%d bytes still counted after the small body", used)
	}
}

// The budget is shared: while one body holds most of it, another that does
// not fit is refused; once the first is done, the budget is free again.
func TestBufferBudget_IsSharedByConcurrentBodies(t *testing.T) {
	withBudget(t, 100)
	w := mustWAF(t, Config{})
	observetest.Security(t)
	up := &upstream{}
	pr, pw := io.Pipe()
	first := newRequest("POST", "/api/notes", "application/json", pr)
	first.ContentLength = 90
	done := make(chan int)
	go func() { done <- serve(w.Handler(up), first).Code }()
	body := jsonBody(90)
	if _, err := io.WriteString(pw, body[:80]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for bufferUsed.Load() < 80 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r := newRequest("POST", "/api/notes", "application/json", strings.NewReader(jsonBody(50)))
	if rec := serve(w.Handler(up), r); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("second body while the first holds 80 of 100 bytes: status %d, want 503", rec.Code)
	}
	_, _ = io.WriteString(pw, body[80:])
	_ = pw.Close()
	if code := <-done; code != http.StatusOK {
		t.Errorf("first body: status %d, want 200", code)
	}
	if used := bufferUsed.Load(); used != 0 {
		t.Errorf("%d bytes still counted after both", used)
	}
}

// Response bodies held for response_inspection count against the same
// budget: over it, block mode answers 503 instead of an uninspected
// response, detect mode sends the response whole; nothing stays counted.
func TestBufferBudget_ResponseBodies(t *testing.T) {
	withBudget(t, 10<<10)
	page := strings.Repeat("<p>an ordinary page</p>\n", 1000) // 24 KB, written in pieces
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		for i := 0; i < len(page); i += 4096 {
			_, _ = io.WriteString(w, page[i:min(i+4096, len(page))])
		}
	})
	small := respondWith(http.StatusOK, "text/html", "<p>short</p>", nil)

	w := mustWAF(t, Config{ResponseInspection: boolPtr(true)})
	log := observetest.Security(t)
	rec := serve(w.Handler(upstream), newRequest("GET", "/desktop/page", "", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "ordinary page") {
		t.Fatalf("block mode: status %d, body %.60q; want 503 without the upstream's bytes", rec.Code, rec.Body.String())
	}
	if ev := log.String(); !strings.Contains(ev, `"reason":"buffer-budget"`) || !strings.Contains(ev, `"phase":"response"`) {
		t.Errorf("security log %s, want reason buffer-budget in the response phase", ev)
	}
	if used := bufferUsed.Load(); used != 0 {
		t.Errorf("%d bytes still counted after the refusal", used)
	}
	if rec := serve(w.Handler(small), newRequest("GET", "/desktop/page", "", nil)); rec.Code != http.StatusOK || rec.Body.String() != "<p>short</p>" {
		t.Errorf("a response within the budget: status %d, body %q", rec.Code, rec.Body.String())
	}

	d := mustWAF(t, Config{Mode: ModeDetect, ResponseInspection: boolPtr(true)})
	log = observetest.Security(t)
	detected := counterValue(t, countDetect)
	rec = serve(d.Handler(upstream), newRequest("GET", "/desktop/page", "", nil))
	if got := counterValue(t, countDetect) - detected; got != 1 {
		t.Errorf("detect counter rose by %v, want 1", got)
	}
	if rec.Code != http.StatusOK || rec.Body.String() != page {
		t.Fatalf("detect mode: status %d, %d bytes; want the page whole (%d)", rec.Code, rec.Body.Len(), len(page))
	}
	if ev := log.String(); !strings.Contains(ev, `"reason":"detect"`) || !strings.Contains(ev, `"rule":"buffer-budget"`) {
		t.Errorf("detect mode security log %s, want a detect event for buffer-budget", ev)
	}
	if used := bufferUsed.Load(); used != 0 {
		t.Errorf("%d bytes still counted after detect mode", used)
	}
}

// An upstream handler that panics while its response is held (what
// ReverseProxy does when the upstream cuts the body: http.ErrAbortHandler)
// leaves nothing counted.
func TestBufferBudget_ResponseClaimReleasedOnPanic(t *testing.T) {
	w := mustWAF(t, Config{ResponseInspection: boolPtr(true)})
	observetest.Security(t)
	before := bufferUsed.Load()
	h := w.Handler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(rw, strings.Repeat("<p>x</p>", 1000))
		panic(http.ErrAbortHandler)
	}))
	func() {
		defer func() { _ = recover() }()
		serve(h, newRequest("GET", "/desktop/page", "", nil))
	}()
	if used := bufferUsed.Load() - before; used != 0 {
		t.Errorf("%d bytes still counted after the handler panicked", used)
	}
}
