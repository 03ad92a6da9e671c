package waf

import (
	"io/fs"
	"path"
	"regexp"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// rulesFS is the CRS as embedded by coraza-coreruleset, with the logdata
// action taken out of its rules.
//
// Coraza expands a rule's logdata macro ("Matched Data: %{TX.0} found
// within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}") on every evaluation of the
// rule, matched or not, so that %{rule.logdata} can be read (no CRS rule
// reads it): about 5% of the CPU of a GET through the WAF. rampart never
// shows it: the security event takes the matched part of the request from
// the match data itself (variable, key and value, masked and truncated;
// attrs.go), so the expansion is work thrown away. Every CRS logdata
// action stands alone on its line ("logdata:'…',\"), and the line goes
// whole; a rule without it still logs, scores and blocks the same.
var rulesFS fs.FS = crsFS{coreruleset.FS}

type crsFS struct{ fs.FS }

// logdataLine is one physical line holding only a logdata action; the
// value cannot reach past its line.
var logdataLine = regexp.MustCompile(`(?m)^[ \t]*logdata:'[^'\r\n]*',\\\r?\n`)

// ReadFile is what Coraza's Include reads the rule files with.
func (c crsFS) ReadFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(c.FS, name)
	if err != nil {
		return nil, err
	}
	if m, _ := path.Match("@owasp_crs/*.conf", name); m {
		b = logdataLine.ReplaceAll(b, nil)
	}
	return b, nil
}
