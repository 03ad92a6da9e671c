package waf

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// crsPatterns returns every @rx pattern the CRS rule set compiles, every
// file included (paranoia 4, response rules on), as the operator sees it.
func crsPatterns(t *testing.T) []string {
	t.Helper()
	var patterns []string
	seen := map[string]bool{}
	plugins.RegisterOperator("rx", func(opts plugintypes.OperatorOptions) (plugintypes.Operator, error) {
		if !seen[opts.Arguments] {
			seen[opts.Arguments] = true
			patterns = append(patterns, opts.Arguments)
		}
		return newRx(opts)
	})
	defer plugins.RegisterOperator("rx", newRx)
	if _, err := New(Config{Paranoia: 4, ResponseInspection: boolPtr(true)}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if len(patterns) < 200 {
		t.Fatalf("only %d @rx patterns seen; the CRS has about 290", len(patterns))
	}
	return patterns
}

// TestPrefilter_SoundOnCRS checks, for every CRS pattern, that the
// prefilter lets through every value the expression matches: values
// generated from the pattern itself (random branches, repetitions, case
// and class members), the same embedded in ordinary text, and the CRS's
// own attack payload characters. A prefilter that refused one of them
// would be a WAF bypass.
func TestPrefilter_SoundOnCRS(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	filtered, checked := 0, 0
	for _, p := range crsPatterns(t) {
		if spellsNonUTF8(p) {
			continue // matched byte-wise, no prefilter
		}
		expr := "(?s)" + p
		re := regexp.MustCompile(expr)
		pre := newPrefilter(expr)
		if pre == nil {
			continue
		}
		filtered++
		tree, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			var sb strings.Builder
			generate(&sb, tree, rng)
			for _, v := range []string{sb.String(), "Customer asked " + sb.String() + " call back"} {
				if !re.MatchString(v) {
					continue // an anchor or boundary the generator did not honour
				}
				checked++
				if !pre.mayMatch(v) {
					t.Fatalf("prefilter of %q refuses %q, which the expression matches", p, v)
				}
			}
		}
	}
	if filtered < 150 || checked < 20000 {
		t.Fatalf("%d patterns with a prefilter, %d matching values checked: the generator or the analysis broke", filtered, checked)
	}
	t.Logf("%d patterns with a prefilter, %d matching values checked", filtered, checked)
}

// generate appends to sb a random string that the tree matches, anchors
// and word boundaries aside.
func generate(sb *strings.Builder, re *syntax.Regexp, rng *rand.Rand) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				// Any member of the case-fold orbit: k, K and the
				// Kelvin sign, s, S and the long s.
				for n := rng.IntN(4); n > 0; n-- {
					r = unicode.SimpleFold(r)
				}
			}
			sb.WriteRune(r)
		}
	case syntax.OpCharClass:
		n := len(re.Rune) / 2
		if n == 0 {
			return
		}
		k := rng.IntN(n)
		lo, hi := re.Rune[2*k], re.Rune[2*k+1]
		if lo <= utf8.RuneError && utf8.RuneError <= hi && rng.IntN(4) == 0 {
			sb.WriteByte(0xff) // an invalid byte reads as U+FFFD
			return
		}
		switch rng.IntN(4) {
		case 0:
			sb.WriteRune(lo)
		case 1:
			sb.WriteRune(hi)
		default:
			if hi-lo > 1000 {
				hi = lo + 1000
			}
			sb.WriteRune(lo + rune(rng.IntN(int(hi-lo)+1)))
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		sb.WriteString([]string{"a", " ", "<", "é", "\xff"}[rng.IntN(5)])
	case syntax.OpCapture:
		generate(sb, re.Sub[0], rng)
	case syntax.OpStar, syntax.OpQuest, syntax.OpPlus, syntax.OpRepeat:
		lo, hi := 0, 2
		switch re.Op {
		case syntax.OpQuest:
			hi = 1
		case syntax.OpPlus:
			lo = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 || hi > lo+2 {
				hi = lo + 2
			}
		}
		for n := lo + rng.IntN(hi-lo+1); n > 0; n-- {
			generate(sb, re.Sub[0], rng)
		}
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			generate(sb, sub, rng)
		}
	case syntax.OpAlternate:
		generate(sb, re.Sub[rng.IntN(len(re.Sub))], rng)
	}
}

