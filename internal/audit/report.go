package audit

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

var categoryTitles = map[string]string{
	CatTLS:       "TLS",
	CatProtocol:  "Protocol",
	CatHost:      "Host handling",
	CatPaths:     "Path handling",
	CatSmuggling: "Request smuggling",
	CatHeaders:   "Response headers",
	CatLimits:    "Limits",
}

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
)

var ansiStatus = map[Status]string{Pass: "\x1b[32m", Fail: "\x1b[1;31m", Warn: "\x1b[33m", Skip: "\x1b[2m"}

// byCategory groups the checks in report order, skipping empty categories.
func (r *Report) byCategory() [][]Check {
	var out [][]Check
	for _, cat := range Categories {
		var cs []Check
		for _, c := range r.Checks {
			if c.Category == cat {
				cs = append(cs, c)
			}
		}
		if len(cs) > 0 {
			out = append(out, cs)
		}
	}
	return out
}

func (r *Report) summaryLine() string {
	verdict := "no failures"
	if r.Failed() {
		verdict = "FAILED"
	}
	return fmt.Sprintf("%d checks: %d pass, %d fail, %d warn, %d skip — %s", len(r.Checks), r.Summary.Pass, r.Summary.Fail, r.Summary.Warn, r.Summary.Skip, verdict)
}

// WriteText writes a table grouped by category and a summary line; colour
// adds ANSI colours (for a terminal).
func (r *Report) WriteText(w io.Writer, colour bool) error {
	paint := func(code, s string) string {
		if !colour {
			return s
		}
		return code + s + ansiReset
	}
	width := 0
	for _, c := range r.Checks {
		width = max(width, min(len(c.ID), 40))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", paint(ansiBold, "rampart audit"), r.Target)
	if len(r.Hosts) > 0 {
		fmt.Fprintf(&b, " (host %s)", strings.Join(r.Hosts, ", "))
	}
	fmt.Fprintf(&b, "\n%s, %v, %d requests\n", r.Started.UTC().Format(time.RFC3339), r.Duration.Round(10*time.Millisecond), r.Requests)
	for _, cs := range r.byCategory() {
		fmt.Fprintf(&b, "\n%s\n", paint(ansiBold, categoryTitles[cs[0].Category]))
		for _, c := range cs {
			st := fmt.Sprintf("%-4s", strings.ToUpper(string(c.Status)))
			fmt.Fprintf(&b, "  %s  %-*s  %s\n", paint(ansiStatus[c.Status], st), width, c.ID, c.Evidence)
		}
	}
	line := r.summaryLine()
	if r.Failed() {
		line = paint(ansiStatus[Fail], line)
	}
	fmt.Fprintf(&b, "\n%s\n", line)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes {"target", "checks", "summary"}.
func (r *Report) WriteJSON(w io.Writer) error {
	checks := r.Checks
	if checks == nil {
		checks = []Check{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Target  string  `json:"target"`
		Checks  []Check `json:"checks"`
		Summary Summary `json:"summary"`
	}{r.Target, checks, r.Summary})
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"title": func(cat string) string { return categoryTitles[cat] },
	"upper": func(s Status) string { return strings.ToUpper(string(s)) },
	"when":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur":   func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() },
	"join":  func(s []string) string { return strings.Join(s, ", ") },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rampart audit: {{.R.Target}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1d232a}
h1{font-size:1.4rem;margin:0 0 .2rem}
.meta{color:#5b6570;margin:0 0 1rem}
.summary span{display:inline-block;margin-right:.6rem;padding:.2rem .6rem;border-radius:.3rem;font-weight:600}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1.4rem}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #e3e7eb}
th{font-size:.8rem;text-transform:uppercase;color:#5b6570}
td.id{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
td.ev{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem;word-break:break-word}
.st{font-weight:700;white-space:nowrap}
.pass{color:#17663a}.fail{color:#b3261e}.warn{color:#8a5a00}.skip{color:#6b7680}
.summary .pass{background:#e3f4ea}.summary .fail{background:#fbe5e3}.summary .warn{background:#fdf1d8}.summary .skip{background:#eef1f4}
tr.fail td{background:#fff6f5}
</style>
</head>
<body>
<h1>rampart audit: {{.R.Target}}</h1>
<p class="meta">{{if .R.Hosts}}host {{join .R.Hosts}} · {{end}}{{when .R.Started}} · {{dur .R.Duration}} · {{.R.Requests}} requests</p>
<p class="summary"><span class="pass">{{.R.Summary.Pass}} pass</span><span class="fail">{{.R.Summary.Fail}} fail</span><span class="warn">{{.R.Summary.Warn}} warn</span><span class="skip">{{.R.Summary.Skip}} skip</span></p>
{{range .Groups}}
<h2>{{title (index . 0).Category}}</h2>
<table>
<thead><tr><th>status</th><th>check</th><th>evidence</th></tr></thead>
<tbody>
{{range .}}<tr class="{{.Status}}"><td class="st {{.Status}}">{{upper .Status}}</td><td class="id">{{.ID}}</td><td class="ev">{{.Evidence}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
</body>
</html>
`))

// WriteHTML writes a self-contained HTML report (no external resources;
// every value escaped by html/template).
func (r *Report) WriteHTML(w io.Writer) error {
	return htmlReport.Execute(w, struct {
		R      *Report
		Groups [][]Check
	}{r, r.byCategory()})
}
