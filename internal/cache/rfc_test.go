package cache

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestParseCacheControl(t *testing.T) {
	d := parseCacheControl([]string{`public, max-age=600`, `s-maxage="120", private="Set-Cookie, X-User", must-revalidate`})
	if !d.public || !d.private || !d.mustRevalidate || d.maxAge != 600*time.Second || d.sMaxAge != 120*time.Second {
		t.Errorf("got %+v", d)
	}
	d = parseCacheControl([]string{"No-Store, max-age=abc"})
	if !d.noStore || d.maxAge != 0 || d.sMaxAge != -1 {
		t.Errorf("got %+v", d)
	}
}

func TestFreshness(t *testing.T) {
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	const route = 5 * time.Minute
	for _, tc := range []struct {
		cc, expires string
		want        time.Duration
		explicit    bool
	}{
		{"", "", route, false},
		{"max-age=60", "", time.Minute, true},
		{"max-age=600, s-maxage=30", "", 30 * time.Second, true},
		{"max-age=86400", "", route, true},
		{"", now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute, true},
		{"", "0", 0, true},
		{"max-age=600, no-cache", "", 0, true},
	} {
		h := http.Header{"Date": {date}}
		if tc.expires != "" {
			h.Set("Expires", tc.expires)
		}
		got, explicit := freshness(parseCacheControl([]string{tc.cc}), h, now, route)
		if got != tc.want || explicit != tc.explicit {
			t.Errorf("cc=%q expires=%q: %v %v, want %v %v", tc.cc, tc.expires, got, explicit, tc.want, tc.explicit)
		}
	}
}

func TestParseVary(t *testing.T) {
	names, star := parseVary([]string{"accept-encoding, Accept-Language", "Accept-Encoding"})
	if star || !slices.Equal(names, []string{"Accept-Encoding", "Accept-Language"}) {
		t.Errorf("got %q %v", names, star)
	}
	if _, star := parseVary([]string{"Accept-Encoding, *"}); !star {
		t.Error("Vary: * not seen")
	}
}

func TestAcceptEncodingKey(t *testing.T) {
	same := [][]string{
		{"gzip, deflate, br"},
		{"br;q=1.0, GZIP", "deflate;q=0.5"},
		{"x-gzip, deflate, br, unknown-coding"},
	}
	for _, v := range same[1:] {
		if a, b := acceptEncodingKey(same[0]), acceptEncodingKey(v); a != b {
			t.Errorf("%q → %q, want %q", v, b, a)
		}
	}
	if a, b := acceptEncodingKey(nil), acceptEncodingKey([]string{"gzip;q=0, br; q=0.000"}); a != b {
		t.Errorf("refused codings counted: %q vs %q", a, b)
	}
	if a, b := acceptEncodingKey([]string{"gzip"}), acceptEncodingKey([]string{"gzip;q=0.1"}); a != b {
		t.Errorf("q=0.1 refused the coding: %q vs %q", a, b)
	}
}

func TestEtagMatch(t *testing.T) {
	for _, tc := range []struct {
		inm  string
		etag string
		want bool
	}{
		{`"a"`, `"a"`, true},
		{`W/"a"`, `"a"`, true},
		{`"a"`, `W/"a"`, true},
		{`"b", "a"`, `"a"`, true},
		{`*`, `"a"`, true},
		{`"b"`, `"a"`, false},
		{`"a"`, ``, false},
	} {
		if got := etagMatch([]string{tc.inm}, tc.etag); got != tc.want {
			t.Errorf("If-None-Match %s vs %s: %v", tc.inm, tc.etag, got)
		}
	}
}

func TestNormalizeQuery(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"v=1":            "v=1",
		"b=2&a=1":        "a=1&b=2",
		"a=2&b=1&a=1":    "a=2&a=1&b=1",
		"path=%2Fx":      "path=%2Fx",
		"flag":           "flag=",
		"bad=%zz&a=1":    "bad=%zz&a=1",
		"v=11.6.1-SNAPS": "v=11.6.1-SNAPS",
	} {
		if got := normalizeQuery(in); got != want {
			t.Errorf("normalizeQuery(%q) = %q, want %q", in, got, want)
		}
	}
}
