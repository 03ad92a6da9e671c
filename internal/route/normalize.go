// Package route is pipeline stage 5: it turns the path a client sent into
// the one canonical form that is both matched against the allowlist and
// forwarded upstream, and it matches that form against the configured
// routes and deny entries.
//
// The proxy is deny-by-default, so the allowlist is only as strong as the
// guarantee that the proxy and the upstream read a path the same way. Every
// classic bypass (/admin/..;/, %2e%2e/, %252f, overlong UTF-8, backslashes,
// //admin) works by making the two disagree. Normalize therefore refuses
// anything whose meaning could differ between implementations rather than
// trying to guess how a particular upstream would resolve it, and what it
// accepts it rewrites into a form with a single spelling. Because the
// upstream receives exactly the string that was matched, a route decision can
// never be about a different resource than the one served.
package route

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// Reasons carried by *Error. They are stable tokens for logs and the
// rampart_refusals_total metric; do not reword them.
const (
	ReasonNotOriginForm  = "not-origin-form"
	ReasonControlByte    = "control-byte"
	ReasonNonASCII       = "non-ascii"
	ReasonBackslash      = "backslash"
	ReasonBadEscape      = "bad-escape"
	ReasonEncodedSlash   = "encoded-slash"
	ReasonEncodedPercent = "encoded-percent"
	ReasonEncodedControl = "encoded-control"
	ReasonInvalidUTF8    = "invalid-utf8"
	ReasonDotSegment     = "dot-segment"
	ReasonPathParameter  = "path-parameter"
	ReasonFragment       = "fragment"
)

// Error is returned by Normalize for a path that is refused. The request
// should be answered with 400; Reason says why.
type Error struct {
	Reason string
}

func (e *Error) Error() string { return "route: path refused: " + e.Reason }

// One value per reason, so that refusing a path (which an attacker can make
// us do at will) costs no allocation.
var (
	errNotOriginForm  = &Error{ReasonNotOriginForm}
	errControlByte    = &Error{ReasonControlByte}
	errNonASCII       = &Error{ReasonNonASCII}
	errBackslash      = &Error{ReasonBackslash}
	errBadEscape      = &Error{ReasonBadEscape}
	errEncodedSlash   = &Error{ReasonEncodedSlash}
	errEncodedPercent = &Error{ReasonEncodedPercent}
	errEncodedControl = &Error{ReasonEncodedControl}
	errInvalidUTF8    = &Error{ReasonInvalidUTF8}
	errDotSegment     = &Error{ReasonDotSegment}
	errPathParameter  = &Error{ReasonPathParameter}
	errFragment       = &Error{ReasonFragment}
)

// Result is an accepted path.
type Result struct {
	// Path is the canonical path: the only form matched and sent upstream.
	Path string
	// JSessionID is the value of a trailing ";jsessionid=" parameter that was
	// removed from Path, or "". The caller must refuse the request unless the
	// matched route allows it.
	JSessionID string
}

// literal marks the bytes that appear unescaped in a canonical path
// segment: RFC 3986 unreserved characters plus the sub-delims, ':' and '@'
// that pchar allows, minus ';' (path parameters are refused, so ';' never
// reaches the canonical form). Every other byte is written as %XX.
var literal = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@") {
		t[c] = true
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

// Paths up to this length are decoded and re-encoded in stack buffers, so
// that the slow path costs one allocation (the result) or none.
const stackBuf = 512

// Normalize validates raw, the path of an origin-form request-target exactly
// as received (without the query), and returns its canonical form. See the
// package README for the rules; any path that is not accepted is an *Error.
//
// A path that is already canonical is returned as is, without allocating.
func Normalize(raw string) (Result, error) {
	if len(raw) == 0 || raw[0] != '/' {
		return Result{}, errNotOriginForm
	}
	// Fast path: nearly every legitimate request path consists of literal
	// characters only, with no empty or dot segments, and is its own
	// canonical form. Anything else, including every error, goes the slow
	// way so that the reason reported never depends on which path ran.
	seg := 1
	for i := 1; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '/' {
			if !literal[raw[i]] {
				return normalizeSlow(raw)
			}
			continue
		}
		switch raw[seg:i] {
		case ".", "..":
			return normalizeSlow(raw)
		case "":
			if i < len(raw) { // "//"; a trailing slash is fine
				return normalizeSlow(raw)
			}
		}
		seg = i + 1
	}
	return Result{Path: raw}, nil
}

