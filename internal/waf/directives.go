package waf

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// methodRuleID is CRS's method allowlist rule. rampart's router enforces a
// per-route method allowlist before the WAF runs and answers 405 itself, so
// the rule is removed: two allowlists would disagree (CRS allows only
// GET HEAD POST OPTIONS by default, while Finesse needs PUT on
// /finesse/api/User/...), and the router's is the one that knows the route.
const methodRuleID = 911100

// argumentsLimit is Coraza's recommended bound on the arguments kept from
// each source (query, path, body); a request with more is refused with 400.
const argumentsLimit = 1000

// directives renders the SecLang for cfg (already merged with Defaults).
// before is inserted after the CRS setup file and before the CRS rules (the
// place for runtime tx settings); extra is the content of rules_file.
//
// The order matters:
//  1. Coraza's recommended base (body processors for XML and JSON by
//     Content-Type, body parse errors refused with 400).
//  2. Engine limits, which override the base.
//  3. CRS setup, then our paranoia and thresholds (CRS 901 only sets the
//     variables that are still unset).
//  4. Route-scoped exclusions as phase 1 ctl rules, before the CRS rules so
//     that they run first.
//  5. The rules_file, except its directives that modify rules defined
//     earlier: custom rules, tx settings (allowed content types, argument
//     limits) and runtime ctl exclusions belong before the CRS rules.
//  6. The CRS rules, then configure-time changes of them: the method rule,
//     exclusions without routes and the rule-modifying directives of the
//     rules_file (SecRuleRemoveBy*, SecRuleUpdateTargetBy*,
//     SecRuleUpdateActionById).
//  7. The engine mode, last, so that a rules_file cannot override it.
func directives(cfg Config, before, extra string) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}

	line("Include @coraza.conf-recommended")
	// Hardening from the newer Coraza base than the one CRS ships: refuse
	// URIs that do not parse, and bound the number of arguments (which also
	// bounds the rule evaluations one request can cause; a payload pushed
	// past the limit would otherwise go unseen).
	line(`SecRule URI_PARSE_ERROR "@eq 1" "id:200009,phase:1,t:none,log,deny,status:400,msg:'URI failed to parse.'"`)
	line("SecArgumentsLimit %d", argumentsLimit)
	line(`SecRule ARGUMENTS_LIMIT_REACHED "@eq 1" "id:200004,phase:1,t:none,log,deny,status:400,msg:'Argument limit reached; request rejected (GET/PATH args)'"`)
	line(`SecRule ARGUMENTS_LIMIT_REACHED "@eq 1" "id:200005,phase:2,t:none,log,deny,status:400,msg:'Argument limit reached; request rejected (POST args)'"`)
	// Coraza's literal pre-filter for @rx (skip a regex whose required
	// literals are absent) loses two detections of the CRS regression
	// suite (932311-7, 942220-2): off. rampart's own @rx has a sound one
	// (prefilter.go).
	line("SecRxPreFilter Off")
	limit := int64(cfg.BodyLimit)
	line("SecAuditEngine Off")
	line("SecRequestBodyAccess On")
	line("SecRequestBodyLimit %d", limit)
	line("SecRequestBodyInMemoryLimit %d", limit)
	// The handler enforces the limit itself (413 or partial) before the body
	// reaches Coraza; Coraza never sees more than the limit.
	line("SecRequestBodyLimitAction ProcessPartial")
	// The base sets the anomaly-scoring default (log, pass) for the request
	// phases only; the response rules and the correlation summary (980170)
	// need it too.
	line(`SecDefaultAction "phase:3,log,auditlog,pass"`)
	line(`SecDefaultAction "phase:4,log,auditlog,pass"`)
	line(`SecDefaultAction "phase:5,log,auditlog,pass"`)
	if *cfg.ResponseInspection {
		line("SecResponseBodyAccess On")
		line("SecResponseBodyLimit %d", limit)
		line("SecResponseBodyLimitAction ProcessPartial")
		line("SecResponseBodyMimeType text/plain text/html text/xml application/json application/xml")
	} else {
		line("SecResponseBodyAccess Off")
	}

	line("Include @crs-setup.conf.example")
	line(`SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d,setvar:tx.detection_paranoia_level=%d"`,
		cfg.Paranoia, cfg.Paranoia)
	line(`SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%d,setvar:tx.outbound_anomaly_score_threshold=%d"`,
		cfg.InboundThreshold, cfg.OutboundThreshold)
	if before != "" {
		b.WriteString(before)
		b.WriteByte('\n')
	}

	extraBefore, extraAfter := splitRulesFile(extra)
	if extraBefore != "" {
		b.WriteString(extraBefore)
	}

	id := firstGeneratedID
	var configureTime []string
	for _, ex := range cfg.Exclusions {
		if len(ex.Routes) == 0 {
			configureTime = append(configureTime, configureTimeExclusion(ex)...)
			continue
		}
		ctl := runtimeControls(ex)
		for _, route := range ex.Routes {
			line(`SecRule REQUEST_FILENAME "@beginsWith %s" "id:%d,phase:1,pass,nolog,t:none,t:urlDecodeUni,t:normalisePath,%s"`,
				route, id, ctl)
			id++
		}
	}

	line("Include @owasp_crs/*.conf")
	line("SecRuleRemoveById %d", methodRuleID)
	for _, l := range configureTime {
		line("%s", l)
	}

	if extraAfter != "" {
		b.WriteString(extraAfter)
	}

	if cfg.Mode == ModeDetect {
		line("SecRuleEngine DetectionOnly")
	} else {
		line("SecRuleEngine On")
	}
	return b.String()
}

