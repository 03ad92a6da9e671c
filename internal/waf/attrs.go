package waf

import (
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// Limits on what one security event carries.
const (
	maxLoggedRules = 16
	maxMatchedLen  = 100
)

// matchAttrs describes why the rules matched: the rule ids, their messages,
// the anomaly score and the matched data, truncated and with secrets
// masked. response selects the outbound score.
func matchAttrs(tx types.Transaction, response bool) []slog.Attr {
	var (
		ids     []int
		msgs    []string
		matched []string
	)
	for _, mr := range tx.MatchedRules() {
		msg := mr.Message()
		id := mr.Rule().ID()
		if msg == "" || (id >= 900000 && id <= 901999) {
			// Rules that only set variables, and CRS initialization
			// (901340 "Enabling body inspection" is not a finding).
			continue
		}
		if len(ids) == maxLoggedRules {
			break
		}
		ids = append(ids, id)
		msgs = append(msgs, msg)
		if mds := mr.MatchedDatas(); len(mds) > 0 {
			matched = append(matched, describeMatch(mds[len(mds)-1]))
		}
	}
	scoreVar := "blocking_inbound_anomaly_score"
	if response {
		scoreVar = "blocking_outbound_anomaly_score"
	}
	attrs := []slog.Attr{
		slog.Any("rule_ids", ids),
		slog.Any("messages", msgs),
		slog.Int("anomaly_score", txInt(tx, scoreVar)),
		slog.Any("matched", matched),
	}
	if response {
		attrs = append(attrs, slog.String("phase", "response"))
	}
	return attrs
}

// txInt reads a numeric TX variable, 0 when unset or unreadable.
func txInt(tx types.Transaction, name string) int {
	st, ok := tx.(plugintypes.TransactionState)
	if !ok {
		return 0
	}
	vals := st.Variables().TX().Get(name)
	if len(vals) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(vals[0])
	return n
}

// describeMatch renders one piece of matched data as VARIABLE:key=value.
func describeMatch(md types.MatchData) string {
	name := md.Variable().Name()
	key := md.Key()
	value := maskValue(name, key, md.Value())
	var b strings.Builder
	b.WriteString(name)
	if key != "" {
		b.WriteByte(':')
		b.WriteString(observe.Truncate(key, 64))
	}
	b.WriteByte('=')
	b.WriteString(observe.Truncate(value, maxMatchedLen))
	return b.String()
}

const masked = "[masked]"

// maskValue hides values that are credentials: the Authorization, Proxy-
// Authorization and Cookie headers, every cookie, and any field whose name
// contains pass, pwd, secret or token. Inside composite values (the raw
// body, the query string, the URI) such fields are masked in place.
func maskValue(variable, key, value string) string {
	lkey := strings.ToLower(key)
	switch variable {
	case "REQUEST_HEADERS", "RESPONSE_HEADERS":
		switch lkey {
		case "authorization", "proxy-authorization", "cookie", "set-cookie":
			return masked
		}
	case "REQUEST_COOKIES":
		return masked
	case "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES_NAMES", "ARGS_NAMES", "ARGS_GET_NAMES", "ARGS_POST_NAMES":
		return value
	}
	if sensitiveName(lkey) {
		return masked
	}
	return sensitiveInline.ReplaceAllString(value, "${1}"+masked)
}

func sensitiveName(lname string) bool {
	for _, s := range [...]string{"pass", "pwd", "secret", "token"} {
		if strings.Contains(lname, s) {
			return true
		}
	}
	return false
}

// sensitiveInline finds name=value, "name":"value" and name: value pairs
// whose name contains pass, pwd, secret or token, and Basic/Bearer
// credentials.
var sensitiveInline = regexp.MustCompile(`(?i)([a-z0-9_.\-\[\]]*(?:pass|pwd|secret|token)[a-z0-9_.\-\[\]]*["']?\s*[=:]\s*["']?|(?:basic|bearer)\s+)[^&"'\s,;}<]*`)
