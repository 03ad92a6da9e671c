package cache

import (
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds the pieces of RFC 9110/9111 the cache needs: Cache-Control
// parsing, freshness, Vary, validators and the normalised query.

// directives is what the cache reads from a response's Cache-Control.
type directives struct {
	noStore, noCache, private, public bool
	mustRevalidate, proxyRevalidate   bool
	maxAge, sMaxAge                   time.Duration // -1 when absent
}

// parseCacheControl reads the Cache-Control field lines. A directive with an
// invalid delta-seconds counts as 0 (stale), as RFC 9111 §1.2.2 advises;
// private and no-cache with field names are treated as their unqualified
// forms, the conservative reading for a shared cache.
func parseCacheControl(lines []string) directives {
	d := directives{maxAge: -1, sMaxAge: -1}
	for _, line := range lines {
		for line != "" {
			var item string
			item, line = nextListItem(line)
			name, value, _ := strings.Cut(item, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			value = strings.Trim(strings.TrimSpace(value), `"`)
			switch name {
			case "no-store":
				d.noStore = true
			case "no-cache":
				d.noCache = true
			case "private":
				d.private = true
			case "public":
				d.public = true
			case "must-revalidate":
				d.mustRevalidate = true
			case "proxy-revalidate":
				d.proxyRevalidate = true
			case "max-age":
				if d.maxAge < 0 {
					d.maxAge = deltaSeconds(value)
				}
			case "s-maxage":
				if d.sMaxAge < 0 {
					d.sMaxAge = deltaSeconds(value)
				}
			}
		}
	}
	return d
}

// nextListItem splits off the first element of a comma-separated list,
// keeping commas inside quoted strings (private="Set-Cookie, X-Foo").
func nextListItem(s string) (item, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

func deltaSeconds(v string) time.Duration {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	const maxDelta = 1<<31 - 1 // RFC 9111 §1.2.2
	return time.Duration(min(n, maxDelta)) * time.Second
}

// freshness returns the lifetime of a response: the upstream's own
// (s-maxage, then max-age, then Expires minus Date) capped at
// revalidateAfter, or revalidateAfter when the upstream gave none. explicit
// reports whether the upstream gave one.
func freshness(d directives, h http.Header, responseTime time.Time, revalidateAfter time.Duration) (lifetime time.Duration, explicit bool) {
	switch {
	case d.sMaxAge >= 0:
		lifetime, explicit = d.sMaxAge, true
	case d.maxAge >= 0:
		lifetime, explicit = d.maxAge, true
	case len(h["Expires"]) > 0:
		explicit = true
		exp, err := http.ParseTime(h.Get("Expires"))
		if err != nil {
			break // an invalid Expires means already expired
		}
		date, err := http.ParseTime(h.Get("Date"))
		if err != nil {
			date = responseTime
		}
		lifetime = max(exp.Sub(date), 0)
	default:
		lifetime = revalidateAfter
	}
	if d.noCache {
		lifetime = 0
	}
	return min(lifetime, revalidateAfter), explicit
}

// ageHeader reads the Age the upstream reported, 0 when absent or invalid.
func ageHeader(h http.Header) time.Duration {
	v := h.Get("Age")
	if v == "" {
		return 0
	}
	return deltaSeconds(strings.TrimSpace(v))
}

// cacheableByDefault are the statuses a shared cache may store without
// explicit freshness (RFC 9110 §15.1, narrowed to what a static-resource
// cache wants). Others are stored only with explicit freshness and when
// below 500.
var cacheableByDefault = map[int]bool{
	200: true, 203: true, 204: true, 300: true, 301: true, 308: true, 404: true, 410: true,
}

// parseVary returns the canonical, sorted, de-duplicated field names of the
// Vary header, and whether it is "*".
func parseVary(lines []string) (names []string, star bool) {
	for _, line := range lines {
		for f := range strings.SplitSeq(line, ",") {
			f = strings.TrimSpace(f)
			switch f {
			case "":
			case "*":
				star = true
			default:
				names = append(names, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), star
}

// variantKey identifies the variant of a response selected by the request
// header fields named in vary. Accept-Encoding is reduced to the set of
// known codings the client accepts, so that browsers sending the same
// codings in another order or with other q-values share one variant and
// the number of variants stays small whatever clients send.
func variantKey(vary []string, h http.Header) string {
	switch {
	case len(vary) == 0:
		return ""
	case len(vary) == 1 && vary[0] == "Accept-Encoding":
		return acceptEncodingKey(h["Accept-Encoding"])
	}
	var b strings.Builder
	for _, name := range vary {
		b.WriteString(name)
		b.WriteByte('=')
		if name == "Accept-Encoding" {
			b.WriteString(acceptEncodingKey(h[name]))
		} else {
			for i, v := range h[name] {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strings.TrimSpace(v))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

var aeCodings = [...]string{"br", "compress", "deflate", "gzip", "identity", "zstd", "*"}

// aeKeys holds one prebuilt key per set of codings, so that computing the
// variant of a hit allocates nothing.
var aeKeys = func() (keys [1 << len(aeCodings)]string) {
	for mask := range keys {
		var parts []string
		for i, c := range aeCodings {
			if mask&(1<<i) != 0 {
				parts = append(parts, c)
			}
		}
		keys[mask] = "ae:" + strings.Join(parts, ",")
	}
	return keys
}()

func acceptEncodingKey(lines []string) string {
	mask := 0
	for _, line := range lines {
		for line != "" {
			var item string
			item, line, _ = strings.Cut(line, ",")
			name, params, _ := strings.Cut(item, ";")
			if qZero(params) {
				continue
			}
			name = strings.TrimSpace(name)
			switch {
			case strings.EqualFold(name, "x-gzip"):
				name = "gzip"
			case strings.EqualFold(name, "x-compress"):
				name = "compress"
			}
			for i, c := range aeCodings {
				if strings.EqualFold(name, c) {
					mask |= 1 << i
					break
				}
			}
		}
	}
	return aeKeys[mask]
}

// qZero reports whether the parameters of a list element carry q=0.
func qZero(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" || v[0] != '0' {
			return false
		}
		return strings.Trim(v[1:], ".0") == ""
	}
	return false
}

// etagMatch reports whether the If-None-Match list matches etag by weak
// comparison (RFC 9110 §13.1.2).
func etagMatch(ifNoneMatch []string, etag string) bool {
	if etag == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, line := range ifNoneMatch {
		for line != "" {
			var tag string
			tag, line = nextListItem(line)
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
				return true
			}
		}
	}
	return false
}

// normalizeQuery sorts the query parameters by name (keeping the order of
// repeated values) so that ?b=2&a=1 and ?a=1&b=2 share one entry. A query
// that does not parse is kept as it is.
func normalizeQuery(raw string) string {
	if raw == "" || simpleQuery(raw) {
		return raw
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return raw
	}
	return v.Encode()
}

// simpleQuery reports whether raw is a single name=value pair of unreserved
// characters (the usual ?v=123 cache buster), which is already in the form
// url.Values.Encode would give it.
func simpleQuery(raw string) bool {
	eq := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '=':
			eq++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return eq == 1 && raw[0] != '='
}
