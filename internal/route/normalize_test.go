package route

import (
	"errors"
	"strings"
	"testing"
	"unsafe"
)

type normalizeCase struct {
	name    string
	in      string
	want    string // canonical path when accepted
	session string // extracted jsessionid
	reason  string // refusal reason; "" when accepted
}

// normalizeCases is the specification of Normalize. It also seeds the fuzzer.
var normalizeCases = []normalizeCase{
	// Already canonical: returned unchanged.
	{name: "accepts root", in: "/", want: "/"},
	{name: "accepts plain path", in: "/api/v1/users", want: "/api/v1/users"},
	{name: "keeps trailing slash", in: "/api/", want: "/api/"},
	{name: "accepts all literal pchar", in: "/a-._~!$&'()*+,=:@z", want: "/a-._~!$&'()*+,=:@z"},
	{name: "accepts well-known", in: "/.well-known/acme-challenge/x", want: "/.well-known/acme-challenge/x"},
	{name: "accepts dotdot prefixed name", in: "/..foo", want: "/..foo"},
	{name: "accepts triple dot segment", in: "/a/.../b", want: "/a/.../b"},
	{name: "accepts dot suffixed name", in: "/a/b..", want: "/a/b.."},

	// Empty segments collapse.
	{name: "collapses leading double slash", in: "//admin", want: "/admin"},
	{name: "collapses runs of slashes", in: "/a//b///c", want: "/a/b/c"},
	{name: "collapses double trailing slash", in: "/api//", want: "/api/"},
	{name: "collapses slashes only", in: "///", want: "/"},

	// Canonical encoding.
	{name: "decodes unreserved escape", in: "/%41", want: "/A"},
	{name: "decodes escaped tilde", in: "/%7euser", want: "/~user"},
	{name: "decodes escaped sub-delims", in: "/a%21%24%26%27%28%29%2a%2b%2c%3d%3a%40", want: "/a!$&'()*+,=:@"},
	{name: "uppercases hex of reserved bytes", in: "/a%3fb", want: "/a%3Fb"},
	{name: "accepts valid utf-8 and uppercases", in: "/caf%c3%a9", want: "/caf%C3%A9"},
	{name: "keeps canonical utf-8 escape", in: "/caf%C3%A9", want: "/caf%C3%A9"},
	{name: "accepts four byte utf-8", in: "/%F0%9F%98%80", want: "/%F0%9F%98%80"},
	{name: "encodes raw double quote", in: `/a"b`, want: "/a%22b"},
	{name: "encodes raw braces and pipe", in: "/{a|b}", want: "/%7Ba%7Cb%7D"},
	{name: "keeps escaped space", in: "/a%20b", want: "/a%20b"},
	{name: "keeps escaped hash", in: "/a%23b", want: "/a%23b"},
	{name: "escaped single dot inside a name is fine", in: "/a%2ejson", want: "/a.json"},
	{name: "escaped dots inside a name are fine", in: "/%2e%2efoo", want: "/..foo"},
	{name: "collapses slashes around decoded segments", in: "//%41//", want: "/A/"},

	// jsessionid: the one path parameter accepted, taken out of the path.
	{name: "extracts jsessionid", in: "/shop/cart;jsessionid=ABC", want: "/shop/cart", session: "ABC"},
	{name: "extracts jsessionid with uppercase name", in: "/shop/cart;JSESSIONID=abc", want: "/shop/cart", session: "abc"},
	{name: "extracts jsessionid with mixed case name", in: "/a;JSessionId=x.y_z-0", want: "/a", session: "x.y_z-0"},
	{name: "extracts jsessionid after trailing slash", in: "/shop/;jsessionid=1", want: "/shop/", session: "1"},
	{name: "extracts jsessionid at root", in: "/;jsessionid=1", want: "/", session: "1"},
	{name: "extracts jsessionid from encoded path", in: "/caf%c3%a9;jsessionid=Z", want: "/caf%C3%A9", session: "Z"},
	{name: "extracts jsessionid of 128 chars", in: "/a;jsessionid=" + strings.Repeat("a", 128), want: "/a", session: strings.Repeat("a", 128)},

	// Not origin form.
	{name: "rejects empty", in: "", reason: ReasonNotOriginForm},
	{name: "rejects relative", in: "api/x", reason: ReasonNotOriginForm},
	{name: "rejects asterisk form", in: "*", reason: ReasonNotOriginForm},
	{name: "rejects absolute form", in: "http://example.com/", reason: ReasonNotOriginForm},
	{name: "rejects leading escape", in: "%2fadmin", reason: ReasonNotOriginForm},

	// Raw bytes.
	{name: "rejects raw NUL", in: "/a\x00b", reason: ReasonControlByte},
	{name: "rejects raw newline", in: "/a\nb", reason: ReasonControlByte},
	{name: "rejects raw tab", in: "/a\tb", reason: ReasonControlByte},
	{name: "rejects raw DEL", in: "/a\x7fb", reason: ReasonControlByte},
	{name: "rejects raw space", in: "/a b", reason: ReasonControlByte},
	{name: "rejects raw non-ascii", in: "/café", reason: ReasonNonASCII},
	{name: "rejects raw backslash", in: "/a\\..\\admin", reason: ReasonBackslash},
	{name: "rejects raw backslash alone", in: "/a\\b", reason: ReasonBackslash},
	{name: "rejects fragment", in: "/a#frag", reason: ReasonFragment},

	// Malformed escapes.
	{name: "rejects percent at end", in: "/a%", reason: ReasonBadEscape},
	{name: "rejects truncated escape", in: "/a%2", reason: ReasonBadEscape},
	{name: "rejects non-hex escape", in: "/a%zz", reason: ReasonBadEscape},
	{name: "rejects half hex escape", in: "/a%2g", reason: ReasonBadEscape},
	{name: "rejects iis unicode escape", in: "/%u002e%u002e/admin", reason: ReasonBadEscape},

	// Escapes that change structure or invite a second decode.
	{name: "rejects encoded slash", in: "/a%2fb", reason: ReasonEncodedSlash},
	{name: "rejects encoded slash uppercase", in: "/a%2Fb", reason: ReasonEncodedSlash},
	{name: "rejects encoded backslash", in: "/a%5cb", reason: ReasonEncodedSlash},
	{name: "rejects encoded percent", in: "/100%25", reason: ReasonEncodedPercent},
	{name: "rejects double encoded dots", in: "/%252e%252e/admin", reason: ReasonEncodedPercent},
	{name: "rejects double encoded slash", in: "/a%252fb", reason: ReasonEncodedPercent},
	{name: "rejects encoded NUL", in: "/a%00.jpg", reason: ReasonEncodedControl},
	{name: "rejects encoded newline", in: "/a%0a", reason: ReasonEncodedControl},
	{name: "rejects encoded carriage return", in: "/a%0D%0AX-Injected:1", reason: ReasonEncodedControl},
	{name: "rejects encoded DEL", in: "/a%7f", reason: ReasonEncodedControl},
	{name: "rejects encoded semicolon", in: "/a%3bjsessionid=1", reason: ReasonPathParameter},

	// UTF-8 after decoding.
	{name: "rejects overlong dots", in: "/%c0%ae%c0%ae/admin", reason: ReasonInvalidUTF8},
	{name: "rejects three byte overlong dot", in: "/%e0%80%ae", reason: ReasonInvalidUTF8},
	{name: "rejects overlong slash", in: "/a%c0%afb", reason: ReasonInvalidUTF8},
	{name: "rejects byte ff", in: "/%ff", reason: ReasonInvalidUTF8},
	{name: "rejects lone continuation byte", in: "/%80", reason: ReasonInvalidUTF8},
	{name: "rejects truncated sequence", in: "/%c3", reason: ReasonInvalidUTF8},
	{name: "rejects utf-16 surrogate", in: "/%ed%a0%80", reason: ReasonInvalidUTF8},

	// Dot segments, raw or encoded in any mix.
	{name: "rejects dotdot segment", in: "/a/../b", reason: ReasonDotSegment},
	{name: "rejects dot segment", in: "/a/./b", reason: ReasonDotSegment},
	{name: "rejects trailing dotdot", in: "/a/..", reason: ReasonDotSegment},
	{name: "rejects trailing dot", in: "/a/.", reason: ReasonDotSegment},
	{name: "rejects leading dotdot", in: "/../etc/passwd", reason: ReasonDotSegment},
	{name: "rejects encoded dotdot", in: "/%2e%2e/admin", reason: ReasonDotSegment},
	{name: "rejects mixed case encoded dotdot", in: "/%2E%2e/admin", reason: ReasonDotSegment},
	{name: "rejects half encoded dotdot", in: "/.%2e/admin", reason: ReasonDotSegment},
	{name: "rejects other half encoded dotdot", in: "/%2e./admin", reason: ReasonDotSegment},
	{name: "rejects encoded single dot", in: "/a/%2e/b", reason: ReasonDotSegment},
	{name: "rejects dotdot after empty segment", in: "//../admin", reason: ReasonDotSegment},
	{name: "rejects tomcat path parameter traversal", in: "/app/..;/admin", reason: ReasonDotSegment},
	{name: "rejects tomcat traversal with parameter value", in: "/app/..;x=1/admin", reason: ReasonDotSegment},
	{name: "rejects dotdot disguised as jsessionid", in: "/a/..;jsessionid=1", reason: ReasonDotSegment},

	// Other path parameters.
	{name: "rejects other parameter", in: "/a;foo=1", reason: ReasonPathParameter},
	{name: "rejects semicolon mid path", in: "/a;/b", reason: ReasonPathParameter},
	{name: "rejects jsessionid mid path", in: "/a;jsessionid=1/b", reason: ReasonPathParameter},
	{name: "rejects bare semicolon", in: "/a;", reason: ReasonPathParameter},
	{name: "rejects empty jsessionid", in: "/a;jsessionid=", reason: ReasonPathParameter},
	{name: "rejects jsessionid without value", in: "/a;jsessionid", reason: ReasonPathParameter},
	{name: "rejects jsessionid with bad chars", in: "/a;jsessionid=ab$c", reason: ReasonPathParameter},
	{name: "rejects jsessionid with escape", in: "/a;jsessionid=%41", reason: ReasonPathParameter},
	{name: "rejects jsessionid longer than 128", in: "/a;jsessionid=" + strings.Repeat("a", 129), reason: ReasonPathParameter},
	{name: "rejects two jsessionids", in: "/a;jsessionid=1;jsessionid=2", reason: ReasonPathParameter},
	{name: "rejects parameter before jsessionid", in: "/a;x;jsessionid=1", reason: ReasonPathParameter},
	{name: "rejects lookalike name", in: "/a;jsessionidx=1", reason: ReasonPathParameter},
}

