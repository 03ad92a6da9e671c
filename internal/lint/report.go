package lint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/rampart-proxy/rampart/internal/config"
)

// Report is the outcome of `rampart check` on one file.
type Report struct {
	File     string    `json:"file"`
	SHA256   string    `json:"sha256"`
	Sites    int       `json:"-"`
	Findings []Finding `json:"findings"`
	Summary  Summary   `json:"summary"`
}

// NewReport sorts findings and counts them.
func NewReport(file, sha256 string, sites int, findings []Finding) *Report {
	if findings == nil {
		findings = []Finding{}
	}
	Sort(findings)
	return &Report{File: file, SHA256: sha256, Sites: sites, Findings: findings, Summary: Count(findings)}
}

// WriteText prints one line per finding,
//
//	FILE:LINE: warning[rule-id]: key: message (fix: hint)
//
// then the summary line
//
//	FILE: ok, N site(s), N error(s), N warning(s), N info, sha256 X
//
// ("failed" instead of "ok" when there are errors).
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(r.File)
		if f.Line > 0 {
			fmt.Fprintf(&b, ":%d", f.Line)
		}
		b.WriteString(": ")
		f.writeBody(&b)
		b.WriteByte('\n')
	}
	status := "ok"
	if r.Summary.Error > 0 {
		status = "failed"
	}
	fmt.Fprintf(&b, "%s: %s, %d site(s), %d error(s), %d warning(s), %d info, sha256 %s\n",
		r.File, status, r.Sites, r.Summary.Error, r.Summary.Warning, r.Summary.Info, r.SHA256)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report as one JSON document:
//
//	{"file": …, "sha256": …, "findings": [{"rule", "severity", "line", "key", "message", "fix"}],
//	 "summary": {"error": n, "warning": n, "info": n}}
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// LoadFindings turns the error of config.Load into config-error findings,
// one per problem.
func LoadFindings(err error) []Finding {
	var es config.Errors
	if !errors.As(err, &es) {
		var e *config.Error
		if errors.As(err, &e) {
			es = config.Errors{e}
		}
	}
	fix := ruleByID(RuleConfigError).Fix
	if len(es) == 0 {
		return []Finding{{Rule: RuleConfigError, Severity: Error, Message: err.Error(), Fix: fix}}
	}
	out := make([]Finding, 0, len(es))
	for _, e := range es {
		out = append(out, Finding{Rule: RuleConfigError, Severity: Error, Line: e.Line, Key: e.Key, Message: e.Msg, Fix: fix})
	}
	return out
}

// leadingKey matches a key path, optionally followed by a parenthesised
// note, at the start of an error message: "sites[0] (app.test): ".
var leadingKey = regexp.MustCompile(`^([A-Za-z0-9_.\[\]-]+)(?: \([^)]*\))?: `)

// BuildFinding turns an error of building what serve builds (TLS policy,
// pipeline) into a build-error finding. Key paths at the start of the
// message ("sites[0] (app.test): routes[2]: waf: ...") become its key and
// line; a site's host name among them stands for the site.
func BuildFinding(cfg *config.Config, err error) Finding {
	msg := err.Error()
	var path []any
	for {
		m := leadingKey.FindStringSubmatch(msg)
		if m == nil {
			break
		}
		if i := siteIndex(cfg, m[1]); i >= 0 {
			if len(path) == 0 {
				path = p("sites", i)
			}
		} else if k, ok := parseKey(m[1]); ok && (len(path) > 0 || isTopKey(k[0])) {
			path = append(path, k...)
		} else {
			break
		}
		msg = msg[len(m[0]):]
	}
	line := 0
	if len(path) > 0 {
		line = cfg.Line(path...)
	}
	return Finding{Rule: RuleBuildError, Severity: Error, Line: line, Key: config.KeyString(path...), Message: msg, Fix: ruleByID(RuleBuildError).Fix}
}

func siteIndex(cfg *config.Config, host string) int {
	for i, s := range cfg.Sites {
		if s.Host == host {
			return i
		}
	}
	return -1
}

// topKeys are the keys a config file may have at its top level.
var topKeys = map[string]bool{
	"listen": true, "listeners": true, "admin": true, "tls": true, "limits": true, "log": true, "sites": true,
	"trusted_proxies": true, "client_ip": true, "exempt": true, "rate_limits": true, "state": true,
	"user": true, "group": true, "sandbox": true,
}

func isTopKey(k any) bool { s, ok := k.(string); return ok && topKeys[s] }

// explainedBy names, for the lint rules whose errors serve would also hit
// at start, the text of that start error. A build error that one of these
// findings already explains is not reported twice.
var explainedBy = map[string]string{
	RuleKeyWorld: "world-readable",
	RuleRouteDup: "listed twice",
}

// Explained reports whether an error finding among fs already says what
// err, a build error, says.
func Explained(fs []Finding, err error) bool {
	for _, f := range fs {
		if text := explainedBy[f.Rule]; f.Severity == Error && text != "" && strings.Contains(err.Error(), text) {
			return true
		}
	}
	return false
}
