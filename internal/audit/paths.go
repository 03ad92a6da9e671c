package audit

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
)

// variant is one spelling of a forbidden path.
type variant struct {
	name string // the trick, e.g. "..;/"
	path string // the request-target
}

// pathVariants spells p (a forbidden path) in ways that front ends and
// back ends are known to read differently. dir is a directory the
// traversal variants start from ("/x", or an allowed prefix of the site).
func pathVariants(p string, dirs []string) []variant {
	rel := strings.TrimPrefix(p, "/")
	first, rest, hasSlash := strings.Cut(rel, "/")
	join := func(seg string) string { // first segment replaced, rest kept
		if hasSlash {
			return "/" + seg + "/" + rest
		}
		return "/" + seg
	}
	var vs []variant
	add := func(name, path string) {
		if path == p {
			return
		}
		for _, v := range vs {
			if v.path == path {
				return
			}
		}
		vs = append(vs, variant{name, path})
	}
	for i, d := range dirs {
		add("..;/", d+"/..;/"+rel)
		add(";jsessionid=x/..", d+";jsessionid=x/../"+rel)
		add("%2e%2e/", d+"/%2e%2e/"+rel)
		if i > 0 {
			continue // the rest once, from the first dir
		}
		add("%2E%2e/", d+"/%2E%2e/"+rel)
		add(".%2e/", d+"/.%2e/"+rel)
		add("%252e%252e/", d+"/%252e%252e/"+rel)
		add("..%2f", d+"/..%2f"+rel)
		add("..%5c", d+"/..%5c"+rel)
		add(`\..\`, d+`\..\`+rel)
		add("%c0%ae%c0%ae/", d+"/%c0%ae%c0%ae/"+rel)
	}
	add("//", "//"+rel)
	add("/./", "/./"+rel)
	if hasSlash {
		add("%2f", "/"+first+"%2f"+rest)
	}
	add(";x", join(first+";x"))
	add("%00", join(first+"%00"))
	if first != "" {
		add("%XX", join(fmt.Sprintf("%%%02X", first[0])+first[1:]))
	}
	if up := strings.ToUpper(first); up != first {
		add("upper case", join(up))
	}
	if lo := strings.ToLower(first); lo != first {
		add("lower case", join(lo))
	}
	if len(first) > 1 {
		mixed := strings.ToUpper(first[:1]) + strings.ToLower(first[1:])
		if mixed == first || mixed == strings.ToUpper(first) || mixed == strings.ToLower(first) {
			mixed = strings.ToLower(first[:1]) + strings.ToUpper(first[1:])
		}
		add("mixed case", join(mixed))
	}
	return vs
}

// traversalDirs are the directories traversal variants start from: a
// neutral one, and an allowed prefix of the site when one is known (a
// front end that routes only allowed prefixes to the back end needs one).
func (a *auditor) traversalDirs() []string {
	for _, e := range a.t.expect {
		e = strings.TrimSuffix(e, "*")
		d := path.Dir(e)
		if strings.HasSuffix(e, "/") {
			d = strings.TrimSuffix(e, "/")
		}
		if d != "" && d != "/" && d != "." && d != "/x" {
			return []string{"/x", d}
		}
	}
	return []string{"/x"}
}

type pathJob struct {
	forbidden string
	v         variant
	r         *response
}

func (a *auditor) runPaths(ctx context.Context) {
	dirs := a.traversalDirs()
	type base struct{ direct, missing *response }
	bases := map[string]*base{}
	var jobs []*pathJob
	for _, p := range a.t.forbid {
		bases[p] = &base{}
		for _, v := range pathVariants(p, dirs) {
			jobs = append(jobs, &pathJob{forbidden: p, v: v})
		}
	}

	// Learn how each forbidden path is refused, and how a path that exists
	// nowhere (same shape, first segment changed) is answered.
	var wg sync.WaitGroup
	work := make(chan func())
	for range a.t.conc {
		wg.Go(func() {
			for f := range work {
				f()
			}
		})
	}
	for _, p := range a.t.forbid {
		b := bases[p]
		rel := strings.TrimPrefix(p, "/")
		first, rest, hasSlash := strings.Cut(rel, "/")
		missing := "/" + first + "-" + randToken()
		if hasSlash {
			missing += "/" + rest
		}
		work <- func() { b.direct = a.do(ctx, "GET", a.req("GET", p)) }
		work <- func() { b.missing = a.do(ctx, "GET", a.req("GET", missing)) }
	}
	for _, j := range jobs {
		work <- func() { j.r = a.do(ctx, "GET", a.req("GET", j.v.path)) }
	}
	close(work)
	wg.Wait()

	for _, p := range a.t.forbid {
		b := bases[p]
		direct, missing := b.direct, b.missing
		// Direct access.
		directID := "paths.direct:" + p
		switch {
		case direct.Skipped:
			a.skipBudget(CatPaths, directID)
		case direct.is2xx() && !similar(direct, missing) && !similar(direct, a.root):
			a.add(CatPaths, directID, Fail, "GET %s → %s: forbidden path served (a path that exists nowhere → %s)", p, direct.long(), missing)
		case direct.is2xx():
			a.add(CatPaths, directID, Pass, "GET %s → %s, the same page as for any path (→ %s): nothing behind it", p, direct.long(), missing)
		default:
			a.add(CatPaths, directID, Pass, "GET %s → %s (a path that exists nowhere → %s)", p, direct, missing)
		}

		// Variants.
		bypassID := "paths.bypass:" + p
		var served, redirected []string
		counts := map[string]int{}
		skipped := 0
		for _, j := range jobs {
			if j.forbidden != p {
				continue
			}
			r := j.r
			switch {
			case r.Skipped:
				skipped++
				continue
			case r.is2xx():
				// Served. Not a bypass if it is the page every unknown
				// path gets, or the home page a traversal landed on.
				if similar(r, missing) || (similar(r, a.root) && !similar(r, direct)) {
					counts[r.String()]++
					continue
				}
				served = append(served, fmt.Sprintf("%s %s → %s", j.v.name, j.v.path, r.long()))
				continue
			case r.is3xx() && !direct.is3xx() && !missing.is3xx():
				redirected = append(redirected, fmt.Sprintf("%s %s → %s", j.v.name, j.v.path, r))
				continue
			}
			counts[r.String()]++
		}
		ref := fmt.Sprintf("%s itself → %s; nonexistent → %s", p, direct, missing)
		tally := tallyString(counts)
		switch {
		case len(served) > 0:
			a.add(CatPaths, bypassID, Fail, "BYPASS: %s (%s; other variants: %s)", strings.Join(served, "; "), ref, tally)
		case len(redirected) > 0:
			a.add(CatPaths, bypassID, Warn, "redirected: %s (%s; other variants: %s)", strings.Join(redirected, "; "), ref, tally)
		case skipped > 0 && len(counts) == 0:
			a.skipBudget(CatPaths, bypassID)
		default:
			extra := ""
			if skipped > 0 {
				extra = fmt.Sprintf("; %d variants not sent (budget)", skipped)
			}
			a.add(CatPaths, bypassID, Pass, "%d variants refused: %s (%s)%s", sum(counts), tally, ref, extra)
		}
	}
}

// tallyString renders {"400": 12, "404": 3} as "400×12 404×3".
func tallyString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s×%d", k, m[k])
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