func TestNormalize(t *testing.T) {
	for _, tc := range normalizeCases {
		t.Run(tc.name, func(t *testing.T) {
			checkNormalize(t, tc)
		})
	}
}

func checkNormalize(t *testing.T, tc normalizeCase) {
	t.Helper()
	got, err := Normalize(tc.in)
	if tc.reason != "" {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Normalize(%q) = %+v, %v; want refusal %q", tc.in, got, err, tc.reason)
		}
		if e.Reason != tc.reason {
			t.Fatalf("Normalize(%q) refused with %q, want %q", tc.in, e.Reason, tc.reason)
		}
		if got != (Result{}) {
			t.Fatalf("Normalize(%q) refused but returned %+v", tc.in, got)
		}
		return
	}
	if err != nil {
		t.Fatalf("Normalize(%q): %v; want %q", tc.in, err, tc.want)
	}
	if got.Path != tc.want || got.JSessionID != tc.session {
		t.Fatalf("Normalize(%q) = %+v, want {Path:%q JSessionID:%q}", tc.in, got, tc.want, tc.session)
	}
}

// Headline attacks, spelled out so a failure names the bypass.

func TestNormalize_RejectsTomcatPathParameterTraversal(t *testing.T) {
	for _, in := range []string{"/..;/admin", "/public/..;/manager/html", "/a/..;foo=bar/admin", "/%2e%2e;/admin", "/.%2e;x/admin"} {
		checkNormalize(t, normalizeCase{in: in, reason: ReasonDotSegment})
	}
}

