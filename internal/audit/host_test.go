package audit

import (
	"strings"
	"testing"
)

func TestHost_Lenient(t *testing.T) {
	_, o := lenientServer(t)
	a := newTestAuditor(t, o)
	ctx := ctxT(t)
	a.baselines(ctx)
	a.runHost(ctx)
	got := checkMap(a)
	want(t, got, map[string]Status{
		"host.baseline":     Pass,
		"host.unknown":      Fail,
		"host.sni-mismatch": Fail,
		"host.absolute-uri": Fail,
		"host.connect":      Fail,
		"host.missing":      Pass, // net/http insists on Host
	})
	// other.test serves the same page: an alias, not the failure; the
	// random name is.
	if ev := got["host.sni-mismatch"].Evidence; !strings.Contains(ev, "alias") || !strings.Contains(ev, "fronted-") {
		t.Errorf("sni-mismatch evidence %q", ev)
	}
}

func TestHost_Strict(t *testing.T) {
	var f *fake
	f = startFake(t, nil, func(r *rawReq) rawResp { return strictSite(portOf(f))(r) })
	o := testOptions(f)
	o.Hosts = []string{"app.test", "www.app.test"}
	a := newTestAuditor(t, o)
	ctx := ctxT(t)
	a.baselines(ctx)
	a.runHost(ctx)
	want(t, checkMap(a), map[string]Status{
		"host.baseline":     Pass,
		"host.unknown":      Pass,
		"host.sni-mismatch": Pass,
		"host.absolute-uri": Pass,
		"host.connect":      Pass,
		"host.missing":      Pass,
	})
}

// Two sites on one proxy, each with its own page, and no SNI check: a
// TLS session for app.test reaches other.test.
func TestHost_FrontingIntoAnotherSite(t *testing.T) {
	f := startFake(t, nil, func(r *rawReq) rawResp {
		if strings.HasPrefix(r.Host, "other.test") {
			return rawResp{Status: 200, Body: "<h1>other site: internal tools</h1>"}
		}
		if strings.HasPrefix(r.Host, "app.test") {
			return rawResp{Status: 200, Body: "<h1>app</h1>"}
		}
		return rawResp{Status: 421}
	})
	o := testOptions(f)
	o.Hosts = []string{"app.test", "other.test"}
	a := newTestAuditor(t, o)
	ctx := ctxT(t)
	a.baselines(ctx)
	a.fronting(ctx)
	got := checkMap(a)
	want(t, got, map[string]Status{"host.sni-mismatch": Fail})
	if ev := got["host.sni-mismatch"].Evidence; !strings.Contains(ev, "Host other.test → 200") {
		t.Errorf("evidence %q", ev)
	}
}

// A default site with its own page for unknown names is a warning; a
// redirect too.
func TestHost_UnknownDefaultSite(t *testing.T) {
	for _, tc := range []struct {
		resp rawResp
		st   Status
	}{
		{rawResp{Status: 200, Body: "<h1>Welcome to nginx!</h1> default server page"}, Warn},
		{rawResp{Status: 301, Headers: []string{"Location: https://app.test/"}}, Warn},
		{rawResp{Status: 404}, Pass},
		{rawResp{}, Pass}, // closed
	} {
		f := startFake(t, nil, func(r *rawReq) rawResp {
			if r.SNI == "app.test" {
				return rawResp{Status: 200, Body: "<h1>app</h1>"}
			}
			return tc.resp
		})
		a := newTestAuditor(t, testOptions(f))
		ctx := ctxT(t)
		a.baselines(ctx)
		a.runHost(ctx)
		if got := checkMap(a)["host.unknown"]; got.Status != tc.st {
			t.Errorf("unknown host answered %d: %s (%s), want %s", tc.resp.Status, got.Status, got.Evidence, tc.st)
		}
	}
}
