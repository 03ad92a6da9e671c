package route

import (
	"fmt"
	"strings"
	"testing"
)

func ex(p string, i int) Rule { return Rule{Kind: KindExact, Pattern: p, Index: i} }
func px(p string, i int) Rule { return Rule{Kind: KindPrefix, Pattern: p, Index: i} }
func rx(p string, i int) Rule { return Rule{Kind: KindRegex, Pattern: p, Index: i} }

func mustMatcher(t testing.TB, routes, denies []Rule) *Matcher {
	t.Helper()
	m, err := NewMatcher(routes, denies)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMatch_Precedence(t *testing.T) {
	routes := []Rule{
		px("/api/", 1),
		px("/api/v1/", 2),
		ex("/api/v1/health", 3),
		rx(`^/files/.*\.pdf$`, 4),
		rx(`^/files/`, 5),
		ex("/files/index", 6),
		px("/apix", 7),
	}
	denies := []Rule{
		ex("/api/v1/admin", 100),
		px("/api/v1/internal/", 101),
		px("/api/v1/internal/debug/", 102),
		rx(`\.git(/|$)`, 103),
		rx(`/\.`, 104),
		ex("/api/v1/health", 105),
	}
	m := mustMatcher(t, routes, denies)

	for _, tc := range []struct {
		name        string
		path        string
		route, deny int
	}{
		{"exact route wins over longer-matching prefixes", "/api/v1/healthz", 2, -1},
		{"exact route wins over every prefix", "/files/index", 6, -1},
		{"longest prefix wins", "/api/v1/users", 2, -1},
		{"shorter prefix when the longer does not match", "/api/v2/users", 1, -1},
		{"nothing matches", "/other", -1, -1},
		{"prefix is a plain string prefix", "/apixyz", 7, -1},
		{"prefix beats regex", "/api/files/a.pdf", 1, -1},
		{"first regex in list order wins", "/files/a.pdf", 4, -1},
		{"later regex when the first does not match", "/files/a.txt", 5, -1},
		{"exact deny beats exact route", "/api/v1/health", -1, 105},
		{"exact deny beats prefix route", "/api/v1/admin", -1, 100},
		{"longest deny prefix is reported", "/api/v1/internal/debug/pprof", -1, 102},
		{"deny prefix beats longer route prefix", "/api/v1/internal/x", -1, 101},
		{"deny regex beats route", "/app/.git/config", -1, 103},
		{"first deny regex in order", "/app/.git", -1, 103},
		{"later deny regex", "/app/.env", -1, 104},
		{"exact deny does not cover a longer path", "/api/v1/admin/x", 2, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, d := m.Match(tc.path)
			if r != tc.route || d != tc.deny {
				t.Fatalf("Match(%q) = (%d, %d), want (%d, %d)", tc.path, r, d, tc.route, tc.deny)
			}
		})
	}
}

func TestMatch_RegexRoutesInListOrder(t *testing.T) {
	m := mustMatcher(t, []Rule{
		rx(`^/files/`, 0),
		rx(`^/files/.*\.pdf$`, 1),
		rx(`report`, 2), // unanchored: matched anywhere, as written
	}, nil)
	for path, want := range map[string]int{
		"/files/a.pdf":    0,
		"/files/a.txt":    0,
		"/x/report/1":     2,
		"/x/annualreport": 2,
		"/nothing":        -1,
	} {
		if r, d := m.Match(path); r != want || d != -1 {
			t.Errorf("Match(%q) = (%d, %d), want (%d, -1)", path, r, d, want)
		}
	}
}

func TestMatch_NothingMatchesReturnsMinusOne(t *testing.T) {
	m := mustMatcher(t, []Rule{ex("/a", 0), px("/b/", 1), rx(`^/c$`, 2)}, []Rule{ex("/d", 0)})
	for _, p := range []string{"/", "/ab", "/b", "/c/", "/e"} {
		if r, d := m.Match(p); r != -1 || d != -1 {
			t.Errorf("Match(%q) = (%d, %d), want (-1, -1)", p, r, d)
		}
	}
	empty := mustMatcher(t, nil, nil)
	if r, d := empty.Match("/"); r != -1 || d != -1 {
		t.Errorf("empty matcher: (%d, %d)", r, d)
	}
}

func TestMatch_DenyHidesTheRouteItBeats(t *testing.T) {
	m := mustMatcher(t, []Rule{ex("/admin", 0)}, []Rule{px("/admin", 9)})
	if r, d := m.Match("/admin"); r != -1 || d != 9 {
		t.Fatalf("Match = (%d, %d), want (-1, 9)", r, d)
	}
}