func TestNormalize_RejectsDoubleEncodingWhateverItHides(t *testing.T) {
	for _, in := range []string{"/%252e%252e/", "/%252f", "/%255c", "/%2500", "/%25", "/%2541"} {
		checkNormalize(t, normalizeCase{in: in, reason: ReasonEncodedPercent})
	}
}

func TestNormalize_RejectsOverlongUTF8Dots(t *testing.T) {
	for _, in := range []string{"/%c0%ae%c0%ae/", "/%e0%80%ae%e0%80%ae/", "/%f0%80%80%ae", "/%c0%2e"} {
		checkNormalize(t, normalizeCase{in: in, reason: ReasonInvalidUTF8})
	}
}

func TestNormalize_CollapsesEmptySegmentsSoDoubleSlashCannotDodgeExactRoutes(t *testing.T) {
	checkNormalize(t, normalizeCase{in: "//admin", want: "/admin"})
	checkNormalize(t, normalizeCase{in: "/admin//", want: "/admin/"})
}

func TestNormalize_ErrorIsTypedWithStableReason(t *testing.T) {
	_, err := Normalize("/a/../b")
	var e *Error
	if !errors.As(err, &e) || e.Reason != "dot-segment" {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "dot-segment") {
		t.Fatalf("Error() = %q does not name the reason", err.Error())
	}
}

