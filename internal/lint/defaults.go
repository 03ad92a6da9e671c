package lint

import (
	"regexp"
	"slices"
	"strings"

	"github.com/rampart-proxy/rampart/internal/config"
)

// warningRules maps the key of a config.Warning, with its indices blanked,
// to the rule that reports it.
var warningRules = map[string]string{
	"tls.session_tickets":  RuleTLSTickets,
	"admin.listen":         RuleAdminListen,
	"sandbox":              RuleSandboxOff,
	"limits.body_min_rate": RuleBodyRateOff,
	"sites[].upstream.tls.insecure_skip_verify": RuleUpInsecure,
	"sites[].upstream.targets[]":                RuleUpPlainHTTP,
	"sites[].headers.hsts":                      RuleHSTSOff,
	"sites[].headers.frame_options":             RuleFrameOff,
	"sites[].headers.content_type_options":      RuleNosniffOff,
	"sites[].routes[].regex":                    RuleRegexAll,
	"sites[].routes[].allow_jsessionid":         RuleJSessionID,
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// weakenedDefaults reports every config.Warning under its rule. A warning
// the config package adds later, and this table does not know yet, is
// still reported, as config-warning.
func (l *linter) weakenedDefaults() {
	for _, w := range l.cfg.Warnings() {
		id, ok := warningRules[indexRE.ReplaceAllString(w.Key, "[]")]
		if !ok {
			id = RuleConfigWarn
		}
		r := ruleByID(id)
		l.out = append(l.out, Finding{Rule: id, Severity: r.Severity, Line: w.Line, Key: w.Key, Message: w.Msg, Fix: r.Fix})
	}
}

// tlsPolicy reports TLS settings that are allowed but worth a look; session
// tickets are a config.Warning.
func (l *linter) tlsPolicy() {
	t := l.cfg.TLS
	if !slices.Contains(t.Versions, "1.3") {
		l.report(RuleTLSNo13, p("tls", "versions"), "only TLS %s is offered: clients that can do TLS 1.3 get the older handshake (no encrypted certificate, one more round trip)", strings.Join(t.Versions, ", "))
	} else if len(t.Ciphers) > 0 && !slices.Contains(t.Versions, "1.2") {
		l.report(RuleTLSCiphers, p("tls", "ciphers"), "only TLS 1.3 is offered and its suites are fixed: the listed TLS 1.2 ciphers are never used")
	}
	if t.ClientAuth == "request" {
		l.report(RuleTLSClientOpt, p("tls", "client_auth"), "client certificates are requested but not required: a client without one is let through like any other")
	}
}

// isConfigRegexAll is the test config.Warnings uses for regex-matches-everything;
// the other regex and route rules skip such a route, already reported.
func isConfigRegexAll(r config.Route) bool {
	return r.Regex != "" && config.RegexMatchesEverything(r.Regex)
}
