package route

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Kind is how a rule's pattern is compared with a canonical path.
type Kind uint8

// The zero Kind is deliberately invalid, so that a rule whose kind was never
// set is an error rather than an exact match.
const (
	KindExact  Kind = iota + 1 // the whole path equals Pattern
	KindPrefix                 // the path starts with Pattern (plain string prefix)
	KindRegex                  // Pattern, a Go regexp, matches the path (MatchString, unanchored unless written so)
)

// String returns the config key for k: "exact", "prefix" or "regex".
func (k Kind) String() string {
	switch k {
	case KindExact:
		return "exact"
	case KindPrefix:
		return "prefix"
	case KindRegex:
		return "regex"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind maps a config key ("exact", "prefix", "regex") to its Kind.
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "exact":
		return KindExact, true
	case "prefix":
		return KindPrefix, true
	case "regex":
		return KindRegex, true
	}
	return 0, false
}

// Rule is one route or deny entry.
type Rule struct {
	Kind    Kind
	Pattern string // "/x" for exact and prefix, a Go regexp for regex
	Index   int    // the caller's index into its own list, returned by Match
}

// String returns the rule as it is logged, e.g. "prefix:/api/".
func (r Rule) String() string { return r.Kind.String() + ":" + r.Pattern }

// Matcher finds the route and the deny entry for a canonical path. It is
// immutable once built and safe for concurrent use.
type Matcher struct {
	routes, denies set
	routeDesc      map[int]string
	denyDesc       map[int]string
}

// set holds one list of rules in the shape Match searches them.
type set struct {
	exact    map[string]int
	prefixes []prefixRule // longest first, so the first hit is the longest
	regexes  []regexRule  // in list order
}

type prefixRule struct {
	pattern string
	index   int
}

type regexRule struct {
	re    *regexp.Regexp
	index int
}

// NewMatcher builds a Matcher from the routes and deny entries. It refuses a
// rule with an unknown kind, an empty pattern, a negative Index, a regexp
// that does not compile, an exact or prefix pattern that does not start with
// '/' or is not in the canonical form Normalize produces (such a rule could
// never match, which for a deny entry would be a silent hole), and a rule
// that repeats the pattern or the Index of another in the same list.
func NewMatcher(routes []Rule, denies []Rule) (*Matcher, error) {
	m := &Matcher{routeDesc: map[int]string{}, denyDesc: map[int]string{}}
	if err := m.routes.build("route", routes, m.routeDesc); err != nil {
		return nil, err
	}
	if err := m.denies.build("deny", denies, m.denyDesc); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *set) build(what string, rules []Rule, desc map[int]string) error {
	s.exact = make(map[string]int)
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		if r.Pattern == "" {
			return fmt.Errorf("route: %s %d: empty %s pattern", what, r.Index, r.Kind)
		}
		if r.Index < 0 {
			return fmt.Errorf("route: %s %s: negative index %d", what, r, r.Index)
		}
		if seen[r.String()] {
			return fmt.Errorf("route: %s %s is listed twice", what, r)
		}
		seen[r.String()] = true
		if prev, dup := desc[r.Index]; dup {
			return fmt.Errorf("route: %s %s has the same index %d as %s", what, r, r.Index, prev)
		}
		desc[r.Index] = r.String()

		switch r.Kind {
		case KindExact, KindPrefix:
			if err := checkLiteralPattern(r); err != nil {
				return fmt.Errorf("route: %s %s: %w", what, r, err)
			}
			if r.Kind == KindExact {
				s.exact[r.Pattern] = r.Index
			} else {
				s.prefixes = append(s.prefixes, prefixRule{r.Pattern, r.Index})
			}
		case KindRegex:
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return fmt.Errorf("route: %s %s: %w", what, r, err)
			}
			s.regexes = append(s.regexes, regexRule{re, r.Index})
		default:
			return fmt.Errorf("route: %s %d: unknown kind %s", what, r.Index, r.Kind)
		}
	}
	// Distinct prefixes of equal length cannot both match one path, so the
	// order among them does not matter; stable keeps it predictable anyway.
	sort.SliceStable(s.prefixes, func(i, j int) bool {
		return len(s.prefixes[i].pattern) > len(s.prefixes[j].pattern)
	})
	return nil
}

// checkLiteralPattern insists that an exact or prefix pattern is spelled the
// way Normalize spells paths. Match compares canonical paths byte for byte,
// so "/a//b" or "/%7euser" or "/caf%c3%a9" would never match anything.
func checkLiteralPattern(r Rule) error {
	if r.Pattern[0] != '/' {
		return fmt.Errorf("pattern must start with '/'")
	}
	res, err := Normalize(r.Pattern)
	if err != nil {
		return fmt.Errorf("pattern would be refused as a request path (%s)", err.(*Error).Reason)
	}
	if res.JSessionID != "" {
		return fmt.Errorf("pattern must not contain a path parameter")
	}
	if res.Path != r.Pattern {
		return fmt.Errorf("pattern is not in canonical form; write %q", res.Path)
	}
	return nil
}

// Match returns the Index of the route and of the deny entry that apply to
// path, which must be canonical (from Normalize); -1 means none. Within each
// list an exact rule wins, then the longest prefix, then the first regexp in
// list order. A matching deny entry wins over every route, so when deny is
// not -1 route is always -1: a denied request has no route to be sent to.
func (m *Matcher) Match(path string) (route int, deny int) {
	if d := m.denies.match(path); d >= 0 {
		return -1, d
	}
	return m.routes.match(path), -1
}

func (s *set) match(path string) int {
	if i, ok := s.exact[path]; ok {
		return i
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(path, p.pattern) {
			return p.index
		}
	}
	for _, r := range s.regexes {
		if r.re.MatchString(path) {
			return r.index
		}
	}
	return -1
}

// Describe returns the route with Index i as it is logged, e.g.
// "prefix:/api/", or "" if there is none.
func (m *Matcher) Describe(i int) string { return m.routeDesc[i] }

// DescribeDeny returns the deny entry with Index i as it is logged, e.g.
// "exact:/admin", or "" if there is none.
func (m *Matcher) DescribeDeny(i int) string { return m.denyDesc[i] }

// probeLong is a long path with nothing special in it: a regexp that matches
// it, "/" and an admin path accepts almost any request.
const probeLong = "/q7Zx/k3_f9-w/e~4v.Lp/9xQ!r$t&u'(v)w*x+y,z=a:b@c/" +
	"%C3%A9t%C3%A9/m0n1o2p3q4r5s6t7u8v9w0x1y2z3/ZZ/yy/xx/0123456789/tail.json"

// MatchesEverything reports whether the regexp re matches "/", a long
// arbitrary path and "/admin/x". Such a route (".*", "^/", "") allows far
// more than it appears to; the config checker warns about it. A regexp that
// does not compile reports false (NewMatcher reports the error).
func MatchesEverything(re string) bool {
	r, err := regexp.Compile(re)
	if err != nil {
		return false
	}
	return r.MatchString("/") && r.MatchString(probeLong) && r.MatchString("/admin/x")
}
