package lint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/route"
)

// AdminPaths are well-known admin and management paths of the servers
// rampart usually stands in front of (Tomcat, Cisco IdS and CUIC, Apache,
// Spring Boot, WebLogic and JBoss, phpMyAdmin). A route that lets one of
// them through with no deny entry is reported.
var AdminPaths = []string{
	"/admin/", "/manager/html", "/idsadmin/", "/cfadmin/", "/server-status",
	"/actuator/", "/WEB-INF/", "/console/", "/phpmyadmin/",
}

// pattern is the kind, the pattern and the config key of a route or deny
// entry.
type pattern struct {
	kind route.Kind
	pat  string
	key  string // "exact", "prefix" or "regex"
}

func patternOf(exact, prefix, regex string) pattern {
	switch {
	case exact != "":
		return pattern{route.KindExact, exact, "exact"}
	case prefix != "":
		return pattern{route.KindPrefix, prefix, "prefix"}
	}
	return pattern{route.KindRegex, regex, "regex"}
}

func (pt pattern) String() string { return pt.key + " " + pt.pat }

// routes applies the rules about the route table of each site: duplicates,
// routes refused by deny entries, regex routes that never decide a request,
// nested prefixes with different methods, and exposed admin paths.
func (l *linter) routes() {
	for i := range l.cfg.Sites {
		s := &l.cfg.Sites[i]
		routes := make([]pattern, len(s.Routes))
		for j, r := range s.Routes {
			routes[j] = patternOf(r.Exact, r.Prefix, r.Regex)
		}
		denies := make([]pattern, len(s.Deny))
		for j, d := range s.Deny {
			denies[j] = patternOf(d.Exact, d.Prefix, d.Regex)
		}
		routeDup := l.duplicates(i, "routes", routes)
		denyDup := l.duplicates(i, "deny", denies)
		denyMatcher := matcher(nil, denies, denyDup)
		for j, rt := range routes {
			if routeDup[j] {
				continue
			}
			if d := deniedBy(rt, denies, denyDup, denyMatcher); d >= 0 {
				l.report(RuleRouteDenied, p("sites", i, "routes", j, rt.key),
					"%s is refused entirely by deny[%d] (%s): the route is never used", rt, d, denies[d])
				continue
			}
			if rt.kind == route.KindRegex && !isConfigRegexAll(s.Routes[j]) {
				if by := shadowedBy(j, routes, routeDup); by >= 0 {
					l.report(RuleRouteShadow, p("sites", i, "routes", j, "regex"),
						"every path %q matches is taken by routes[%d] (%s) first (exact, then longest prefix, then regex in file order): this route's methods and settings never apply", rt.pat, by, routes[by])
				}
			}
		}
		l.nestedMethods(i, routes, routeDup)
		if m := matcher(routes, denies, mergeDup(routeDup, denyDup, len(routes))); m != nil {
			l.adminPaths(i, m)
		}
	}
}

// duplicates reports every entry that repeats an earlier one of the same
// list; the returned set marks the repeats.
func (l *linter) duplicates(i int, list string, pats []pattern) map[int]bool {
	first := map[pattern]int{}
	dup := map[int]bool{}
	for j, pt := range pats {
		if pt.pat == "" {
			continue
		}
		k, seen := first[pattern{pt.kind, pt.pat, ""}]
		if !seen {
			first[pattern{pt.kind, pt.pat, ""}] = j
			continue
		}
		dup[j] = true
		l.report(RuleRouteDup, p("sites", i, list, j, pt.key),
			"%s repeats %s[%d]: rampart refuses to start with a pattern listed twice", pt, list, k)
	}
	return dup
}

// mergeDup returns the repeats of routes and deny entries as one set with
// deny indexes offset by n, as matcher expects.
func mergeDup(routeDup, denyDup map[int]bool, n int) map[int]bool {
	out := map[int]bool{}
	for j := range routeDup {
		out[j] = true
	}
	for j := range denyDup {
		out[n+j] = true
	}
	return out
}

// matcher builds the site's matcher as the pipeline does, leaving out
// repeated entries (skip holds route indexes, then deny indexes offset by
// len(routes)); nil when the table does not build.
func matcher(routes, denies []pattern, skip map[int]bool) *route.Matcher {
	var rr, dd []route.Rule
	for j, pt := range routes {
		if !skip[j] {
			rr = append(rr, route.Rule{Kind: pt.kind, Pattern: pt.pat, Index: j})
		}
	}
	for j, pt := range denies {
		if !skip[len(routes)+j] {
			dd = append(dd, route.Rule{Kind: pt.kind, Pattern: pt.pat, Index: j})
		}
	}
	m, err := route.NewMatcher(rr, dd)
	if err != nil {
		return nil
	}
	return m
}

