package audit

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestPathVariants(t *testing.T) {
	vs := pathVariants("/admin/", []string{"/x", "/api"})
	got := map[string]bool{}
	for _, v := range vs {
		if v.path == "/admin/" {
			t.Errorf("variant %s is the path itself", v.name)
		}
		if got[v.path] {
			t.Errorf("duplicate variant %s", v.path)
		}
		got[v.path] = true
		if err := checkPath(v.path); err != nil {
			t.Errorf("variant %q cannot be sent: %v", v.path, err)
		}
	}
	for _, p := range []string{
		"/x/..;/admin/", "/api/..;/admin/", "/x/%2e%2e/admin/", "/x/%2E%2e/admin/", "/x/%252e%252e/admin/",
		"//admin/", "/x/..%2fadmin/", "/x/..%5cadmin/", `/x\..\admin/`, "/admin%00/", "/x/%c0%ae%c0%ae/admin/",
		"/x;jsessionid=x/../admin/", "/admin;x/", "/ADMIN/", "/Admin/", "/%61dmin/",
	} {
		if !got[p] {
			t.Errorf("missing variant %s", p)
		}
	}
	// Multi-segment and upper-case paths.
	vs = pathVariants("/WEB-INF/web.xml", []string{"/x"})
	got = map[string]bool{}
	for _, v := range vs {
		got[v.path] = true
	}
	for _, p := range []string{"/WEB-INF%2fweb.xml", "/web-inf/web.xml", "/WEB-INF;x/web.xml", "/x/..;/WEB-INF/web.xml"} {
		if !got[p] {
			t.Errorf("missing variant %s in %v", p, vs)
		}
	}
}

// tomcatResolve reads a path as Tomcat does: ;parameters dropped per
// segment, escapes decoded, dot segments resolved.
func tomcatResolve(target string) string {
	segs := strings.Split(target, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		segs[i] = s
	}
	p := strings.Join(segs, "/")
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func runPathsAgainst(t *testing.T, h func(*rawReq) rawResp, forbid ...string) map[string]Check {
	t.Helper()
	f := startFake(t, nil, h)
	o := testOptions(f)
	o.ForbiddenPaths = forbid
	a := newTestAuditor(t, o)
	ctx := ctxT(t)
	a.baselines(ctx)
	a.runPaths(ctx)
	return checkMap(a)
}

func TestPaths_TomcatBehindPrefixDeny(t *testing.T) {
	got := runPathsAgainst(t, func(r *rawReq) rawResp {
		if strings.HasPrefix(r.Target, "/admin/") { // the front end's deny rule
			return rawResp{Status: 403}
		}
		switch p := tomcatResolve(r.Target); {
		case strings.HasPrefix(p, "/admin/"):
			return rawResp{Status: 200, Body: "SECRET ADMIN CONSOLE"}
		case p == "/":
			return rawResp{Status: 200, Body: "<h1>home</h1>"}
		}
		return rawResp{Status: 404, Body: "not found"}
	}, "/admin/", "/manager/html")
	want(t, got, map[string]Status{
		"paths.direct:/admin/":       Pass,
		"paths.bypass:/admin/":       Fail,
		"paths.direct:/manager/html": Pass,
		"paths.bypass:/manager/html": Pass,
	})
	ev := got["paths.bypass:/admin/"].Evidence
	for _, s := range []string{"/x/..;/admin/ → 200", "/admin;x/ → 200", "/admin/ itself → 403"} {
		if !strings.Contains(ev, s) {
			t.Errorf("bypass evidence lacks %q: %s", s, ev)
		}
	}
}

// A single-page app answers every path with the same 200 page: no
// variant is a bypass, and the forbidden path itself is not "served".
func TestPaths_CatchAllIsNotABypass(t *testing.T) {
	got := runPathsAgainst(t, func(r *rawReq) rawResp {
		if r.Target == "/admin/" {
			return rawResp{Status: 403}
		}
		return rawResp{Status: 200, Body: "<div id=app></div> " + r.Target}
	}, "/admin/", "/server-status")
	want(t, got, map[string]Status{
		"paths.direct:/admin/":        Pass,
		"paths.bypass:/admin/":        Pass,
		"paths.direct:/server-status": Pass,
		"paths.bypass:/server-status": Pass,
	})
}

// A traversal that lands on the home page is not the admin page.
func TestPaths_TraversalToHomeIsNotABypass(t *testing.T) {
	got := runPathsAgainst(t, func(r *rawReq) rawResp {
		switch {
		case strings.HasPrefix(r.Target, "/admin/"):
			return rawResp{Status: 403}
		case strings.Contains(r.Target, "..") || r.Target == "/":
			return rawResp{Status: 200, Body: "<h1>home</h1>"}
		}
		return rawResp{Status: 404}
	}, "/admin/")
	want(t, got, map[string]Status{"paths.bypass:/admin/": Pass})
}

func TestPaths_DirectlyServedAndCaseInsensitive(t *testing.T) {
	got := runPathsAgainst(t, func(r *rawReq) rawResp {
		switch {
		case r.Target == "/server-status":
			return rawResp{Status: 200, Body: "Apache Server Status for app.test"}
		case r.Target == "/admin/":
			return rawResp{Status: 403}
		case strings.EqualFold(r.Target, "/admin/"): // IIS-like back end
			return rawResp{Status: 200, Body: "admin console"}
		case r.Target == "/":
			return rawResp{Status: 200, Body: "home"}
		}
		return rawResp{Status: 404}
	}, "/admin/", "/server-status")
	got2 := got["paths.bypass:/admin/"]
	want(t, got, map[string]Status{
		"paths.direct:/server-status": Fail,
		"paths.bypass:/admin/":        Fail,
	})
	if !strings.Contains(got2.Evidence, "/ADMIN/ → 200") {
		t.Errorf("evidence %q", got2.Evidence)
	}
}

func TestPaths_RedirectIsAWarning(t *testing.T) {
	got := runPathsAgainst(t, func(r *rawReq) rawResp {
		switch {
		case r.Target == "/admin/":
			return rawResp{Status: 403}
		case r.Target == "//admin/":
			return rawResp{Status: 302, Headers: []string{"Location: /admin/login"}}
		}
		return rawResp{Status: 404}
	}, "/admin/")
	want(t, got, map[string]Status{"paths.bypass:/admin/": Warn})
}
