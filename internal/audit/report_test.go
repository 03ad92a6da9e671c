package audit

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	r := &Report{
		Target:  "https://app.test",
		Hosts:   []string{"app.test"},
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Checks: []Check{
			{ID: "tls.version.1.0", Category: CatTLS, Status: Pass, Evidence: "refused"},
			{ID: "paths.bypass:/admin/", Category: CatPaths, Status: Fail, Evidence: `BYPASS: <script>alert("x")</script> /x/..;/admin/ → 200`},
			{ID: "headers.nosniff", Category: CatHeaders, Status: Warn, Evidence: "missing"},
			{ID: "limits.burst", Category: CatLimits, Status: Skip, Evidence: "not run"},
		},
		Summary: Summary{Pass: 1, Fail: 1, Warn: 1, Skip: 1},
	}
	return r
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"checks", "summary", "target"}) {
		t.Errorf("top-level keys %v", keys)
	}
	var checks []map[string]string
	_ = json.Unmarshal(top["checks"], &checks)
	if len(checks) != 4 || checks[1]["status"] != "fail" || checks[1]["category"] != "paths" || checks[1]["id"] != "paths.bypass:/admin/" {
		t.Errorf("checks %v", checks)
	}
	var sum map[string]int
	_ = json.Unmarshal(top["summary"], &sum)
	if !reflect.DeepEqual(sum, map[string]int{"pass": 1, "fail": 1, "warn": 1, "skip": 1}) {
		t.Errorf("summary %v", sum)
	}
}

func TestWriteText(t *testing.T) {
	var plain, colour bytes.Buffer
	r := sampleReport()
	_ = r.WriteText(&plain, false)
	_ = r.WriteText(&colour, true)
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("ANSI escapes without colour")
	}
	if !strings.Contains(colour.String(), "\x1b[1;31mFAIL") {
		t.Errorf("no red FAIL with colour:\n%q", colour.String())
	}
	out := plain.String()
	for _, s := range []string{"TLS\n", "Path handling\n", "FAIL  paths.bypass:/admin/", "4 checks: 1 pass, 1 fail, 1 warn, 1 skip — FAILED"} {
		if !strings.Contains(out, s) {
			t.Errorf("text lacks %q:\n%s", s, out)
		}
	}
	// Categories in order.
	if strings.Index(out, "TLS\n") > strings.Index(out, "Path handling\n") || strings.Index(out, "Response headers") > strings.Index(out, "Limits") {
		t.Errorf("categories out of order:\n%s", out)
	}
}

func TestWriteHTML(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "<script>") {
		t.Error("evidence not escaped")
	}
	if !strings.Contains(out, "&lt;script&gt;") || !strings.Contains(out, `<tr class="fail">`) {
		t.Errorf("HTML report:\n%s", out)
	}
	if strings.Contains(out, "http://") && !strings.Contains(out, "https://app.test") || strings.Contains(out, "<link") || strings.Contains(out, "src=") {
		t.Error("HTML report loads external resources")
	}
}