func TestPrefilter_Analysis(t *testing.T) {
	for _, c := range []struct {
		expr       string
		pass, stop []string
	}{
		// The rarest required rune of a literal.
		{`select.*from`, []string{"select 1 from t"}, nil},
		{`(?i)<script`, []string{"<SCRIPT>", "a<b"}, []string{"script", "javascript:"}},
		// Every branch of an alternation counts.
		{`['"]|--`, []string{"it's", `say "x"`, "a--b"}, []string{"plain words only"}},
		// A class with a rune above ASCII passes every non-ASCII byte,
		// and an invalid byte (read as U+FFFD).
		{`[;\x{ff1b}]`, []string{"a;b", "full\uff1bwidth", "bad\xffbyte"}, []string{"no separator"}},
		// Case folding reaches non-ASCII folds (K and the Kelvin sign).
		{`(?i)\$k`, []string{"$K", "$\u212a"}, []string{"K only"}},
		// Repeats: at least one required, none means no condition.
		{`a;{2,}`, []string{"a;;"}, []string{"a"}},
		// Letters alone still say something.
		{`(?i)union`, []string{"UNION"}, []string{"1001"}},
	} {
		pre := newPrefilter("(?s)" + c.expr)
		if pre == nil {
			t.Errorf("%s: no prefilter", c.expr)
			continue
		}
		re := regexp.MustCompile("(?s)" + c.expr)
		for _, v := range c.pass {
			if !pre.mayMatch(v) {
				t.Errorf("%s: prefilter refuses %q", c.expr, v)
			}
		}
		for _, v := range c.stop {
			if re.MatchString(v) {
				t.Fatalf("%s matches %q: bad case", c.expr, v)
			}
			if pre.mayMatch(v) {
				t.Errorf("%s: prefilter passes %q, which holds no required rune", c.expr, v)
			}
		}
	}
	// No useful condition: an empty match, any rune, optional parts, or a
	// set holding every letter and digit.
	for _, expr := range []string{`a*`, `.`, `^`, `\b`, `(?:x)?`, `[^<]`, `\w`, `[a-z]|[A-Z0-9]`, `a{0,3}`} {
		if newPrefilter("(?s)"+expr) != nil {
			t.Errorf("%s: a prefilter, want none", expr)
		}
	}
}

// FuzzPrefilter checks the prefilter against Go's regexp on any pattern
// (rules files bring patterns the CRS test never sees) and any value: a
// value the expression matches must pass the prefilter.
func FuzzPrefilter(f *testing.F) {
	for _, seed := range []struct{ pattern, value string }{
		{`(?i)<script`, "<SCRIPT"},
		{`(?i)\$k`, "$\u212a"},
		{`(?i)s[;|]`, "\u017f|"},
		{`(?i)k`, "\u212a"},
		{`(?i)xs`, "X\u017f"},
		{`[^a]b`, "\xffb"},
		{`(?:x|y+)z{1,3}`, "yyz"},
		{`\bunion\b.+select`, "union all select"},
		{`(?i:a(?-i:B))|[\p{Greek}]`, "\u03a3"},
	} {
		f.Add(seed.pattern, seed.value)
	}
	f.Fuzz(func(t *testing.T, pattern, value string) {
		expr := "(?s)" + pattern
		re, err := regexp.Compile(expr)
		if err != nil || !re.MatchString(value) {
			return
		}
		if !newPrefilter(expr).mayMatch(value) {
			t.Fatalf("prefilter of %q refuses %q, which the expression matches", pattern, value)
		}
	})
}
