package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/audit"
)

// TestRampartPassesEverything audits rampart with a demo-like config: no
// check may fail. It goes through the library API with an allowlist.
func TestRampartPassesEverything(t *testing.T) {
	env := startRampart(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	rep, err := audit.Run(ctx, audit.Options{
		Target:      "https://" + env.addr,
		Hosts:       []string{"app.test"},
		CAFile:      env.caFile,
		ExpectPaths: []string{"/", "/api/*", "/api/hello"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_ = rep.WriteText(&buf, false)
	t.Log("\n" + buf.String())
	for _, c := range rep.Checks {
		if c.Status == audit.Fail {
			t.Errorf("%s failed: %s", c.ID, c.Evidence)
		}
	}
	for _, id := range []string{"tls.version.1.0", "protocol.http2", "host.sni-mismatch", "paths.bypass:/admin/", "smuggling.cl-te", "headers.server-banner", "paths.neighbours:/api/*"} {
		if c, ok := rep.Check(id); !ok || c.Status != audit.Pass {
			t.Errorf("%s: %+v, want pass", id, c)
		}
	}
}

// TestRampartCLIBurst runs the command line with a burst over rampart's
// rate limit (tightened so that a slow machine still outruns it): the
// limit must show, exit 0.
func TestRampartCLIBurst(t *testing.T) {
	env := startRampart(t, "rate_limits: {default: {rate: 10/s, burst: 20}}")
	expect := writeFile(t, env.dir, "expect.txt", "# what the site serves\n/\n/api/*   # the JSON API\n")
	forbid := writeFile(t, env.dir, "forbidden.txt", "/admin/\n/admin/users\n")
	var stdout, stderr bytes.Buffer
	code := audit.Main([]string{"https://" + env.addr, "--host", "app.test", "--ca", env.caFile,
		"--expect-paths", expect, "--forbidden-paths", forbid, "--burst", "60", "--json"}, &stdout, &stderr)
	var rep struct {
		Checks  []audit.Check
		Summary audit.Summary
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d, %v\n%s\n%s", code, err, stdout.String(), stderr.String())
	}
	for _, c := range rep.Checks {
		if c.Status == audit.Fail || c.ID == "limits.burst" {
			t.Logf("%s %s: %s", c.Status, c.ID, c.Evidence)
		}
	}
	if code != 0 || rep.Summary.Fail != 0 {
		t.Errorf("exit %d, summary %+v, want 0 and no fails", code, rep.Summary)
	}
	for _, c := range rep.Checks {
		if c.ID == "limits.burst" && (c.Status != audit.Pass || !strings.Contains(c.Evidence, "429")) {
			t.Errorf("limits.burst %s: %s", c.Status, c.Evidence)
		}
	}
}
