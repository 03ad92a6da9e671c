package waf

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
	log := captureSecurity(t)
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
	captureSecurity(t)
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
