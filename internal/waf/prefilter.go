package waf

import (
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// A prefilter is a necessary condition for a pattern to match: every match
// of the pattern contains at least one rune of a set the pattern's syntax
// tree proves. A value with none of those runes cannot match, and the
// regular expression is not run on it at all.
//
// It pays because most CRS patterns need a character that ordinary values
// do not carry (a quote, '<', ';', '|', '$', a backslash, a parenthesis…),
// while Go's regexp must scan the whole value to say "no": a 64 KiB form of
// plain sentences went through every @rx rule of CRS for nothing.
//
// The set is kept as a byte table: an ASCII rune of the set marks its
// byte; any rune of the set at or above U+0080 (U+FFFD included, which is
// what an invalid byte reads as) marks every byte from 0x80, since the
// UTF-8 of such a rune consists of those bytes only. Scanning the value's
// bytes is therefore exact for ASCII and conservative above it. The same
// type holds the sets while the syntax tree is walked.
type prefilter struct {
	bytes [256]bool
}

// mayMatch reports whether v holds a byte of the set. It is false only
// when the pattern cannot match v.
func (s *prefilter) mayMatch(v string) bool {
	if s == nil {
		return true
	}
	for i := 0; i < len(v); i++ {
		if s.bytes[v[i]] {
			return true
		}
	}
	return false
}

// newPrefilter returns the prefilter of the pattern, parsed as
// regexp.Compile parses it, or nil when the pattern proves no useful set
// (it can match the empty string, or a match may consist of any rune).
func newPrefilter(expr string) *prefilter {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	set := required(re)
	if set == nil || set.hasEveryAlphanumeric() {
		// Nearly every value holds a letter or a digit of such a set:
		// scanning for it would only add work.
		return nil
	}
	return set
}

func (s *prefilter) addRune(r rune) {
	if r < utf8.RuneSelf {
		s.bytes[r] = true
		return
	}
	for b := utf8.RuneSelf; b < 256; b++ {
		s.bytes[b] = true
	}
}

func (s *prefilter) addRange(lo, hi rune) {
	for r := lo; r <= hi && r < utf8.RuneSelf; r++ {
		s.bytes[r] = true
	}
	if hi >= utf8.RuneSelf {
		s.addRune(utf8.RuneSelf)
	}
}

// addFolded adds r and, when fold is set, every rune case-folding to it.
func (s *prefilter) addFolded(r rune, fold bool) {
	s.addRune(r)
	if !fold {
		return
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		s.addRune(f)
	}
}

func (s *prefilter) union(o *prefilter) {
	for i, v := range o.bytes {
		s.bytes[i] = s.bytes[i] || v
	}
}

func (s *prefilter) hasEveryAlphanumeric() bool {
	for b := range utf8.RuneSelf {
		if (b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') && !s.bytes[b] {
			return false
		}
	}
	return true
}

// cost weighs a set by how often ordinary request values carry its bytes,
// so that the choice between two necessary sets falls on the one ordinary
// values do not carry.
func (s *prefilter) cost() int {
	c := 0
	for b, in := range s.bytes {
		if !in {
			continue
		}
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == ' ':
			c += 100 // in nearly every value
		case b == '.' || b == '-' || b == '_' || b == ',' || b == '/' || b == ':' || b == '=' || b == '%' || b == '+':
			c += 20 // common in paths, dates, tokens and encoded values
		case b >= utf8.RuneSelf:
			c += 1 // non-ASCII: one mark per byte, 128 of them
		default:
			c += 5 // the punctuation attacks are made of
		}
	}
	return c
}

// required returns a set such that every match of re contains a rune of
// it, or nil when re proves none (re may match the empty string, or a
// match may consist of runes the walk does not bound).
func required(re *syntax.Regexp) *prefilter {
	switch re.Op {
	case syntax.OpLiteral:
		// Every rune of a literal is required: take the rarest.
		fold := re.Flags&syntax.FoldCase != 0
		var best *prefilter
		for _, r := range re.Rune {
			var s prefilter
			s.addFolded(r, fold)
			if best == nil || s.cost() < best.cost() {
				best = &s
			}
		}
		return best
	case syntax.OpCharClass:
		var s prefilter
		for i := 0; i+1 < len(re.Rune); i += 2 {
			s.addRange(re.Rune[i], re.Rune[i+1])
		}
		return &s
	case syntax.OpCapture:
		return required(re.Sub[0])
	case syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
		return nil
	case syntax.OpConcat:
		// Each part's match is a substring of the whole: any part's set
		// is necessary. Take the rarest.
		var best *prefilter
		for _, sub := range re.Sub {
			if s := required(sub); s != nil && (best == nil || s.cost() < best.cost()) {
				best = s
			}
		}
		return best
	case syntax.OpAlternate:
		// A match is a match of one branch: every branch must prove a
		// set, and the union is necessary.
		var all prefilter
		for _, sub := range re.Sub {
			s := required(sub)
			if s == nil {
				return nil
			}
			all.union(s)
		}
		return &all
	default:
		// OpAnyChar, OpAnyCharNotNL: any rune; OpStar, OpQuest, OpEmptyMatch,
		// anchors and word boundaries: may match the empty string;
		// OpNoMatch: never matches, nothing to gain.
		return nil
	}
}
