package waf

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	re2 "github.com/wasilibs/go-re2"
	"rsc.io/binaryregexp"
)

// The @rx operator, replacing Coraza's (which is Go's regexp).
//
// Go's regexp has no DFA: CRS's large, case-insensitive alternations run on
// its backtracker or its NFA simulation, about 3 µs per value per rule, and
// that was about half the CPU of a request. RE2 (github.com/wasilibs/go-re2:
// the C++ library compiled to WebAssembly and then to plain Go source with
// wasm2go, so no cgo, no code generated at run time, nothing that
// MemoryDenyWriteExecute or the sandbox forbid) matches the same syntax with
// a lazy DFA, about eight times faster on CRS's patterns.
//
// Semantics, per pattern P of a rule:
//   - P is compiled as (?s)P: dot matches a newline, as in ModSecurity. Not
//     (?sm), Coraza's default: CRS 4 is written for non-multiline ^ and $ and
//     sets (?m) itself where it wants it (Coraza's build tag
//     coraza.rule.no_regex_multiline does the same for its own operator).
//   - A value that is not valid UTF-8 is matched by Go's regexp instead,
//     compiled from the same (?s)P: RE2 stops reading at an
//     invalid byte, which would let a payload hide behind one, while Go's
//     regexp reads each invalid byte as U+FFFD, as Coraza always has.
//   - A pattern that spells bytes which are not UTF-8 (\xac\xed\x00\x05,
//     CRS 944 and 942 have a few) is matched byte-wise by
//     rsc.io/binaryregexp and compiled as written, exactly as Coraza does.
//   - With the rule's capture action, groups 0..8 go to TX.0..TX.8.
//
// Compiled patterns are shared through Coraza's memoizer, so the same
// pattern in several rules or several WAFs is compiled once.
func init() {
	plugins.RegisterOperator("rx", newRx)
}

// matcher is the part of the regexp API the operator needs; *re2.Regexp,
// *regexp.Regexp and *binaryregexp.Regexp all have it.
type matcher interface {
	MatchString(s string) bool
	FindStringSubmatchIndex(s string) []int
}

type rx struct {
	re  matcher        // RE2, or binaryregexp for a byte pattern
	std *regexp.Regexp // Go's regexp, for values that are not UTF-8; nil for a byte pattern
}

func newRx(opts plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	if spellsNonUTF8(opts.Arguments) {
		re, err := memoize(opts.Memoizer, "rampart-rx-bytes:"+opts.Arguments, func() (any, error) {
			return binaryregexp.Compile(opts.Arguments)
		})
		if err != nil {
			return nil, err
		}
		return &rx{re: re.(*binaryregexp.Regexp)}, nil
	}
	expr := "(?s)" + opts.Arguments
	v, err := memoize(opts.Memoizer, "rampart-rx:"+expr, func() (any, error) {
		// Go's regexp validates the pattern (the rule set must not load
		// with a pattern the fallback could not compile) and is kept for
		// the fallback; RE2 compiles the same syntax.
		std, err := regexp.Compile(expr)
		if err != nil {
			return nil, err
		}
		re, err := re2.Compile(expr)
		if err != nil {
			return nil, err
		}
		return &rx{re: re, std: std}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*rx), nil
}

func memoize(m plugintypes.Memoizer, key string, fn func() (any, error)) (any, error) {
	if m == nil {
		return fn()
	}
	return m.Do(key, fn)
}

func (o *rx) Evaluate(tx plugintypes.TransactionState, value string) bool {
	re := o.re
	if o.std != nil && !utf8.ValidString(value) {
		re = o.std
	}
	if !tx.Capturing() {
		return re.MatchString(value)
	}
	m := re.FindStringSubmatchIndex(value)
	if m == nil {
		return false
	}
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
	return true
}

// spellsNonUTF8 reports whether the pattern's \xHH and \x{HH} escapes,
// read as bytes together with the rest of the pattern, do not form UTF-8:
// the pattern is then meant byte-wise (Coraza's rule for choosing its byte
// matcher).
func spellsNonUTF8(expr string) bool {
	if !strings.Contains(expr, `\x`) {
		return false
	}
	b := make([]byte, 0, len(expr))
	for i := 0; i < len(expr); i++ {
		if expr[i] == '\\' && i+1 < len(expr) && expr[i+1] == '\\' {
			b = append(b, '\\', '\\')
			i++
			continue
		}
		if hex, n := hexEscape(expr[i:]); n > 0 {
			if v, err := strconv.ParseUint(hex, 16, 8); err == nil {
				b = append(b, byte(v))
				i += n - 1
				continue
			}
		}
		b = append(b, expr[i])
	}
	return !utf8.Valid(b)
}

// hexEscape returns the digits and the length of a \xHH or \x{HH} escape
// at the start of s.
func hexEscape(s string) (string, int) {
	if len(s) < 4 || s[0] != '\\' || s[1] != 'x' {
		return "", 0
	}
	if s[2] == '{' {
		if end := strings.IndexByte(s, '}'); end > 3 {
			return s[3:end], end + 1
		}
		return "", 0
	}
	return s[2:4], 4
}