// normalizeSlow expects raw to start with '/'.
func normalizeSlow(raw string) (Result, error) {
	// Decode every escape exactly once. A decoded byte that would change
	// the structure of the path ('/', '\', ';'), or that a second decoder
	// would act on ('%'), is refused: the upstream may decode again or split
	// on it, and then it would see a different path from the one matched.
	var decStack [stackBuf]byte
	dec := decStack[:0]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) {
				return Result{}, errBadEscape
			}
			hi, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return Result{}, errBadEscape
			}
			d := hi<<4 | lo
			switch {
			case d == '/' || d == '\\':
				return Result{}, errEncodedSlash
			case d == '%':
				return Result{}, errEncodedPercent
			case d < 0x20 || d == 0x7f:
				return Result{}, errEncodedControl
			case d == ';':
				return Result{}, errPathParameter
			}
			dec = append(dec, d)
			i += 2
		case c < 0x20 || c == 0x7f || c == ' ':
			return Result{}, errControlByte
		case c >= 0x80:
			return Result{}, errNonASCII
		case c == '\\':
			// Windows and some Java containers treat it as a separator.
			return Result{}, errBackslash
		case c == '#':
			// Never sent by a conforming client; an upstream may cut here.
			return Result{}, errFragment
		default:
			dec = append(dec, c)
		}
	}

	// Overlong forms (%c0%ae is '.') and stray bytes are how decoders that
	// are more lenient than this one get tricked into seeing a dot or slash.
	if !utf8.Valid(dec) {
		return Result{}, errInvalidUTF8
	}

	// Dot segments are refused, not resolved: resolving them would make the
	// matched path differ from what the client asked for, and a client with
	// a legitimate reason to send them does not exist. A parameter does not
	// hide one ("..;x" is ".." to Tomcat).
	for rest := dec[1:]; ; {
		end := bytes.IndexByte(rest, '/')
		s := rest
		if end >= 0 {
			s = rest[:end]
		}
		if p := bytes.IndexByte(s, ';'); p >= 0 {
			s = s[:p]
		}
		if len(s) > 0 && len(s) <= 2 && s[0] == '.' && s[len(s)-1] == '.' {
			return Result{}, errDotSegment
		}
		if end < 0 {
			break
		}
		rest = rest[end+1:]
	}

	// Every ';' left in dec was raw (an encoded one was refused above), so
	// the positions in raw and dec correspond.
	var jsession string
	if p := strings.IndexByte(raw, ';'); p >= 0 {
		v, ok := jsessionValue(raw[p+1:])
		if !ok {
			return Result{}, errPathParameter
		}
		jsession = v
		dec = dec[:bytes.IndexByte(dec, ';')]
	}

	var outStack [stackBuf]byte
	out := outStack[:0]
	for _, b := range dec {
		switch {
		case b == '/':
			if len(out) > 0 && out[len(out)-1] == '/' {
				continue // collapse empty segments
			}
			out = append(out, '/')
		case literal[b]:
			out = append(out, b)
		default:
			out = append(out, '%', upperHex[b>>4], upperHex[b&0xf])
		}
	}

	res := Result{JSessionID: jsession}
	if len(out) <= len(raw) && string(out) == raw[:len(out)] {
		// Canonical already, e.g. "/caf%C3%A9", perhaps followed by the
		// removed parameter: share the input rather than copy.
		res.Path = raw[:len(out)]
	} else {
		res.Path = string(out)
	}
	return res, nil
}

// jsessionValue accepts the text after the one raw ';' when it is exactly
// "jsessionid=VALUE" at the end of the path. Servlet containers put the
// session id there when cookies are off; it is the only path parameter with
// a real-world use, and it is taken out of the path so that it cannot
// carry anything to the upstream's path parser.
func jsessionValue(param string) (string, bool) {
	const name = "jsessionid="
	if len(param) <= len(name) || !strings.EqualFold(param[:len(name)], name) {
		return "", false
	}
	v := param[len(name):]
	if len(v) > 128 {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", false // also stops a '/', so the parameter is in the last segment
		}
	}
	return v, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
