package waf

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"rsc.io/binaryregexp"
)

// The @rx operator, replacing Coraza's. Same engine (Go's regexp), two
// differences, both measured:
//
//   - Coraza asks for the submatch positions of every value whenever the
//     rule has the capture action, which most CRS rules have. Nearly every
//     value does not match, and Go's regexp says "no match" faster when it
//     does not track groups, so this operator asks MatchString first and
//     computes the groups only for a value that matches.
//   - A pattern P is compiled as (?s)P (dot matches a newline, as in
//     ModSecurity), not Coraza's default (?sm)P: CRS 4 is written for
//     non-multiline ^ and $ and sets (?m) itself where it wants it; the
//     multiline default also defeats the anchored-match shortcut. (Coraza's
//     build tag coraza.rule.no_regex_multiline does the same for its own
//     operator; here no tag is needed, so no build can forget it.)
//
// As in Coraza, a pattern whose escapes spell bytes that are not UTF-8
// (\xac\xed\x00\x05: CRS 942 and 944 have a few) is matched byte-wise by
// rsc.io/binaryregexp, compiled as written, and with the rule's capture
// action groups 0..8 go to TX.0..TX.8. Compiled patterns are shared through
// Coraza's memoizer, so the same pattern in several rules or WAFs is
// compiled once.
func init() {
	plugins.RegisterOperator("rx", newRx)
}

// matcher is the part of the regexp API the operator needs; *regexp.Regexp
// and *binaryregexp.Regexp both have it.
type matcher interface {
	MatchString(s string) bool
	FindStringSubmatchIndex(s string) []int
}

type rx struct {
	re  matcher
	pre *prefilter // nil: run the expression on every value
}

func newRx(opts plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	key, compile := "rampart-rx:(?s)"+opts.Arguments, func() (any, error) {
		expr := "(?s)" + opts.Arguments
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, err
		}
		return &rx{re: re, pre: newPrefilter(expr)}, nil
	}
	if spellsNonUTF8(opts.Arguments) {
		key, compile = "rampart-rx-bytes:"+opts.Arguments, func() (any, error) {
			re, err := binaryregexp.Compile(opts.Arguments)
			if err != nil {
				return nil, err
			}
			return &rx{re: re}, nil
		}
	}
	o, err := memoize(opts.Memoizer, key, compile)
	if err != nil {
		return nil, err
	}
	return o.(*rx), nil
}

func (o *rx) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if !o.pre.mayMatch(value) || !o.re.MatchString(value) {
		return false
	}
	if !tx.Capturing() {
		return true
	}
	m := o.re.FindStringSubmatchIndex(value)
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
	return true
}

func memoize(m plugintypes.Memoizer, key string, fn func() (any, error)) (any, error) {
	if m == nil {
		return fn()
	}
	return m.Do(key, fn)
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