// runtimeControls is the ctl action list of a route-scoped exclusion.
func runtimeControls(ex Exclusion) string {
	var ctl []string
	for _, rule := range ex.Rules {
		if len(ex.Fields) == 0 {
			ctl = append(ctl, "ctl:ruleRemoveById="+strconv.Itoa(rule))
			continue
		}
		for _, f := range ex.Fields {
			ctl = append(ctl, fmt.Sprintf("ctl:ruleRemoveTargetById=%d;%s", rule, f))
		}
	}
	return strings.Join(ctl, ",")
}

// configureTimeExclusion is the directive list of an exclusion without routes.
func configureTimeExclusion(ex Exclusion) []string {
	var out []string
	for _, rule := range ex.Rules {
		if len(ex.Fields) == 0 {
			out = append(out, "SecRuleRemoveById "+strconv.Itoa(rule))
			continue
		}
		for _, f := range ex.Fields {
			out = append(out, fmt.Sprintf(`SecRuleUpdateTargetById %d "!%s"`, rule, f))
		}
	}
	return out
}

// modifiers are the directives that change rules defined before them.
var modifiers = []string{
	"secruleremovebyid", "secruleremovebytag", "secruleremovebymsg",
	"secruleupdatetargetbyid", "secruleupdatetargetbytag", "secruleupdatetargetbymsg",
	"secruleupdateactionbyid",
}

// splitRulesFile separates the rule-modifying directives of a rules file
// from the rest, keeping each directive whole (with its continuation
// lines) and the order within each part.
func splitRulesFile(content string) (before, after string) {
	var b, a strings.Builder
	var cur strings.Builder
	flush := func() {
		d := cur.String()
		cur.Reset()
		if d == "" {
			return
		}
		if f := strings.Fields(d); len(f) > 0 && slices.Contains(modifiers, strings.ToLower(f[0])) {
			a.WriteString(d)
		} else {
			b.WriteString(d)
		}
	}
	for l := range strings.Lines(content) {
		cur.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			cur.WriteByte('\n')
		}
		if !strings.HasSuffix(strings.TrimRight(l, " \t\r\n"), "\\") {
			flush()
		}
	}
	flush()
	return b.String(), a.String()
}
