package audit

import (
	"strings"
	"testing"
)

func runSmugglingAgainst(t *testing.T, h func(*rawReq) rawResp) map[string]Check {
	t.Helper()
	f := startFake(t, nil, h)
	a := newTestAuditor(t, testOptions(f))
	a.runSmuggling(ctxT(t))
	return checkMap(a)
}

func allSmuggling(st Status) map[string]Status {
	m := map[string]Status{}
	for _, p := range smugglingProbes {
		m[p.id] = st
	}
	return m
}

func TestSmuggling_Accepted(t *testing.T) {
	want(t, runSmugglingAgainst(t, okSite), allSmuggling(Fail))
}

func TestSmuggling_Refused400(t *testing.T) {
	want(t, runSmugglingAgainst(t, func(*rawReq) rawResp { return rawResp{Status: 400, Close: true} }), allSmuggling(Pass))
}

func TestSmuggling_Closed(t *testing.T) {
	want(t, runSmugglingAgainst(t, func(*rawReq) rawResp { return rawResp{} }), allSmuggling(Pass))
}

func TestSmuggling_Mixed(t *testing.T) {
	got := runSmugglingAgainst(t, func(r *rawReq) rawResp {
		te := strings.Join(r.Header["transfer-encoding"], ",")
		switch {
		case te == "xchunked":
			return rawResp{Status: 501}
		case te == "chunked":
			return rawResp{Status: 400}
		case len(r.Header["content-length"]) > 1:
			return rawResp{Status: 404}
		}
		return rawResp{Status: 200}
	})
	want(t, got, map[string]Status{
		"smuggling.cl-te":            Pass,
		"smuggling.te-xchunked":      Pass,
		"smuggling.te-leading-space": Fail, // "transfer-encoding " not recognised, CL used
		"smuggling.te-obs-fold":      Fail,
		"smuggling.cl-duplicate":     Warn,
	})
}

// The probes are well-formed under each reading: the body is complete.
func TestSmuggling_ProbesAreHarmless(t *testing.T) {
	f := startFake(t, nil, okSite)
	a := newTestAuditor(t, testOptions(f))
	a.runSmuggling(ctxT(t))
	reqs := f.reqs()
	if len(reqs) != len(smugglingProbes) {
		t.Fatalf("%d requests, want %d", len(reqs), len(smugglingProbes))
	}
	for _, r := range reqs {
		if r.Method != "GET" || r.Target != "/" || r.get("connection") != "close" {
			t.Errorf("probe %s %s connection=%q", r.Method, r.Target, r.get("connection"))
		}
	}
}
