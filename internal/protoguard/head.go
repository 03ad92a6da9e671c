package protoguard

import (
	"bytes"
	"net/http"
)

// headFacts is what the guard needs from a head to find the next one.
type headFacts struct {
	contentLength int64
	chunked       bool
}

// parseHead checks one request head (request line, header lines, the empty
// line) against RFC 9112 with no leniency. A Rejection with Status 0 means
// the connection is dropped without an answer.
func parseHead(head []byte, lim *Limits) (headFacts, *Rejection) {
	var f headFacts
	lineEnd := bytes.Index(head, []byte("\r\n"))
	line := head[:lineEnd]
	refuse := func(status int, stage, reason string) (headFacts, *Rejection) {
		return f, &Rejection{Status: status, Stage: stage, Reason: reason, Line: firstLine(line)}
	}
	if reason := lineEndings(head); reason != "" {
		return refuse(http.StatusBadRequest, "protocol", reason)
	}

	// Request line: method SP request-target SP HTTP-version, single spaces.
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return refuse(http.StatusBadRequest, "protocol", "bad-request-line")
	}
	method := line[:sp1]
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	var target, version []byte
	if sp2 < 0 {
		target = rest // "GET /": HTTP/0.9 has no version
	} else {
		target, version = rest[:sp2], rest[sp2+1:]
	}
	if !isToken(method) {
		return refuse(http.StatusBadRequest, "protocol", "bad-method")
	}
	if len(target) > lim.MaxURILength {
		return refuse(http.StatusRequestURITooLong, "protocol", "uri-too-long")
	}
	switch {
	case string(method) == "PRI" && string(target) == "*" && string(version) == "HTTP/2.0":
		return f, &Rejection{Reason: "http2-preface", Line: firstLine(line)}
	case version == nil || bytes.HasPrefix(version, []byte("HTTP/0.")):
		return refuse(http.StatusHTTPVersionNotSupported, "protocol", "http-0.9")
	case string(version) == "HTTP/1.0":
		return refuse(http.StatusHTTPVersionNotSupported, "protocol", "http-1.0")
	case string(version) != "HTTP/1.1":
		if len(version) == 8 && bytes.HasPrefix(version, []byte("HTTP/")) {
			return refuse(http.StatusHTTPVersionNotSupported, "protocol", "http-version")
		}
		return refuse(http.StatusBadRequest, "protocol", "bad-request-line")
	}
	if len(target) == 0 || bytes.IndexByte(target, ' ') >= 0 {
		return refuse(http.StatusBadRequest, "protocol", "bad-request-line")
	}
	for _, b := range target {
		if b <= 0x20 || b >= 0x7f {
			return refuse(http.StatusBadRequest, "protocol", "bad-target-byte")
		}
	}
	if string(method) == http.MethodConnect {
		return refuse(http.StatusMethodNotAllowed, "protocol", "connect")
	}
	if target[0] == '*' {
		// OPTIONS * would be answered by net/http itself; nothing behind
		// rampart needs server-wide OPTIONS.
		return refuse(http.StatusBadRequest, "protocol", "asterisk-form")
	}

	// Header fields.
	var hosts, cls, tes int
	var hostVal []byte
	fields := head[lineEnd+2 : len(head)-2]
	count := 0
	for len(fields) > 0 {
		i := bytes.Index(fields, []byte("\r\n"))
		fl := fields[:i]
		fields = fields[i+2:]
		count++
		if len(fl) == 0 {
			return refuse(http.StatusBadRequest, "protocol", "bad-header-line")
		}
		if count > 100 {
			return refuse(http.StatusRequestHeaderFieldsTooLarge, "protocol", "too-many-headers")
		}
		if fl[0] == ' ' || fl[0] == '\t' {
			return refuse(http.StatusBadRequest, "protocol", "obs-fold")
		}
		colon := bytes.IndexByte(fl, ':')
		if colon <= 0 {
			return refuse(http.StatusBadRequest, "protocol", "bad-header-line")
		}
		name := fl[:colon]
		if !isToken(name) {
			// includes "Name :" (whitespace before the colon, RFC 9112 5.1)
			return refuse(http.StatusBadRequest, "protocol", "bad-header-name")
		}
		value := bytes.Trim(fl[colon+1:], " \t")
		for _, b := range value {
			if (b < 0x20 && b != '\t') || b == 0x7f {
				return refuse(http.StatusBadRequest, "protocol", "bad-header-value")
			}
		}
		switch {
		case equalFold(name, "host"):
			hosts++
			hostVal = value
		case equalFold(name, "content-length"):
			cls++
			n, ok := parseDecimal(value)
			if !ok {
				return refuse(http.StatusBadRequest, "protocol", "bad-content-length")
			}
			f.contentLength = n
		case equalFold(name, "transfer-encoding"):
			tes++
			if !equalFold(value, "chunked") {
				return refuse(http.StatusBadRequest, "protocol", "unsupported-transfer-encoding")
			}
			f.chunked = true
		}
	}
	switch {
	case hosts == 0:
		return refuse(http.StatusBadRequest, "protocol", "missing-host")
	case hosts > 1:
		return refuse(http.StatusBadRequest, "protocol", "duplicate-host")
	case !validAuthority(hostVal):
		return refuse(http.StatusBadRequest, "protocol", "bad-host")
	case cls > 1:
		return refuse(http.StatusBadRequest, "protocol", "duplicate-content-length")
	case tes > 1:
		return refuse(http.StatusBadRequest, "protocol", "duplicate-transfer-encoding")
	case cls > 0 && tes > 0:
		return refuse(http.StatusBadRequest, "protocol", "content-length-and-transfer-encoding")
	}
	if auth, ok := absoluteAuthority(target); ok {
		// RFC 9112 3.2.2: the target's authority overrides Host. Refuse any
		// disagreement instead of choosing: no request may name two hosts.
		if !bytes.EqualFold(auth, hostVal) {
			return refuse(http.StatusMisdirectedRequest, "hostgate", "absolute-form-host-mismatch")
		}
	} else if target[0] != '/' {
		return refuse(http.StatusBadRequest, "protocol", "bad-target-form")
	}
	return f, nil
}