func TestNormalize_ReturnsCanonicalInputItself(t *testing.T) {
	for _, in := range []string{"/api/v1/users/42", "/caf%C3%A9", "/a/b/", "/a;jsessionid=X"} {
		got, err := Normalize(in)
		if err != nil || !strings.HasPrefix(in, got.Path) {
			t.Fatalf("Normalize(%q) = %+v, %v", in, got, err)
		}
		if unsafe.StringData(got.Path) != unsafe.StringData(in) {
			t.Errorf("Normalize(%q) copied the input", in)
		}
	}
}

func TestNormalize_CanonicalPathDoesNotAllocate(t *testing.T) {
	for _, in := range []string{
		"/api/v1/users/42",
		"/static/css/site.min.css",
		"/.well-known/openid-configuration",
		"/caf%C3%A9",      // escaped but canonical: checked on the stack, input returned
		"/a;jsessionid=X", // parameter removed: the result is a prefix of the input
	} {
		in := in
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := Normalize(in); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Normalize(%q): %v allocs, want 0", in, allocs)
		}
	}
}

func TestNormalize_RefusalDoesNotAllocate(t *testing.T) {
	for _, in := range []string{"/a/../b", "/%252e", "/a;x", "/%c0%ae", "x"} {
		in := in
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := Normalize(in); err == nil {
				t.Fatal("accepted")
			}
		})
		if allocs != 0 {
			t.Errorf("Normalize(%q): %v allocs, want 0", in, allocs)
		}
	}
}

func TestNormalize_LongPathsBeyondStackBuffer(t *testing.T) {
	seg := strings.Repeat("%c3%a9", 100) // 600 bytes raw, 200 decoded
	in := "/" + seg + "//" + seg + "/x"
	want := "/" + strings.ToUpper(seg) + "/" + strings.ToUpper(seg) + "/x"
	checkNormalize(t, normalizeCase{in: in, want: want})
	checkNormalize(t, normalizeCase{in: "/" + seg + "/..", reason: ReasonDotSegment})
}

func BenchmarkNormalize_Canonical(b *testing.B) {
	const in = "/api/v2/customers/12345/orders/recent.json"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalize_Encoded(b *testing.B) {
	const in = "/api/v2//customers/%7ejos%c3%a9/orders/recent%2ejson"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize(in); err != nil {
			b.Fatal(err)
		}
	}
}
