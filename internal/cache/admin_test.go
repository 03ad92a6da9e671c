package cache

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func adminCall(t *testing.T, srv *httptest.Server, method, path string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func TestAdmin_StatsAndPurge(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	for _, p := range []string{"/desktop/js/a.js", "/desktop/js/b.js", "/desktop/css/c.css", "/cuic/d.js?b=2&a=1"} {
		env.get(t, p)
	}
	env.get(t, "/desktop/js/a.js")
	other := NewStore("cuic.example.com", mib)
	srv := httptest.NewServer(NewAdmin(map[string]*Store{testSite: env.store, "cuic.example.com": other}))
	defer srv.Close()

	var stats struct{ Sites []Stats }
	if code := adminCall(t, srv, http.MethodGet, "/cache/stats", &stats); code != http.StatusOK {
		t.Fatalf("stats: %d", code)
	}
	if len(stats.Sites) != 2 || stats.Sites[0].Site != "cuic.example.com" || stats.Sites[1].Site != testSite {
		t.Fatalf("stats sites = %+v", stats.Sites)
	}
	if st := stats.Sites[1]; st.Entries != 4 || st.Hits != 1 || st.Misses != 4 || st.Bytes == 0 || st.Budget != 64*mib {
		t.Errorf("site stats = %+v", st)
	}
	if code := adminCall(t, srv, http.MethodGet, "/cache/stats?site="+testSite, &stats); code != http.StatusOK || len(stats.Sites) != 1 {
		t.Errorf("stats?site: %d %+v", code, stats.Sites)
	}

	var purged struct {
		Site   string
		Purged int
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"key=/cuic/d.js?a=1%26b=2", 1},
		{"key=/cuic/d.js", 0},
		{"prefix=/desktop/js/", 2},
		{"", 1}, // the whole site
	} {
		code := adminCall(t, srv, http.MethodPost, "/cache/purge?site="+testSite+"&"+tc.query, &purged)
		if code != http.StatusOK || purged.Purged != tc.want || purged.Site != testSite {
			t.Errorf("purge %s: %d %+v, want %d purged", tc.query, code, purged, tc.want)
		}
	}
	if st := env.store.Stats(); st.Entries != 0 {
		t.Errorf("entries left after purging the site: %d", st.Entries)
	}
}

func TestAdmin_RefusesBadRequests(t *testing.T) {
	srv := httptest.NewServer(NewAdmin(map[string]*Store{testSite: NewStore(testSite, mib)}))
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/cache/purge", http.StatusBadRequest},
		{http.MethodPost, "/cache/purge?site=" + testSite + "&prefix=/a&key=/b", http.StatusBadRequest},
		{http.MethodPost, "/cache/purge?site=" + testSite + "&key=", http.StatusBadRequest},
		{http.MethodPost, "/cache/purge?site=unknown.example.com", http.StatusNotFound},
		{http.MethodGet, "/cache/purge?site=" + testSite, http.StatusMethodNotAllowed},
		{http.MethodPost, "/cache/stats", http.StatusMethodNotAllowed},
		{http.MethodGet, "/cache/stats?site=unknown.example.com", http.StatusNotFound},
		{http.MethodGet, "/cache/other", http.StatusNotFound},
	} {
		var body struct{ Error string }
		if code := adminCall(t, srv, tc.method, tc.path, &body); code != tc.want || body.Error == "" {
			t.Errorf("%s %s: %d %q, want %d with an error", tc.method, tc.path, code, body.Error, tc.want)
		}
	}
}

func TestRegistry_SetSwapsStores(t *testing.T) {
	var g Registry
	if g.Get(testSite) != nil || g.Sites() != nil {
		t.Error("empty registry returned stores")
	}
	a := NewStore(testSite, mib)
	stores := map[string]*Store{testSite: a}
	g.Set(stores)
	delete(stores, testSite) // the registry keeps its own copy
	if g.Get(testSite) != a {
		t.Error("Get after Set")
	}
	g.Set(nil)
	if g.Get(testSite) != nil {
		t.Error("Set(nil) kept the old stores")
	}
}

// TestCLI_StatsAndPurge runs `rampart cache` against the admin API over a
// real socket: the table, each purge form, and the exit statuses.
func TestCLI_StatsAndPurge(t *testing.T) {
	env := newTestEnv(t, RouteConfig{}, 64*mib)
	for _, p := range []string{"/desktop/js/a.js", "/desktop/js/b.js", "/desktop/css/c.css", "/cuic/d.js?b=2&a=1"} {
		env.get(t, p)
	}
	env.get(t, "/desktop/js/a.js")
	srv := httptest.NewServer(NewAdmin(map[string]*Store{testSite: env.store}))
	defer srv.Close()
	cli := func(args ...string) (code int, stdout, stderr string) {
		var o, e bytes.Buffer
		code = RunCLI(args, srv.URL+"/", &o, &e)
		return code, o.String(), e.String()
	}

	code, out, _ := cli("stats")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "SITE") {
		t.Fatalf("stats: exit %d, output:\n%s", code, out)
	}
	// site, 4 entries, memory, no disk tier, 1 hit, 4 misses
	if f := strings.Fields(lines[1]); f[0] != testSite || f[1] != "4" || !strings.Contains(lines[1], " - ") || f[len(f)-5] != "1" || f[len(f)-4] != "4" {
		t.Errorf("stats row %q: want site, 4 entries, no disk, 1 hit, 4 misses", lines[1])
	}

	for _, tc := range []struct {
		args    []string
		purged  string
		entries int
	}{
		{[]string{"purge", testSite, "--key", "/cuic/d.js?a=1&b=2"}, "purged 1 ", 3},
		{[]string{"purge", testSite, "--prefix", "/desktop/js/"}, "purged 2 ", 1},
		{[]string{"purge", testSite}, "purged 1 ", 0},
	} {
		code, out, errOut := cli(tc.args...)
		if code != 0 || !strings.HasPrefix(out, tc.purged) || !strings.Contains(out, testSite) {
			t.Errorf("%v: exit %d, %q %q; want %q…", tc.args, code, out, errOut, tc.purged)
		}
		if n := env.store.Stats().Entries; n != tc.entries {
			t.Errorf("%v: %d entries left, want %d", tc.args, n, tc.entries)
		}
	}

	// Failures: the API's message and exit 1; usage errors exit 2.
	if code, _, errOut := cli("purge", "nosuch.example.com"); code != 1 || !strings.Contains(errOut, "no cache for site nosuch.example.com") {
		t.Errorf("unknown site: exit %d, %q", code, errOut)
	}
	if code, _, errOut := cli("stats", "nosuch.example.com"); code != 1 || !strings.Contains(errOut, "no cache for site") {
		t.Errorf("stats of an unknown site: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{{}, {"purge"}, {"purge", testSite, "--prefix"}, {"purge", testSite, "--path", "/x"}, {"stats", "a", "b"}, {"flush"}} {
		if code, _, errOut := cli(args...); code != 2 || !strings.Contains(errOut, "usage:") {
			t.Errorf("%v: exit %d, %q; want a usage error", args, code, errOut)
		}
	}
	if code := RunCLI([]string{"stats"}, "http://127.0.0.1:1", &bytes.Buffer{}, &bytes.Buffer{}); code != 1 {
		t.Errorf("no admin listener: exit %d, want 1", code)
	}
}

func TestApproxBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 256 << 20: "256.0 MiB", 5 << 30: "5.0 GiB"} {
		if got := approxBytes(n); got != want {
			t.Errorf("approxBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