func TestMatch_DenyPrecedenceMirrorsRoutes(t *testing.T) {
	m := mustMatcher(t, []Rule{px("/", 0)}, []Rule{
		rx(`^/x`, 0), px("/x/", 1), px("/x/y/", 2), ex("/x/y/z", 3), rx(`z`, 4),
	})
	for path, want := range map[string]int{"/x/y/z": 3, "/x/y/q": 2, "/x/q": 1, "/xq": 0, "/qz": 4} {
		if _, d := m.Match(path); d != want {
			t.Errorf("Match(%q) deny = %d, want %d", path, d, want)
		}
	}
}

func TestNewMatcher_RejectsBadRules(t *testing.T) {
	for _, tc := range []struct {
		name          string
		routes, denys []Rule
	}{
		{"empty exact pattern", []Rule{ex("", 0)}, nil},
		{"empty regex pattern", []Rule{rx("", 0)}, nil},
		{"exact without leading slash", []Rule{ex("api", 0)}, nil},
		{"prefix without leading slash", []Rule{px("api/", 0)}, nil},
		{"deny prefix without leading slash", nil, []Rule{px("admin", 0)}},
		{"invalid regex", []Rule{rx(`^/(a`, 0)}, nil},
		{"invalid deny regex", nil, []Rule{rx(`[`, 0)}},
		{"duplicate exact", []Rule{ex("/a", 0), ex("/a", 1)}, nil},
		{"duplicate prefix", nil, []Rule{px("/a/", 0), px("/a/", 1)}},
		{"duplicate regex", []Rule{rx(`^/a`, 0), rx(`^/a`, 1)}, nil},
		{"duplicate index", []Rule{ex("/a", 0), ex("/b", 0)}, nil},
		{"negative index", []Rule{ex("/a", -1)}, nil},
		{"zero kind", []Rule{{Pattern: "/a"}}, nil},
		{"unknown kind", []Rule{{Kind: 9, Pattern: "/a"}}, nil},
		{"pattern with double slash never matches", []Rule{ex("/a//b", 0)}, nil},
		{"pattern with lowercase escape never matches", nil, []Rule{px("/caf%c3%a9", 0)}},
		{"pattern with needless escape never matches", nil, []Rule{ex("/%7euser", 0)}},
		{"pattern with dot segment", []Rule{px("/a/../", 0)}, nil},
		{"pattern with jsessionid", []Rule{ex("/a;jsessionid=1", 0)}, nil},
		{"pattern with path parameter", nil, []Rule{ex("/admin;x", 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewMatcher(tc.routes, tc.denys); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestNewMatcher_SamePatternMayBeRouteAndDeny(t *testing.T) {
	m := mustMatcher(t, []Rule{ex("/a", 0), px("/a", 1)}, []Rule{ex("/a", 0)})
	if r, d := m.Match("/a"); r != -1 || d != 0 {
		t.Fatalf("(%d, %d)", r, d)
	}
	if r, d := m.Match("/ab"); r != 1 || d != -1 {
		t.Fatalf("(%d, %d)", r, d)
	}
}

func TestMatcher_Describe(t *testing.T) {
	m := mustMatcher(t, []Rule{px("/api/", 3), ex("/", 7), rx(`^/x$`, 1)}, []Rule{ex("/admin", 3)})
	for i, want := range map[int]string{3: "prefix:/api/", 7: "exact:/", 1: "regex:^/x$", 2: "", -1: ""} {
		if got := m.Describe(i); got != want {
			t.Errorf("Describe(%d) = %q, want %q", i, got, want)
		}
	}
	if got := m.DescribeDeny(3); got != "exact:/admin" {
		t.Errorf("DescribeDeny(3) = %q", got)
	}
}

func TestParseKind_RoundTripsWithString(t *testing.T) {
	for _, k := range []Kind{KindExact, KindPrefix, KindRegex} {
		if got, ok := ParseKind(k.String()); !ok || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, ok)
		}
	}
	if _, ok := ParseKind("deny"); ok {
		t.Error("ParseKind(deny) accepted")
	}
}

func TestMatchesEverything(t *testing.T) {
	for re, want := range map[string]bool{
		``:               true,
		`.*`:             true,
		`^/`:             true,
		`/`:              true,
		`^/.*$`:          true,
		`.`:              true,
		`(?s).*`:         true,
		`^/api/`:         false,
		`^/$`:            false,
		`^/admin`:        false,
		`\.json$`:        false,
		`^/[a-z]+$`:      false,
		`^/(admin|q7Zx)`: false, // misses "/"
		`[`:              false, // does not compile
	} {
		if got := MatchesEverything(re); got != want {
			t.Errorf("MatchesEverything(%q) = %v, want %v", re, got, want)
		}
	}
}

// mixedRules is a realistic set of 30 routes and a few deny entries.
func mixedRules() (routes, denies []Rule) {
	i := 0
	add := func(r Rule) { r.Index = i; i++; routes = append(routes, r) }
	for _, s := range []string{"users", "orders", "products", "carts", "invoices", "search", "auth", "media", "reports", "events"} {
		add(px("/api/v1/"+s+"/", 0))
		add(ex("/api/v1/"+s, 0))
	}
	for _, p := range []string{"/docs/", "/static/", "/assets/", "/favicon.ico", "/robots.txt", "/healthz"} {
		if strings.HasSuffix(p, "/") {
			add(px(p, 0))
		} else {
			add(ex(p, 0))
		}
	}
	add(rx(`^/files/[0-9a-f]{32}\.pdf$`, 0))
	add(rx(`^/u/[a-z0-9_-]+/avatar\.png$`, 0))
	add(rx(`^/v[23]/`, 0))
	add(rx(`\.map$`, 0))
	denies = []Rule{
		ex("/api/v1/users/admin", 0), px("/api/v1/internal/", 1), px("/static/private/", 2), rx(`/\.(git|env|svn)(/|$)`, 3),
	}
	return routes, denies
}

func TestMatch_DoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool, and so regexp, allocates under the race detector")
	}
	routes, denies := mixedRules()
	m := mustMatcher(t, routes, denies)
	for _, p := range []string{
		"/api/v1/orders",                              // exact
		"/api/v1/orders/123/items",                    // prefix
		"/files/0123456789abcdef0123456789abcdef.pdf", // regex
		"/api/v1/internal/x",                          // deny prefix
		"/static/.git/config",                         // deny regex
		"/api/v1/users/admin",                         // deny exact
	} {
		allocs := testing.AllocsPerRun(200, func() { m.Match(p) })
		if allocs != 0 {
			t.Errorf("Match(%q): %v allocs, want 0", p, allocs)
		}
	}
	regexOnly := mustMatcher(t, []Rule{rx(`^/x/`, 0), rx(`^/files/[0-9a-f]+\.pdf$`, 1)}, []Rule{rx(`/\.`, 0)})
	for _, p := range []string{"/files/abc.pdf", "/nothing/here", "/a/.b"} {
		allocs := testing.AllocsPerRun(200, func() { regexOnly.Match(p) })
		if allocs != 0 {
			t.Errorf("regex Match(%q): %v allocs, want 0", p, allocs)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	routes, denies := mixedRules()
	if len(routes) != 30 {
		b.Fatalf("%d routes", len(routes))
	}
	m := mustMatcher(b, routes, denies)
	paths := []string{
		"/api/v1/orders",
		"/api/v1/orders/123/items",
		"/static/css/site.css",
		"/v2/things",
		"/u/jose/avatar.png",
		"/api/v1/internal/debug",
		"/static/.git/HEAD",
		"/unknown/path",
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Match(paths[i%len(paths)])
		i++
	}
}

func ExampleMatcher_Match() {
	m, err := NewMatcher(
		[]Rule{
			{Kind: KindPrefix, Pattern: "/api/", Index: 0},
			{Kind: KindExact, Pattern: "/api/status", Index: 1},
		},
		[]Rule{{Kind: KindPrefix, Pattern: "/api/admin/", Index: 0}},
	)
	if err != nil {
		panic(err)
	}
	for _, raw := range []string{"/api//status", "/api/users/1", "/api/admin/users", "/api/%2e%2e/admin"} {
		res, err := Normalize(raw)
		if err != nil {
			fmt.Println(raw, "→ 400", err.(*Error).Reason)
			continue
		}
		route, deny := m.Match(res.Path)
		if deny >= 0 {
			fmt.Println(raw, "→ 403 denied by", m.DescribeDeny(deny))
			continue
		}
		fmt.Println(raw, "→", res.Path, "route", route, m.Describe(route))
	}
	// Output:
	// /api//status → /api/status route 1 exact:/api/status
	// /api/users/1 → /api/users/1 route 0 prefix:/api/
	// /api/admin/users → 403 denied by prefix:/api/admin/
	// /api/%2e%2e/admin → 400 dot-segment
}
