package audit

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

var (
	reVersion = regexp.MustCompile(`[0-9]`)
	// A product and version in an error page, as servers print them.
	reBodyBanner = regexp.MustCompile(`(?i)\b(nginx|openresty|apache|apache-coyote|apache tomcat|tomcat|jetty|microsoft-iis|lighttpd|litespeed|caddy|envoy|haproxy|tengine|kestrel)[/ ]v?[0-9]+(\.[0-9]+)+`)
)

// pages are the responses the header checks look at.
func (a *auditor) pages() []*response {
	var out []*response
	for _, r := range []*response{a.root, a.notFound} {
		if r != nil && r.answered() {
			out = append(out, r)
		}
	}
	return out
}

func (a *auditor) runHeaders() {
	a.hsts()
	pages := a.pages()
	if len(pages) == 0 {
		for _, id := range []string{"headers.server-banner", "headers.x-powered-by", "headers.nosniff", "headers.frame-options"} {
			a.add(CatHeaders, id, Skip, "no HTTP response to look at (GET / → %s)", a.root)
		}
		return
	}
	a.banners(pages)

	root := pages[0]
	where := fmt.Sprintf("GET %s → %d", root.target, root.Status)
	if v := root.Header.Get("X-Content-Type-Options"); strings.EqualFold(strings.TrimSpace(v), "nosniff") {
		a.add(CatHeaders, "headers.nosniff", Pass, "%s: X-Content-Type-Options: nosniff", where)
	} else {
		a.add(CatHeaders, "headers.nosniff", Warn, "%s without X-Content-Type-Options: nosniff", where)
	}
	xfo := root.Header.Get("X-Frame-Options")
	csp := root.Header.Get("Content-Security-Policy")
	switch {
	case strings.EqualFold(xfo, "DENY") || strings.EqualFold(xfo, "SAMEORIGIN"):
		a.add(CatHeaders, "headers.frame-options", Pass, "%s: X-Frame-Options: %s", where, xfo)
	case strings.Contains(strings.ToLower(csp), "frame-ancestors"):
		a.add(CatHeaders, "headers.frame-options", Pass, "%s: Content-Security-Policy with frame-ancestors", where)
	case xfo != "":
		a.add(CatHeaders, "headers.frame-options", Warn, "%s: X-Frame-Options: %s (not DENY or SAMEORIGIN)", where, clip(xfo, 60))
	default:
		a.add(CatHeaders, "headers.frame-options", Warn, "%s without X-Frame-Options or CSP frame-ancestors (clickjacking)", where)
	}
}

// banners looks for product versions in Server, X-Powered-By and error
// page bodies.
func (a *auditor) banners(pages []*response) {
	var values, bodies []string
	where := map[string][]string{}
	serverVersion := false
	for _, r := range pages {
		if v := clip(r.Header.Get("Server"), 80); v != "" {
			if where[v] == nil {
				values = append(values, v)
			}
			where[v] = append(where[v], "GET "+clip(r.target, 40))
			serverVersion = serverVersion || reVersion.MatchString(v)
		}
		if r.Status >= 400 {
			if m := reBodyBanner.Find(r.Body); m != nil {
				bodies = appendUnique(bodies, fmt.Sprintf("%d page body names %q", r.Status, clip(string(m), 60)))
			}
		}
	}
	var server []string
	for _, v := range values {
		server = append(server, fmt.Sprintf("Server: %s (%s)", v, strings.Join(where[v], ", ")))
	}
	ev := strings.Join(append(server, bodies...), "; ")
	switch {
	case serverVersion || len(bodies) > 0:
		a.add(CatHeaders, "headers.server-banner", Fail, "%s: product version disclosed", ev)
	case len(server) > 0:
		a.add(CatHeaders, "headers.server-banner", Warn, "%s: product named (no version)", ev)
	default:
		a.add(CatHeaders, "headers.server-banner", Pass, "no Server header or product version on %s", pageList(pages))
	}

	var powered []string
	poweredVersion := false
	for _, r := range pages {
		for _, h := range []string{"X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Generator"} {
			if v := r.Header.Get(h); v != "" {
				powered = appendUnique(powered, fmt.Sprintf("%s: %s", h, clip(v, 80)))
				poweredVersion = poweredVersion || reVersion.MatchString(v)
			}
		}
	}
	switch {
	case poweredVersion:
		a.add(CatHeaders, "headers.x-powered-by", Fail, "%s: framework version disclosed", strings.Join(powered, "; "))
	case len(powered) > 0:
		a.add(CatHeaders, "headers.x-powered-by", Warn, "%s: framework named", strings.Join(powered, "; "))
	default:
		a.add(CatHeaders, "headers.x-powered-by", Pass, "no X-Powered-By or similar on %s", pageList(pages))
	}
}

// cookies checks every Set-Cookie seen on the pages and expected paths.
func (a *auditor) cookies(extra []*response) {
	var weak, good []string
	seen := map[string]bool{}
	for _, r := range append(a.pages(), extra...) {
		if r == nil || !r.answered() {
			continue
		}
		for _, c := range (&http.Response{Header: r.Header}).Cookies() {
			if seen[c.Name] {
				continue
			}
			seen[c.Name] = true
			var missing []string
			if !c.Secure {
				missing = append(missing, "Secure")
			}
			if !c.HttpOnly {
				missing = append(missing, "HttpOnly")
			}
			if len(missing) > 0 {
				weak = append(weak, fmt.Sprintf("%s (GET %s) without %s", c.Name, clip(r.target, 40), strings.Join(missing, ", ")))
			} else {
				good = append(good, c.Name)
			}
		}
	}
	switch {
	case len(weak) > 0:
		a.add(CatHeaders, "headers.cookies", Fail, "cookie %s", strings.Join(weak, "; "))
	case len(good) > 0:
		a.add(CatHeaders, "headers.cookies", Pass, "cookies %s set with Secure and HttpOnly", strings.Join(good, ", "))
	default:
		a.add(CatHeaders, "headers.cookies", Pass, "no cookies set on the pages fetched")
	}
}

func pageList(pages []*response) string {
	var s []string
	for _, r := range pages {
		s = append(s, fmt.Sprintf("GET %s → %d", clip(r.target, 40), r.Status))
	}
	return strings.Join(s, ", ")
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
