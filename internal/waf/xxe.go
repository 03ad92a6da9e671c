package waf

import (
	"bytes"
	"strings"
)

// XXE: CRS has no rule against XML external entities, and the upstreams
// behind rampart (Java services such as Finesse) parse XML with parsers
// that may resolve them. No legitimate API request declares a document
// type, so an XML body that contains "<!DOCTYPE" or "<!ENTITY" anywhere
// (case-insensitive, whitespace allowed after "<!") is refused with reason
// "xxe" before the rules run.
//
// A body is XML when its Content-Type contains "xml" or when, after
// whitespace and a byte order mark, it starts with "<". UTF-16 and UTF-32
// bodies (recognised by a BOM or by NUL bytes around the first "<") are
// examined with the NUL bytes removed, so that changing the encoding does
// not hide the declaration.

// isXML reports whether a body with this Content-Type and these first bytes
// is to be treated as XML.
func isXML(contentType string, body []byte) bool {
	if containsFold(contentType, "xml") {
		return true
	}
	b := bytes.TrimLeft(body, " \t\r\n\x00\xef\xbb\xbf\xfe\xff")
	return len(b) > 0 && b[0] == '<'
}

// declaresDTD reports whether an XML body contains a DOCTYPE or ENTITY
// declaration.
func declaresDTD(body []byte) bool {
	if wideEncoding(body) {
		body = bytes.ReplaceAll(body, []byte{0}, nil)
	}
	for i := 0; i < len(body); {
		j := bytes.Index(body[i:], []byte("<!"))
		if j < 0 {
			return false
		}
		rest := bytes.TrimLeft(body[i+j+2:], " \t\r\n")
		if hasPrefixFold(rest, "doctype") || hasPrefixFold(rest, "entity") {
			return true
		}
		i += j + 2
	}
	return false
}

// wideEncoding recognises UTF-16 and UTF-32 by their byte order marks or by
// a NUL byte next to the first "<".
func wideEncoding(b []byte) bool {
	if bytes.HasPrefix(b, []byte{0xfe, 0xff}) || bytes.HasPrefix(b, []byte{0xff, 0xfe}) ||
		bytes.HasPrefix(b, []byte{0, 0, 0xfe, 0xff}) {
		return true
	}
	i := bytes.IndexByte(b, '<')
	return i >= 0 && ((i > 0 && b[i-1] == 0) || (i+1 < len(b) && b[i+1] == 0))
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
