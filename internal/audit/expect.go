package audit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// ReadPathList reads one path per line; blank lines and lines starting
// with # are skipped, and text after " #" is a comment.
func ReadPathList(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := checkPath(strings.TrimSuffix(line, "*")); err != nil {
			return nil, fmt.Errorf("line %d: %q: %v", n, line, err)
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// allowList is the set of paths the operator says the site serves.
type allowList struct {
	exact    map[string]bool
	prefixes []string
}

func newAllowList(entries []string) *allowList {
	al := &allowList{exact: map[string]bool{}}
	for _, e := range entries {
		if p, ok := strings.CutSuffix(e, "*"); ok {
			al.prefixes = append(al.prefixes, p)
		} else {
			al.exact[e] = true
		}
	}
	return al
}

// allows reports whether p, with dot segments resolved, is on the list.
func (al *allowList) allows(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	if al.exact[c] || al.exact[p] {
		return true
	}
	for _, pre := range al.prefixes {
		if strings.HasPrefix(c, pre) {
			return true
		}
	}
	return false
}

// neighbours are paths next to an allowed one that must be refused: the
// parent directory, a sibling with "x" appended, and a traversal from it
// to /admin.
func neighbours(e string) []string {
	base := strings.TrimSuffix(e, "/")
	var out []string
	if base != "" {
		parent := path.Dir(base)
		if parent != "/" {
			parent += "/"
		}
		out = append(out, parent)
	}
	sib := base + "x"
	if base == "" {
		sib = "/x"
	}
	if strings.HasSuffix(e, "/") && base != "" {
		sib += "/"
	}
	out = append(out, sib)
	depth := strings.Count(base, "/")
	out = append(out, base+strings.Repeat("/..", depth)+"/admin")
	if base == "" {
		out[len(out)-1] = "/../admin"
	}
	return out
}

// runExpect checks the expected paths; it returns their responses for the
// cookie check.
func (a *auditor) runExpect(ctx context.Context) []*response {
	if len(a.t.expect) == 0 {
		a.add(CatPaths, "paths.expect", Skip, "no --expect-paths file: allowed paths and their neighbours not checked")
		return nil
	}
	al := newAllowList(a.t.expect)
	var got []*response
	for _, e := range a.t.expect {
		pfx, isPrefix := strings.CutSuffix(e, "*")
		if !isPrefix {
			id := "paths.reachable:" + e
			r := a.do(ctx, "GET", a.req("GET", e))
			got = append(got, r)
			switch {
			case r.Skipped:
				a.skipBudget(CatPaths, id)
			case r.is2xx() || r.is3xx() || r.Status == 401:
				a.add(CatPaths, id, Pass, "GET %s → %s", e, r.long())
			case r.Status >= 500:
				a.add(CatPaths, id, Warn, "GET %s → %s: reached the proxy, which could not serve it", e, r)
			default:
				a.add(CatPaths, id, Fail, "GET %s → %s: an expected path is refused", e, r)
			}
		}
		id := "paths.neighbours:" + e
		var bad, warn, ok []string
		skipped := false
		for _, nb := range neighbours(pfx) {
			if al.allows(nb) {
				continue
			}
			r := a.do(ctx, "GET", a.req("GET", nb))
			line := nb + " → " + r.String()
			switch {
			case r.Skipped:
				skipped = true
			case r.is2xx() || r.is3xx():
				bad = append(bad, line)
			case r.Status >= 500:
				warn = append(warn, line)
			default:
				ok = append(ok, line)
			}
		}
		all := strings.Join(slices.Concat(bad, warn, ok), "; ")
		switch {
		case len(bad) > 0:
			a.add(CatPaths, id, Fail, "outside the allowed paths but served: %s", all)
		case len(warn) > 0:
			a.add(CatPaths, id, Warn, "outside the allowed paths, reached the proxy's upstream side: %s", all)
		case skipped:
			a.skipBudget(CatPaths, id)
		case all == "":
			a.add(CatPaths, id, Pass, "every neighbour is itself allowed")
		default:
			a.add(CatPaths, id, Pass, "refused: %s", all)
		}
	}
	return got
}