// deniedBy returns the index of a deny entry that refuses every path rt
// can match, or -1.
func deniedBy(rt pattern, denies []pattern, skip map[int]bool, dm *route.Matcher) int {
	if rt.kind == route.KindExact {
		if dm == nil {
			return -1
		}
		_, d := dm.Match(rt.pat)
		return d
	}
	// Every path of a prefix route starts with its pattern; every path of
	// a regex route with its guaranteed prefix, and is exactly its literal
	// when it is written ^literal$.
	prefix := rt.pat
	exactOnly := ""
	if rt.kind == route.KindRegex {
		sh, ok := parseShape(rt.pat)
		if !ok {
			return -1
		}
		prefix = guaranteedPrefix(sh)
		if sh.exact {
			exactOnly = sh.lit
		}
	}
	for d, dn := range denies {
		if skip[d] {
			continue
		}
		switch dn.kind {
		case route.KindPrefix:
			if strings.HasPrefix(prefix, dn.pat) {
				return d
			}
		case route.KindRegex:
			if regexCovers(dn.pat, prefix) {
				return d
			}
		case route.KindExact:
			if exactOnly != "" && exactOnly == dn.pat {
				return d
			}
		}
	}
	return -1
}

// shadowedBy returns the index of a route that is chosen for every path
// regex route j matches, or -1: an exact route equal to a ^literal$ regex,
// a prefix route its guaranteed prefix starts with, or an earlier regex
// route that matches everything under that prefix.
func shadowedBy(j int, routes []pattern, skip map[int]bool) int {
	sh, ok := parseShape(routes[j].pat)
	if !ok {
		return -1
	}
	if sh.anchored && sh.lit != "" && !strings.HasPrefix(sh.lit, "/") {
		return -1 // never matches at all: regex-never-matches
	}
	prefix := guaranteedPrefix(sh)
	longest, earlier := -1, -1
	for k, o := range routes {
		if k == j || skip[k] {
			continue
		}
		switch o.kind {
		case route.KindExact:
			if sh.exact && o.pat == sh.lit {
				return k
			}
		case route.KindPrefix:
			if strings.HasPrefix(prefix, o.pat) && (longest < 0 || len(o.pat) > len(routes[longest].pat)) {
				longest = k
			}
		case route.KindRegex:
			if k < j && earlier < 0 && regexCovers(o.pat, prefix) {
				earlier = k
			}
		}
	}
	if longest >= 0 {
		return longest
	}
	return earlier
}

// nestedMethods reports a prefix route inside another prefix route whose
// methods differ from those of the route around it.
func (l *linter) nestedMethods(i int, routes []pattern, skip map[int]bool) {
	s := &l.cfg.Sites[i]
	for j, inner := range routes {
		if inner.kind != route.KindPrefix || skip[j] {
			continue
		}
		outer := -1
		for k, o := range routes {
			if k == j || skip[k] || o.kind != route.KindPrefix || len(o.pat) >= len(inner.pat) || !strings.HasPrefix(inner.pat, o.pat) {
				continue
			}
			if outer < 0 || len(o.pat) > len(routes[outer].pat) {
				outer = k
			}
		}
		if outer < 0 {
			continue
		}
		in, out := methodSet(s.Routes[j]), methodSet(s.Routes[outer])
		if slices.Equal(in, out) {
			continue
		}
		l.report(RuleRouteMethods, p("sites", i, "routes", j, "methods"),
			"prefix %s lies inside prefix %s (routes[%d]) but allows %s where the rest of %s allows %s",
			inner.pat, routes[outer].pat, outer, strings.Join(in, ", "), routes[outer].pat, strings.Join(out, ", "))
	}
}

func methodSet(r config.Route) []string {
	m := slices.Clone(r.Methods)
	slices.Sort(m)
	return slices.Compact(m)
}

// adminPaths reports the routes that let a well-known admin path (or a
// path under it) through with no deny entry refusing it.
func (l *linter) adminPaths(i int, m *route.Matcher) {
	s := &l.cfg.Sites[i]
	exposed := map[int][]string{}
	var order []int
	for _, a := range AdminPaths {
		child := a + "/x"
		if strings.HasSuffix(a, "/") {
			child = a + "x"
		}
		for _, probe := range []string{a, child} {
			rt, d := m.Match(probe)
			if d >= 0 || rt < 0 || isConfigRegexAll(s.Routes[rt]) {
				continue
			}
			if _, seen := exposed[rt]; !seen {
				order = append(order, rt)
			}
			exposed[rt] = append(exposed[rt], a)
			break
		}
	}
	for _, rt := range order {
		pt := patternOf(s.Routes[rt].Exact, s.Routes[rt].Prefix, s.Routes[rt].Regex)
		l.add(RuleRouteAdmin, Warning, p("sites", i, "routes", rt, pt.key),
			fmt.Sprintf("add a deny entry, e.g. deny: [{prefix: %s}], or remove the route if it exists only for it", exposed[rt][0]),
			fmt.Sprintf("%s lets %s through to the upstream: no deny entry refuses %s", pt, strings.Join(exposed[rt], ", "), plural(len(exposed[rt]), "it", "them")))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
