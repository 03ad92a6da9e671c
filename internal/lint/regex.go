package lint

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// shape is what the linter knows about a regexp from its syntax tree.
type shape struct {
	// anchored: every match starts at the beginning of the path (^ or \A,
	// in every alternative).
	anchored bool
	// lit is the literal text right after the anchor (or at the start of
	// an unanchored regexp); every match starts with it when anchored and
	// contains it otherwise.
	lit string
	// exact: the regexp matches lit and nothing else (^lit$).
	exact bool
	// anyTail: whatever follows lit, the regexp still matches (^lit,
	// ^lit.*, ^lit.*$), so it matches every path that starts with (or,
	// unanchored, contains) lit.
	anyTail bool
}

// parseShape parses expr; ok is false when it does not compile.
func parseShape(expr string) (sh shape, ok bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return shape{}, false
	}
	re = re.Simplify()
	sh.anchored = anchoredStart(re)
	items := flatten(re)
	i := 0
	if i < len(items) && isBegin(items[i]) {
		i++
	}
	var lit strings.Builder
	for i < len(items) && items[i].Op == syntax.OpLiteral && items[i].Flags&syntax.FoldCase == 0 {
		lit.WriteString(string(items[i].Rune))
		i++
	}
	sh.lit = lit.String()
	rest := items[i:]
	if n := len(rest); n > 0 && isEnd(rest[n-1]) {
		sh.exact = sh.anchored && n == 1
		rest = rest[:n-1]
		if n == 1 {
			return sh, true // ^lit$: nothing may follow
		}
	} else if n == 0 {
		sh.anyTail = true
		return sh, true
	}
	sh.anyTail = len(rest) == 1 && isAnyStar(rest[0])
	return sh, true
}

// flatten returns the parts of a concatenation in order, looking through
// capture groups and nested concatenations; any other node is one part.
func flatten(re *syntax.Regexp) []*syntax.Regexp {
	switch re.Op {
	case syntax.OpCapture:
		return flatten(re.Sub[0])
	case syntax.OpConcat:
		var out []*syntax.Regexp
		for _, s := range re.Sub {
			out = append(out, flatten(s)...)
		}
		return out
	case syntax.OpEmptyMatch:
		return nil
	}
	return []*syntax.Regexp{re}
}

// anchoredStart reports whether every match of re starts at the beginning
// of the text. ^ in (?m) mode counts: canonical paths hold no line breaks.
func anchoredStart(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginText, syntax.OpBeginLine:
		return true
	case syntax.OpCapture:
		return anchoredStart(re.Sub[0])
	case syntax.OpConcat:
		return len(re.Sub) > 0 && anchoredStart(re.Sub[0])
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !anchoredStart(s) {
				return false
			}
		}
		return len(re.Sub) > 0
	}
	return false
}

func isBegin(re *syntax.Regexp) bool {
	return re.Op == syntax.OpBeginText || re.Op == syntax.OpBeginLine
}

func isEnd(re *syntax.Regexp) bool {
	return re.Op == syntax.OpEndText || re.Op == syntax.OpEndLine
}

func isAnyStar(re *syntax.Regexp) bool {
	return re.Op == syntax.OpStar && (re.Sub[0].Op == syntax.OpAnyChar || re.Sub[0].Op == syntax.OpAnyCharNotNL)
}

// guaranteedPrefix is a prefix of every path expr can match: its literal
// when anchored, else "/" (every canonical path starts with /).
func guaranteedPrefix(sh shape) string {
	if sh.anchored && strings.HasPrefix(sh.lit, "/") {
		return sh.lit
	}
	return "/"
}

// regexCovers reports whether expr matches every path that starts with
// prefix: a deny entry written that way refuses the whole prefix.
func regexCovers(expr, prefix string) bool {
	sh, ok := parseShape(expr)
	if !ok || !sh.anyTail {
		return false
	}
	if sh.anchored {
		return strings.HasPrefix(prefix, sh.lit)
	}
	return strings.Contains(prefix, sh.lit)
}

// apparentPrefix is the literal a reader sees after the leading ^ of expr:
// in ^/api/v[0-9]+/ it is /api/v. A character made optional by ?, * or {
// is not part of it. It is "" for an expression not written with ^.
func apparentPrefix(expr string) string {
	s := expr
	if strings.HasPrefix(s, "(?") {
		end := strings.IndexByte(s, ')')
		if end < 0 || strings.ContainsAny(s[2:end], ":<") {
			return ""
		}
		s = s[end+1:]
	}
	switch {
	case strings.HasPrefix(s, "^"):
		s = s[1:]
	case strings.HasPrefix(s, `\A`):
		s = s[2:]
	default:
		return ""
	}
	var out []rune
	for s != "" {
		r, size := utf8.DecodeRuneInString(s)
		if r == '\\' && len(s) > 1 {
			next, nsize := utf8.DecodeRuneInString(s[1:])
			if next < utf8.RuneSelf && (next >= 'a' && next <= 'z' || next >= 'A' && next <= 'Z' || next >= '0' && next <= '9') {
				break // \d, \w, \b ...: not a literal
			}
			out = append(out, next)
			s = s[1+nsize:]
			continue
		}
		if strings.ContainsRune(`.+*?()|[]{}^$`, r) {
			if strings.ContainsRune("?*{", r) && len(out) > 0 {
				out = out[:len(out)-1]
			}
			break
		}
		out = append(out, r)
		s = s[size:]
	}
	return string(out)
}

// escapeProbes are paths that no regex route with a literal prefix longer
// than "/" should match unless it means to: the root and paths with
// nothing in common with any application.
var escapeProbes = []string{"/", "/zqxw", "/zqxw/", "/zqxw/ykv/index.html", "/zq9x", "/zq9x/y7/z.json", "/zq-9_x.json"}

// regexes applies the regex rules to every regex route. A route that
// matches everything is already reported as regex-matches-everything and
// skipped here.
func (l *linter) regexes() {
	for i, s := range l.cfg.Sites {
		for j, r := range s.Routes {
			if r.Regex == "" || isConfigRegexAll(r) {
				continue
			}
			key := p("sites", i, "routes", j, "regex")
			re, err := regexp.Compile(r.Regex)
			sh, ok := parseShape(r.Regex)
			if err != nil || !ok {
				continue
			}
			switch {
			case !sh.anchored:
				l.report(RuleRegexAnchor, key, "%q is not anchored with ^: it matches anywhere in the path, so any path that merely contains a match (/x/y%s) is let through too", r.Regex, sampleSuffix(sh.lit))
			case sh.lit != "" && !strings.HasPrefix(sh.lit, "/"):
				l.report(RuleRegexNever, key, "%q requires the path to start with %q, but canonical paths always start with /: the route never matches", r.Regex, sh.lit)
			default:
				a := apparentPrefix(r.Regex)
				if len(a) <= 1 {
					continue
				}
				for _, probe := range escapeProbes {
					if !strings.HasPrefix(probe, a) && re.MatchString(probe) {
						l.report(RuleRegexEscape, key, "%q starts with ^%s but also matches %s: an alternative or optional group is not bound to the prefix", r.Regex, a, probe)
						break
					}
				}
			}
		}
	}
}

// sampleSuffix renders the literal of an unanchored regexp for a message.
func sampleSuffix(lit string) string {
	if lit == "" {
		return "/..."
	}
	if !strings.HasPrefix(lit, "/") {
		lit = "/" + lit
	}
	return lit
}
