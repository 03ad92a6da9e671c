package audit

import (
	"strings"
	"sync/atomic"
	"testing"
)

func TestLimits_Burst(t *testing.T) {
	var n atomic.Int64
	f := startFake(t, nil, func(*rawReq) rawResp {
		if n.Add(1) > 20 {
			return rawResp{Status: 429, Headers: []string{"Retry-After: 1"}}
		}
		return rawResp{Status: 200, Body: "ok"}
	})
	o := testOptions(f)
	o.Burst = 30
	a := newTestAuditor(t, o)
	a.runLimits(ctxT(t))
	got := checkMap(a)["limits.burst"]
	if got.Status != Pass || !strings.Contains(got.Evidence, "200×20 429×10") || !strings.Contains(got.Evidence, "first 429/503 after") {
		t.Errorf("limits.burst = %s %q", got.Status, got.Evidence)
	}
	if f.requests.Load() != 30 {
		t.Errorf("%d requests, want 30", f.requests.Load())
	}
	if m := f.maxIn.Load(); m > MaxConcurrency {
		t.Errorf("%d in flight", m)
	}
}

func TestLimits_NoLimitIsAWarning(t *testing.T) {
	f := startFake(t, nil, okSite)
	o := testOptions(f)
	o.Burst = 10
	a := newTestAuditor(t, o)
	a.runLimits(ctxT(t))
	want(t, checkMap(a), map[string]Status{"limits.burst": Warn})
}

func TestLimits_NotAsked(t *testing.T) {
	f := startFake(t, nil, okSite)
	a := newTestAuditor(t, testOptions(f))
	a.runLimits(ctxT(t))
	want(t, checkMap(a), map[string]Status{"limits.burst": Skip})
	if f.requests.Load() != 0 {
		t.Errorf("%d requests without --burst", f.requests.Load())
	}
}
