package protoguard

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

var testLimits = &Limits{MaxHeaderBytes: 8 << 10, MaxURILength: 256}

// head joins a request line and header lines with CRLF and ends the head.
func head(requestLine string, fields ...string) []byte {
	var b strings.Builder
	b.WriteString(requestLine)
	b.WriteString("\r\n")
	for _, f := range fields {
		b.WriteString(f)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func manyHeaders(n int) []string {
	fs := []string{"Host: a.example"}
	for i := 1; i < n; i++ {
		fs = append(fs, "X-H"+strconv.Itoa(i)+": v")
	}
	return fs
}

func TestParseHead_AcceptsUnambiguousHeads(t *testing.T) {
	cases := []struct {
		name    string
		head    []byte
		cl      int64
		chunked bool
	}{
		{"valid GET", head("GET / HTTP/1.1", "Host: a.example"), 0, false},
		{"valid GET with query and port in Host", head("GET /a/b?c=d&e=%20 HTTP/1.1", "Host: a.example:8443", "Accept: */*"), 0, false},
		{"valid POST with Content-Length", head("POST /form HTTP/1.1", "Host: a.example", "Content-Length: 5"), 5, false},
		{"Content-Length zero", head("POST /form HTTP/1.1", "Host: a.example", "Content-Length: 0"), 0, false},
		{"Content-Length with leading zeros is decimal", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 007"), 7, false},
		{"Content-Length with optional whitespace", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: \t42 "), 42, false},
		{"Content-Length of 18 digits", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 999999999999999999"), 999999999999999999, false},
		{"chunked", head("POST /up HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked"), 0, true},
		{"chunked in upper case", head("POST /up HTTP/1.1", "Host: a.example", "transfer-encoding: CHUNKED"), 0, true},
		// Optional whitespace around a field value is not part of it
		// (RFC 9110 5.5): the guard trims spaces and tabs, so these are
		// plain "chunked".
		{"chunked with a leading space", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding:  chunked"), 0, true},
		{"chunked with a trailing space", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked "), 0, true},
		{"chunked with tabs", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding:\tchunked\t"), 0, true},
		{"lowercase host header", head("GET / HTTP/1.1", "host: a.example"), 0, false},
		{"upper case HOST header", head("GET / HTTP/1.1", "HOST: a.example"), 0, false},
		{"Host without a space after the colon", head("GET / HTTP/1.1", "Host:a.example"), 0, false},
		{"IPv6 literal Host", head("GET / HTTP/1.1", "Host: [2001:db8::1]:443"), 0, false},
		{"absolute-form with matching Host", head("GET http://a.example/x?y HTTP/1.1", "Host: a.example"), 0, false},
		{"absolute-form https, Host differs in case", head("GET HTTPS://A.Example/x HTTP/1.1", "Host: a.example"), 0, false},
		{"absolute-form without a path", head("GET http://a.example HTTP/1.1", "Host: a.example"), 0, false},
		{"empty value of another header", head("GET / HTTP/1.1", "Host: a.example", "X-Empty:"), 0, false},
		{"obs-text in another header value", head("GET / HTTP/1.1", "Host: a.example", "X-Name: caf\xc3\xa9"), 0, false},
		{"URI exactly MaxURILength", head("GET /"+strings.Repeat("a", 255)+" HTTP/1.1", "Host: a.example"), 0, false},
		{"100 header fields", head("GET / HTTP/1.1", manyHeaders(100)...), 0, false},
		{"extension method", head("PURGE /x HTTP/1.1", "Host: a.example"), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, rej := parseHead(tc.head, testLimits)
			if rej != nil {
				t.Fatalf("refused %+v, want accepted: %q", *rej, tc.head)
			}
			if f.contentLength != tc.cl || f.chunked != tc.chunked {
				t.Errorf("facts = %+v, want contentLength %d chunked %v", f, tc.cl, tc.chunked)
			}
		})
	}
}

func TestParseHead_RejectsAmbiguousOrMalformedHeads(t *testing.T) {
	const (
		protocol = "protocol"
		hostgate = "hostgate"
	)
	cases := []struct {
		name   string
		head   []byte
		status int
		stage  string
		reason string
	}{
		// Body framing: exactly one unambiguous length.
		{"Content-Length with Transfer-Encoding", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 5", "Transfer-Encoding: chunked"), 400, protocol, "content-length-and-transfer-encoding"},
		{"Transfer-Encoding before Content-Length", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked", "Content-Length: 5"), 400, protocol, "content-length-and-transfer-encoding"},
		{"Content-Length zero with Transfer-Encoding", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 0", "Transfer-Encoding: chunked"), 400, protocol, "content-length-and-transfer-encoding"},
		{"Transfer-Encoding gzip", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: gzip"), 400, protocol, "unsupported-transfer-encoding"},
		{"Transfer-Encoding gzip, chunked", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: gzip, chunked"), 400, protocol, "unsupported-transfer-encoding"},
		{"Transfer-Encoding chunked, identity", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked, identity"), 400, protocol, "unsupported-transfer-encoding"},
		{"Transfer-Encoding chunked, chunked in one line", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked, chunked"), 400, protocol, "unsupported-transfer-encoding"},
		{"Transfer-Encoding chunked twice", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), 400, protocol, "duplicate-transfer-encoding"},
		{"Transfer-Encoding empty", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding:"), 400, protocol, "unsupported-transfer-encoding"},
		{"Transfer-Encoding with a quoted value", head("POST / HTTP/1.1", "Host: a.example", `Transfer-Encoding: "chunked"`), 400, protocol, "unsupported-transfer-encoding"},
		{"Transfer-Encoding chunked with a vertical tab", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: \x0bchunked"), 400, protocol, "bad-header-value"},
		{"Transfer-Encoding with space before the colon", head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding : chunked"), 400, protocol, "bad-header-name"},
		{"duplicate Content-Length, same value", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 5", "Content-Length: 5"), 400, protocol, "duplicate-content-length"},
		{"duplicate Content-Length, different values", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 5", "content-length: 6"), 400, protocol, "duplicate-content-length"},
		{"Content-Length list", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 5, 5"), 400, protocol, "bad-content-length"},
		{"Content-Length with plus sign", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: +5"), 400, protocol, "bad-content-length"},
		{"Content-Length negative", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: -1"), 400, protocol, "bad-content-length"},
		{"Content-Length with inner space", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 1 0"), 400, protocol, "bad-content-length"},
		{"Content-Length hex", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 0x10"), 400, protocol, "bad-content-length"},
		{"Content-Length empty", head("POST / HTTP/1.1", "Host: a.example", "Content-Length:"), 400, protocol, "bad-content-length"},
		{"Content-Length of 19 digits", head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 9999999999999999999"), 400, protocol, "bad-content-length"},

		// Line structure.
		{"obs-fold continuation line", head("GET / HTTP/1.1", "Host: a.example", "X-A: one", " two"), 400, protocol, "obs-fold"},
		{"obs-fold with a tab", head("GET / HTTP/1.1", "Host: a.example", "X-A: one", "\ttwo"), 400, protocol, "obs-fold"},
		{"whitespace before the first header", head("GET / HTTP/1.1", " Host: a.example"), 400, protocol, "obs-fold"},
		{"space before colon", head("GET / HTTP/1.1", "Host : a.example"), 400, protocol, "bad-header-name"},
		{"tab before colon", head("GET / HTTP/1.1", "Host: a.example", "X-A\t: 1"), 400, protocol, "bad-header-name"},
		{"header without colon", head("GET / HTTP/1.1", "Host: a.example", "NoColon"), 400, protocol, "bad-header-line"},
		{"header with empty name", head("GET / HTTP/1.1", "Host: a.example", ": v"), 400, protocol, "bad-header-line"},
		{"header name with non-token byte", head("GET / HTTP/1.1", "Host: a.example", "X(A): v"), 400, protocol, "bad-header-name"},
		{"bare LF between headers", []byte("GET / HTTP/1.1\r\nHost: a.example\nX-A: 1\r\n\r\n"), 400, protocol, "bare-lf"},
		{"bare LF ending the request line", []byte("GET / HTTP/1.1\nHost: a.example\r\n\r\n"), 400, protocol, "bare-lf"},
		{"bare CR inside a header", []byte("GET / HTTP/1.1\r\nHost: a.example\rX-A: 1\r\n\r\n"), 400, protocol, "bare-cr"},
		{"bare CR in the request line", []byte("GET /\r HTTP/1.1\r\nHost: a.example\r\n\r\n"), 400, protocol, "bare-cr"},
		{"NUL in a header value", head("GET / HTTP/1.1", "Host: a.example", "X-A: a\x00b"), 400, protocol, "bad-header-value"},
		{"DEL in a header value", head("GET / HTTP/1.1", "Host: a.example", "X-A: a\x7fb"), 400, protocol, "bad-header-value"},
		{"escape byte in a header value", head("GET / HTTP/1.1", "Host: a.example", "User-Agent: \x1b[31m"), 400, protocol, "bad-header-value"},
		{"more than 100 headers", head("GET / HTTP/1.1", manyHeaders(101)...), 431, protocol, "too-many-headers"},

		// Host.
		{"missing Host", head("GET / HTTP/1.1", "Accept: */*"), 400, protocol, "missing-host"},
		{"duplicate Host", head("GET / HTTP/1.1", "Host: a.example", "Host: b.example"), 400, protocol, "duplicate-host"},
		{"duplicate Host with the same value", head("GET / HTTP/1.1", "Host: a.example", "host: a.example"), 400, protocol, "duplicate-host"},
		{"empty Host", head("GET / HTTP/1.1", "Host:"), 400, protocol, "bad-host"},
		{"Host with a space", head("GET / HTTP/1.1", "Host: a.example evil.example"), 400, protocol, "bad-host"},
		{"Host with a slash", head("GET / HTTP/1.1", "Host: a.example/x"), 400, protocol, "bad-host"},
		{"Host with userinfo", head("GET / HTTP/1.1", "Host: user@a.example"), 400, protocol, "bad-host"},
		{"Host with a comma", head("GET / HTTP/1.1", "Host: a.example,b.example"), 400, protocol, "bad-host"},
		{"Host with non-ASCII", head("GET / HTTP/1.1", "Host: caf\xc3\xa9.example"), 400, protocol, "bad-host"},
		{"Host with NUL", head("GET / HTTP/1.1", "Host: a.example\x00"), 400, protocol, "bad-header-value"},

		// Request line and version.
		{"HTTP/1.0", head("GET / HTTP/1.0", "Host: a.example"), 505, protocol, "http-1.0"},
		{"HTTP/0.9 without a version", []byte("GET /\r\n\r\n"), 505, protocol, "http-0.9"},
		{"HTTP/0.9 with headers", head("GET /index.html", "Host: a.example"), 505, protocol, "http-0.9"},
		{"HTTP/0.9 spelled out", head("GET / HTTP/0.9", "Host: a.example"), 505, protocol, "http-0.9"},
		{"HTTP/2.0 in a text head", head("GET / HTTP/2.0", "Host: a.example"), 505, protocol, "http-version"},
		{"HTTP/1.2", head("GET / HTTP/1.2", "Host: a.example"), 505, protocol, "http-version"},
		{"lower-case version", head("GET / http/1.1", "Host: a.example"), 400, protocol, "bad-request-line"},
		{"version with trailing space", head("GET / HTTP/1.1 ", "Host: a.example"), 400, protocol, "bad-request-line"},
		{"two spaces after the method", head("GET  / HTTP/1.1", "Host: a.example"), 400, protocol, "bad-request-line"},
		{"tab as separator", head("GET\t/ HTTP/1.1", "Host: a.example"), 400, protocol, "bad-method"},
		{"no method", head(" / HTTP/1.1", "Host: a.example"), 400, protocol, "bad-request-line"},
		{"empty request line", []byte("\r\nHost: a.example\r\n\r\n"), 400, protocol, "bad-request-line"},
		{"method with non-token byte", head("G@T / HTTP/1.1", "Host: a.example"), 400, protocol, "bad-method"},
		{"CONNECT", head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443"), 405, protocol, "connect"},
		{"OPTIONS asterisk", head("OPTIONS * HTTP/1.1", "Host: a.example"), 400, protocol, "asterisk-form"},
		{"authority-form for GET", head("GET a.example:443 HTTP/1.1", "Host: a.example"), 400, protocol, "bad-target-form"},
		{"absolute-form with another scheme", head("GET ftp://a.example/ HTTP/1.1", "Host: a.example"), 400, protocol, "bad-target-form"},
		{"absolute-form with another host", head("GET http://b.example/ HTTP/1.1", "Host: a.example"), 421, hostgate, "absolute-form-host-mismatch"},
		{"absolute-form with another port", head("GET https://a.example:8443/ HTTP/1.1", "Host: a.example"), 421, hostgate, "absolute-form-host-mismatch"},
		{"absolute-form with userinfo", head("GET http://a.example@b.example/ HTTP/1.1", "Host: a.example"), 421, hostgate, "absolute-form-host-mismatch"},
		{"target with non-ASCII", head("GET /caf\xc3\xa9 HTTP/1.1", "Host: a.example"), 400, protocol, "bad-target-byte"},
		{"target with a control byte", head("GET /a\x01b HTTP/1.1", "Host: a.example"), 400, protocol, "bad-target-byte"},
		{"target with DEL", head("GET /a\x7f HTTP/1.1", "Host: a.example"), 400, protocol, "bad-target-byte"},
		{"target with a tab", head("GET /a\tb HTTP/1.1", "Host: a.example"), 400, protocol, "bad-target-byte"},
		{"URI longer than MaxURILength", head("GET /"+strings.Repeat("a", 256)+" HTTP/1.1", "Host: a.example"), 414, protocol, "uri-too-long"},
		{"URI too long even without a version", head("GET /" + strings.Repeat("a", 300)), 414, protocol, "uri-too-long"},
	}
	if len(cases) < 35 {
		t.Fatalf("table has %d rows", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, rej := parseHead(tc.head, testLimits)
			if rej == nil {
				t.Fatalf("accepted, want %d %s %s: %q", tc.status, tc.stage, tc.reason, tc.head)
			}
			if rej.Status != tc.status || rej.Stage != tc.stage || rej.Reason != tc.reason {
				t.Errorf("got %d %s %s, want %d %s %s", rej.Status, rej.Stage, rej.Reason, tc.status, tc.stage, tc.reason)
			}
			if http.StatusText(rej.Status) == "" {
				t.Errorf("status %d is not an HTTP status", rej.Status)
			}
			if want := firstLine(tc.head); rej.Line != want {
				t.Errorf("Line = %q, want the request line %q", rej.Line, want)
			}
		})
	}
}

func TestParseHead_DropsHTTP2PrefaceWithoutAnswer(t *testing.T) {
	_, rej := parseHead([]byte("PRI * HTTP/2.0\r\n\r\n"), testLimits)
	if rej == nil {
		t.Fatal("HTTP/2 preface accepted")
	}
	if rej.Status != 0 || rej.Reason != "http2-preface" {
		t.Errorf("got %+v, want Status 0 (drop) reason http2-preface", *rej)
	}
}

func TestParseHead_RejectionLineIsTruncatedAndValidUTF8(t *testing.T) {
	long := head("GET /\xff"+strings.Repeat("b", 300)+" HTTP/1.1", "Host: a.example")
	_, rej := parseHead(long, &Limits{MaxHeaderBytes: 8 << 10, MaxURILength: 1024})
	if rej == nil || rej.Reason != "bad-target-byte" {
		t.Fatalf("got %+v", rej)
	}
	if len(rej.Line) > 202 || !strings.HasPrefix(rej.Line, "GET /?bbb") {
		t.Errorf("Line = %q (%d bytes)", rej.Line, len(rej.Line))
	}
}

func TestParseHead_EmbeddedEmptyLineDoesNotPanic(t *testing.T) {
	// The guard (Conn.step) cuts a head at the first CRLFCRLF, so this is
	// not reachable from the network; parseHead itself has no such check.
	_, rej := parseHead([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nX: y\r\n\r\n"), testLimits)
	if rej == nil {
		t.Error("accepted a head with an embedded empty line")
	}
}

func TestParseChunkSize(t *testing.T) {
	good := map[string]int64{
		"0":               0,
		"5":               5,
		"1a":              26,
		"FF":              255,
		"00ff":            255,
		"5;name=value":    5,
		"5 ":              5,
		"5\t;ext":         5,
		"fffffffffffffff": 1<<60 - 1,
	}
	for in, want := range good {
		if got, ok := parseChunkSize([]byte(in)); !ok || got != want {
			t.Errorf("parseChunkSize(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", " 5", "0x5", "-1", "+1", "g", "5 5", "1000000000000000", ";x", "5;a\x00b", "5;\x7f", "5\x00"} {
		if got, ok := parseChunkSize([]byte(in)); ok {
			t.Errorf("parseChunkSize(%q) = %d, want refused", in, got)
		}
	}
}

func TestLineEndings(t *testing.T) {
	cases := map[string]string{
		"a\r\nb\r\n\r\n": "",
		"\n":             "bare-lf",
		"a\nb":           "bare-lf",
		"a\r":            "bare-cr",
		"a\rb":           "bare-cr",
		"a\r\r\n":        "bare-cr",
		"a\n\r\n":        "bare-lf",
	}
	for in, want := range cases {
		if got := lineEndings([]byte(in)); got != want {
			t.Errorf("lineEndings(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseHead: any head ending in CRLFCRLF is either refused or names
// exactly one Host and at most one of Content-Length and Transfer-Encoding.
func FuzzParseHead(f *testing.F) {
	seeds := [][]byte{
		head("GET / HTTP/1.1", "Host: a.example"),
		head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 5"),
		head("POST / HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked"),
		head("POST / HTTP/1.1", "Host: a.example", "Content-Length: 5", "Transfer-Encoding: chunked"),
		head("GET http://a.example/ HTTP/1.1", "host: a.example", "HOST: a.example"),
		head("GET / HTTP/1.1", "Host: a.example", "X: a", " b"),
		head("PRI * HTTP/2.0"),
		head("GET /", "Host: a"),
		[]byte("GET / HTTP/1.1\r\nHost: a\nTransfer-Encoding: chunked\r\n"),
		[]byte("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n"),
	}
	for _, s := range seeds {
		f.Add(bytes.TrimSuffix(s, []byte("\r\n\r\n")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := append(append([]byte(nil), data...), "\r\n\r\n"...)
		// Hand parseHead what Conn.step hands it: empty lines before the
		// request line skipped, the head cut at its first CRLFCRLF.
		for bytes.HasPrefix(h, []byte("\r\n")) {
			h = h[2:]
		}
		end := bytes.Index(h, []byte("\r\n\r\n"))
		if end < 0 {
			return // only "\r\n" pairs: Conn waits for more bytes
		}
		h = h[:end+4]
		fac, rej := parseHead(h, testLimits)
		if rej != nil {
			if rej.Status != 0 && (rej.Status < 400 || rej.Status > 599) {
				t.Fatalf("refusal with status %d", rej.Status)
			}
			if rej.Stage != "protocol" && rej.Stage != "hostgate" && rej.Status != 0 {
				t.Fatalf("refusal with stage %q", rej.Stage)
			}
			return
		}
		if fac.contentLength < 0 {
			t.Fatalf("negative Content-Length %d", fac.contentLength)
		}
		if bytes.ContainsAny(h[:len(h)-4], "\x00") {
			t.Fatalf("accepted a head with NUL: %q", h)
		}
		lines := strings.Split(string(h[:len(h)-4]), "\r\n")
		var hosts, cls, tes int
		for _, l := range lines[1:] {
			name, _, ok := strings.Cut(l, ":")
			if !ok {
				t.Fatalf("accepted a header line without a colon: %q in %q", l, h)
			}
			switch strings.ToLower(name) {
			case "host":
				hosts++
			case "content-length":
				cls++
			case "transfer-encoding":
				tes++
			}
		}
		if hosts != 1 {
			t.Fatalf("accepted a head with %d Host fields: %q", hosts, h)
		}
		if cls > 0 && tes > 0 {
			t.Fatalf("accepted a head with both Content-Length and Transfer-Encoding: %q", h)
		}
		if cls > 1 || tes > 1 {
			t.Fatalf("accepted repeated framing fields: %q", h)
		}
		if fac.chunked != (tes == 1) {
			t.Fatalf("chunked = %v with %d Transfer-Encoding fields: %q", fac.chunked, tes, h)
		}
	})
}
