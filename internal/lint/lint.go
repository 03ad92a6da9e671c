// Package lint is `rampart check`: it reads a loaded config the way an
// attacker would and reports every setting that weakens the proxy, each as a
// Finding with a stable rule id, a severity, the line and key it is about, a
// message and a hint at the fix. Errors make `check` exit 1; warnings and
// info do not.
//
// The rules, why each matters and how to fix what it reports are listed in
// README.md in this directory.
package lint

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
)

// Severity says what a finding means for the config.
type Severity string

// The severities, most serious first.
const (
	// Error: the config must not be used as it is; `check` exits 1.
	Error Severity = "error"
	// Warning: a secure default is weakened or a setting does not do what
	// it appears to do.
	Warning Severity = "warning"
	// Info: worth a look, often intended.
	Info Severity = "info"
)

// Finding is one problem in a config.
type Finding struct {
	Rule     string   `json:"rule"`     // stable id, e.g. "tls-session-tickets"
	Severity Severity `json:"severity"` // error, warning or info
	Line     int      `json:"line"`     // 0 when the problem has no place in the file
	Key      string   `json:"key"`      // e.g. "sites[0].routes[2].regex"
	Message  string   `json:"message"`  // what is wrong and why it matters
	Fix      string   `json:"fix"`      // what to write instead
}

func (f Finding) String() string {
	var b strings.Builder
	if f.Line > 0 {
		b.WriteString("line " + strconv.Itoa(f.Line) + ": ")
	}
	f.writeBody(&b)
	return b.String()
}

// writeBody writes what follows the position: severity, rule, key, message
// and fix.
func (f Finding) writeBody(b *strings.Builder) {
	fmt.Fprintf(b, "%s[%s]: ", f.Severity, f.Rule)
	if f.Key != "" {
		b.WriteString(f.Key + ": ")
	}
	b.WriteString(f.Message)
	if f.Fix != "" {
		b.WriteString(" (fix: " + f.Fix + ")")
	}
}

// Options changes how Run judges a config; the zero value is what `rampart
// check` uses.
type Options struct {
	// Now is the time certificates are judged at; zero means time.Now().
	Now time.Time
}

// Run applies every rule to cfg, a config that loaded without errors, and
// returns the findings in file order.
func Run(cfg *config.Config, opts Options) []Finding {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	l := &linter{cfg: cfg, now: opts.Now}
	l.weakenedDefaults()
	l.tlsPolicy()
	l.upstreams()
	l.routes()
	l.regexes()
	l.loginRateLimits()
	l.webSockets()
	l.caches()
	l.clientIP()
	l.certificates()
	l.keyFiles()
	l.cacheDir()
	Sort(l.out)
	return l.out
}

// Sort orders findings by line, then severity (errors first), then rule
// and key, so that the output of two runs on the same file is the same.
func Sort(fs []Finding) {
	rank := map[Severity]int{Error: 0, Warning: 1, Info: 2}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if rank[a.Severity] != rank[b.Severity] {
			return rank[a.Severity] < rank[b.Severity]
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Key < b.Key
	})
}

// Summary counts findings by severity.
type Summary struct {
	Error   int `json:"error"`
	Warning int `json:"warning"`
	Info    int `json:"info"`
}

// Count returns the number of findings of each severity.
func Count(fs []Finding) Summary {
	var s Summary
	for _, f := range fs {
		switch f.Severity {
		case Error:
			s.Error++
		case Warning:
			s.Warning++
		case Info:
			s.Info++
		}
	}
	return s
}

// linter collects the findings of one run.
type linter struct {
	cfg *config.Config
	now time.Time
	out []Finding
}

// report adds a finding of rule id with the rule's severity and fix.
func (l *linter) report(id string, path []any, format string, args ...any) {
	r := ruleByID(id)
	l.add(id, r.Severity, path, r.Fix, fmt.Sprintf(format, args...))
}

// add adds a finding with an explicit severity and fix.
func (l *linter) add(id string, sev Severity, path []any, fix, msg string) {
	l.out = append(l.out, Finding{
		Rule:     id,
		Severity: sev,
		Line:     l.cfg.Line(path...),
		Key:      config.KeyString(path...),
		Message:  msg,
		Fix:      fix,
	})
}

func p(path ...any) []any { return path }

// parseKey is the inverse of keyString; ok is false for text that is not a
// key path.
func parseKey(s string) (path []any, ok bool) {
	if s == "" {
		return nil, false
	}
	for _, part := range strings.Split(s, ".") {
		name, rest, bracket := strings.Cut(part, "[")
		if !isKeyName(name) || bracket && rest == "" {
			return nil, false
		}
		path = append(path, name)
		for rest != "" {
			num, after, found := strings.Cut(rest, "]")
			n, err := strconv.Atoi(num)
			if !found || err != nil || n < 0 {
				return nil, false
			}
			path = append(path, n)
			if after == "" {
				break
			}
			if !strings.HasPrefix(after, "[") {
				return nil, false
			}
			rest = after[1:]
		}
	}
	return path, true
}

func isKeyName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
