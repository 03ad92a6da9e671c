package audit

import (
	"reflect"
	"strings"
	"testing"
)

func TestReadPathList(t *testing.T) {
	got, err := ReadPathList(strings.NewReader("# allowed\n/\n\n  /api/*   # the API\n/finesse/api/User\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/", "/api/*", "/finesse/api/User"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ReadPathList(strings.NewReader("/ok\nnot-a-path\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v, want line 2", err)
	}
}

func TestNeighbours(t *testing.T) {
	for in, want := range map[string][]string{
		"/":           {"/x", "/../admin"},
		"/api/":       {"/", "/apix/", "/api/../admin"},
		"/api/hello":  {"/api/", "/api/hellox", "/api/hello/../../admin"},
		"/a/b/c.html": {"/a/b/", "/a/b/c.htmlx", "/a/b/c.html/../../../admin"},
	} {
		if got := neighbours(in); !reflect.DeepEqual(got, want) {
			t.Errorf("neighbours(%q) = %q, want %q", in, got, want)
		}
	}
	al := newAllowList([]string{"/", "/api/*"})
	for p, want := range map[string]bool{"/": true, "/api/": true, "/api/x/y": true, "/apix/": false, "/api/../admin": false, "/x": false} {
		if got := al.allows(p); got != want {
			t.Errorf("allows(%q) = %v", p, got)
		}
	}
}

func TestExpect(t *testing.T) {
	// Allows /, /api/ and everything under it, and (wrongly) /apix/.
	f := startFake(t, nil, func(r *rawReq) rawResp {
		switch {
		case r.Target == "/" || strings.HasPrefix(r.Target, "/api/") && !strings.Contains(r.Target, ".."):
			return rawResp{Status: 200, Body: "ok"}
		case r.Target == "/apix/":
			return rawResp{Status: 200, Body: "sibling app"}
		case r.Target == "/login":
			return rawResp{Status: 404}
		case r.Target == "/old":
			return rawResp{Status: 502}
		}
		return rawResp{Status: 404}
	})
	o := testOptions(f)
	o.ExpectPaths = []string{"/", "/api/*", "/api/hello", "/login", "/old"}
	a := newTestAuditor(t, o)
	a.runExpect(ctxT(t))
	got := checkMap(a)
	want(t, got, map[string]Status{
		"paths.reachable:/":           Pass,
		"paths.neighbours:/":          Pass,
		"paths.neighbours:/api/*":     Fail,
		"paths.reachable:/api/hello":  Pass,
		"paths.neighbours:/api/hello": Pass,
		"paths.reachable:/login":      Fail,
		"paths.reachable:/old":        Warn,
	})
	if ev := got["paths.neighbours:/api/*"].Evidence; !strings.Contains(ev, "/apix/ → 200") {
		t.Errorf("evidence %q", ev)
	}
	if _, ok := got["paths.reachable:/api/*"]; ok {
		t.Error("a prefix entry was probed for reachability")
	}
}

func TestExpect_NoFile(t *testing.T) {
	a := newTestAuditor(t, Options{Target: "https://app.test"})
	a.runExpect(ctxT(t))
	want(t, checkMap(a), map[string]Status{"paths.expect": Skip})
}