// lineEndings finds a CR or LF that is not part of a CRLF pair. Parsers
// disagree on bare line ends, which makes them a smuggling vector.
func lineEndings(b []byte) string {
	for i, c := range b {
		switch {
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return "bare-lf"
		case c == '\r' && (i+1 == len(b) || b[i+1] != '\n'):
			return "bare-cr"
		}
	}
	return ""
}

// absoluteAuthority returns the authority of an absolute-form target.
func absoluteAuthority(target []byte) ([]byte, bool) {
	var rest []byte
	switch {
	case len(target) > 8 && equalFold(target[:8], "https://"):
		rest = target[8:]
	case len(target) > 7 && equalFold(target[:7], "http://"):
		rest = target[7:]
	default:
		return nil, false
	}
	if i := bytes.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	return rest, true
}

func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		// Chunk extensions are legal but unused; bound and check them.
		for _, b := range line[i+1:] {
			if b < 0x20 && b != '\t' || b == 0x7f {
				return 0, false
			}
		}
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, b := range line {
		var d byte
		switch {
		case b >= '0' && b <= '9':
			d = b - '0'
		case b >= 'a' && b <= 'f':
			d = b - 'a' + 10
		case b >= 'A' && b <= 'F':
			d = b - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

func parseDecimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	return n, true
}

func validHeaderLine(l []byte) bool {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 || !isToken(l[:colon]) {
		return false
	}
	for _, b := range l[colon+1:] {
		if (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// validAuthority accepts host[:port] with a DNS name, IPv4 or bracketed IPv6.
func validAuthority(v []byte) bool {
	if len(v) == 0 || len(v) > 261 {
		return false
	}
	for _, b := range v {
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == ':' || b == '[' || b == ']' || b == '_') {
			return false
		}
	}
	return true
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenTable[c] {
			return false
		}
	}
	return true
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
