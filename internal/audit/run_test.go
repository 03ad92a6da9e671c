package audit

import (
	"strings"
	"testing"
	"time"
)

// A careful proxy passes everything; the run stays within its bounds.
func TestRun_StrictSitePasses(t *testing.T) {
	var f *fake
	f = startFake(t, nil, func(r *rawReq) rawResp { return strictSite(portOf(f))(r) })
	opts := testOptions(f)
	opts.ExpectPaths = []string{"/", "/api/*"}
	rep, err := Run(ctxT(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Checks {
		if c.Status == Fail {
			t.Errorf("%s failed: %s", c.ID, c.Evidence)
		}
	}
	if rep.Failed() || rep.Summary.Pass < 40 {
		t.Errorf("summary %+v", rep.Summary)
	}
	if n := f.requests.Load(); n > DefaultMaxRequests {
		t.Errorf("%d requests reached the target, cap is %d", n, DefaultMaxRequests)
	}
	if m := f.maxIn.Load(); m > MaxConcurrency {
		t.Errorf("%d requests in flight at once, want <= %d", m, MaxConcurrency)
	}
	// Polite: no state-changing methods; the only bodies are the
	// smuggling probes' harmless ones.
	for _, r := range f.reqs() {
		switch r.Method {
		case "POST", "PUT", "DELETE", "PATCH":
			t.Errorf("sent %s %s", r.Method, r.Target)
		}
		if r.Body != "" && r.Body != "0\r\n\r\n" && r.Body != "abcd" && r.Body != "abcd\r\n" {
			t.Errorf("sent a body %q with %s %s", r.Body, r.Method, r.Target)
		}
	}
	// Every category is present.
	for _, cat := range Categories {
		found := false
		for _, c := range rep.Checks {
			found = found || c.Category == cat
		}
		if !found {
			t.Errorf("no check in category %s", cat)
		}
	}
}

func TestRun_RequestCap(t *testing.T) {
	var f *fake
	f = startFake(t, nil, func(r *rawReq) rawResp { return strictSite(portOf(f))(r) })
	opts := testOptions(f)
	opts.MaxRequests = 40
	rep, err := Run(ctxT(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.requests.Load(); n > 40 {
		t.Errorf("%d requests with a cap of 40", n)
	}
	if rep.Summary.Skip == 0 {
		t.Errorf("no check skipped under a cap of 40: %+v", rep.Summary)
	}
	c, _ := rep.Check("paths.bypass:/server-status")
	if c.Status != Skip || !strings.Contains(c.Evidence, "budget") {
		t.Errorf("last path check: %s %q, want skip for the budget", c.Status, c.Evidence)
	}
}

func TestRun_Unreachable(t *testing.T) {
	_, err := Run(ctxT(t), Options{Target: "https://127.0.0.1:1", HandshakeRate: 1000})
	if err == nil || !strings.Contains(err.Error(), "cannot connect") {
		t.Errorf("err = %v, want cannot connect", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Target: "http://example.test"},
		{Target: "example.test"},
		{Target: "https://"},
		{Target: "https://example.test/path"},
		{Target: "https://user@example.test"},
		{Target: "https://example.test", Burst: MaxBurst + 1},
		{Target: "https://example.test", Burst: -1},
		{Target: "https://example.test", CAFile: "/nonexistent/ca.pem"},
		{Target: "https://example.test", Hosts: []string{"a b"}},
		{Target: "https://example.test", ForbiddenPaths: []string{"admin"}},
		{Target: "https://example.test", ExpectPaths: []string{"/a b"}},
		{Target: "https://example.test", Slow: true, SlowFor: MinSlowFor - time.Millisecond},
		{Target: "https://example.test", Slow: true, SlowFor: MaxSlowFor + time.Second},
		{Target: "https://example.test", Slow: true, SlowFor: -time.Second},
	} {
		err := o.Validate()
		if _, ok := err.(*UsageError); !ok {
			t.Errorf("%+v: err = %v, want a usage error", o, err)
		}
	}
	ok := Options{Target: "https://example.test:8443/", Hosts: []string{"app.test", "www.app.test"}, Burst: MaxBurst}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid options: %v", err)
	}
	tg, _ := ok.resolve()
	if tg.addr != "example.test:8443" || tg.sni != "app.test" || tg.hostHdr != "app.test:8443" {
		t.Errorf("resolved %+v", tg)
	}
	tg, _ = (&Options{Target: "https://127.0.0.1"}).resolve()
	if tg.addr != "127.0.0.1:443" || tg.sni != "" || tg.hostHdr != "127.0.0.1" {
		t.Errorf("resolved %+v", tg)
	}
	if tg.slow || tg.slowFor != DefaultSlowFor {
		t.Errorf("slow %v for %v, want off and the default bound %v", tg.slow, tg.slowFor, DefaultSlowFor)
	}
	for _, d := range []time.Duration{MinSlowFor, MaxSlowFor} {
		tg, err := (&Options{Target: "https://example.test", Slow: true, SlowFor: d}).resolve()
		if err != nil || !tg.slow || tg.slowFor != d {
			t.Errorf("SlowFor %v: %v, %+v", d, err, tg)
		}
	}
}
