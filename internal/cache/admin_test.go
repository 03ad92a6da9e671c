package cache

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
