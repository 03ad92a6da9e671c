package waf

import (
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3"
)

// rxMatches runs a bare Coraza with one capturing @rx rule on the query
// argument v (URL-encoded) and reports whether it matched and its TX.1.
func rxMatches(t *testing.T, pattern, value string) (matched bool, tx1 string) {
	t.Helper()
	cw, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(`SecRuleEngine On
SecRule ARGS_GET:v "@rx ` + pattern + `" "id:1,phase:1,pass,log,capture,msg:'TX.1=%{TX.1}'"
`))
	if err != nil {
		t.Fatal(err)
	}
	tx := cw.NewTransaction()
	defer func() { _ = tx.Close() }()
	tx.ProcessURI("/?v="+value, "GET", "HTTP/1.1")
	tx.ProcessRequestHeaders()
	for _, mr := range tx.MatchedRules() {
		if mr.Rule().ID() == 1 {
			return true, strings.TrimPrefix(mr.Message(), "TX.1=")
		}
	}
	return false, ""
}

func TestRx_Semantics(t *testing.T) {
	for _, c := range []struct {
		name, pattern, value string // value is URL-encoded
		match                bool
		tx1                  string
	}{
		{"not multiline: ^ is the start of the value", `^b`, "a%0Ab", false, ""},
		{"not multiline: $ is the end of the value", `a$`, "a%0Ab", false, ""},
		{"dot matches newline", `a.(b)`, "a%0Ab", true, "b"},
		{"capture", `(?i)un(ion)\s+select`, "1%20UNION%20SELECT%202", true, "ION"},
		{"capture of a group that did not take part", `a(x)?(b)`, "ab", true, ""},
		{"CRS sets multiline itself", `(?m)^b`, "a%0Ab", true, ""},
		// An invalid byte reads as U+FFFD, so a payload cannot hide
		// behind one.
		{"across an invalid UTF-8 byte", `(?i)union.+(select)`, "UNION%FF%20SELECT", true, "SELECT"},
		{"invalid UTF-8, no match", `(?i)union\s+select`, "%FFselect", false, ""},
		// A pattern that spells non-UTF-8 bytes matches byte-wise (CRS
		// 944210: a Java serialisation header).
		{"byte pattern", `\xac\xed\x00\x05`, "%AC%ED%00%05", true, ""},
		{"byte pattern, no match", `\xac\xed\x00\x05`, "%C2%AC%C3%AD", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, tx1 := rxMatches(t, c.pattern, c.value)
			if m != c.match || tx1 != c.tx1 {
				t.Errorf("@rx %s on %s: match %v TX.1 %q, want %v %q", c.pattern, c.value, m, tx1, c.match, c.tx1)
			}
		})
	}
}

func TestRx_SpellsNonUTF8(t *testing.T) {
	for expr, want := range map[string]bool{
		`abc`:                          false,
		`\x41\x42`:                     false,
		`\xc3\xa9`:                     false, // the UTF-8 of é
		`\xac\xed\x00\x05`:             true,
		`\x{e2}\x80[\x98\x99]`:         true,
		`[\x{c2}\x{b4}]`:               false,
		`\\xff`:                        false, // an escaped backslash, then "xff"
		`(?i)caf\x{c3}\x{a9}|\xff$`:    true,
		`trailing \x`:                  false,
		`\x{zz} not an escape \x4`:     false,
		`ü literal non-ASCII is UTF-8`: false,
	} {
		if got := spellsNonUTF8(expr); got != want {
			t.Errorf("spellsNonUTF8(%q) = %v, want %v", expr, got, want)
		}
	}
}
