package route

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzNormalize(f *testing.F) {
	for _, tc := range normalizeCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		res, err := Normalize(in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason == "" {
				t.Fatalf("Normalize(%q): untyped error %v", in, err)
			}
			if res != (Result{}) {
				t.Fatalf("Normalize(%q) refused but returned %+v", in, res)
			}
			return
		}
		out := res.Path

		again, err := Normalize(out)
		if err != nil || again.Path != out || again.JSessionID != "" {
			t.Fatalf("not idempotent: %q → %q → %+v, %v", in, out, again, err)
		}
		if !strings.HasPrefix(out, "/") {
			t.Fatalf("%q → %q: does not start with /", in, out)
		}
		if strings.Contains(out, "//") {
			t.Fatalf("%q → %q: empty segment", in, out)
		}
		upper := strings.ToUpper(out)
		for _, bad := range []string{`\`, "%25", "%2F", "%5C", "%3B", ";", "#", "%00"} {
			if strings.Contains(upper, bad) {
				t.Fatalf("%q → %q: contains %q", in, out, bad)
			}
		}
		// Escapes are canonical: uppercase hex, never for a literal byte.
		for i := 0; i < len(out); i++ {
			c := out[i]
			if c == '%' {
				if i+2 >= len(out) || !isUpperHex(out[i+1]) || !isUpperHex(out[i+2]) {
					t.Fatalf("%q → %q: non-canonical escape at %d", in, out, i)
				}
				if literal[mustUnhex(out[i+1])<<4|mustUnhex(out[i+2])] {
					t.Fatalf("%q → %q: escaped literal at %d", in, out, i)
				}
				i += 2
				continue
			}
			if c != '/' && !literal[c] {
				t.Fatalf("%q → %q: unescaped byte %q", in, out, c)
			}
		}
		decoded := decodeForTest(out)
		if !utf8.ValidString(decoded) {
			t.Fatalf("%q → %q: decodes to invalid UTF-8", in, out)
		}
		for _, seg := range strings.Split(decoded, "/")[1:] {
			if seg == "." || seg == ".." {
				t.Fatalf("%q → %q: dot segment", in, out)
			}
		}
		if res.JSessionID != "" && !strings.HasSuffix(in, res.JSessionID) {
			t.Fatalf("%q: jsessionid %q is not the input's tail", in, res.JSessionID)
		}
	})
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func mustUnhex(c byte) byte { d, _ := unhex(c); return d }

// decodeForTest percent-decodes a canonical path independently of Normalize.
func decodeForTest(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			b.WriteByte(mustUnhex(s[i+1])<<4 | mustUnhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
