package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

// slowLimits tighten rampart's bounds on a slow request so that the slow
// probes, bounded at 8s here, see them act: a whole head within 2s, a body
// paused at most 2s and, after its first 2s of waiting, paying for every
// further second with 1 KiB.
const slowLimits = "limits: {read_header_timeout: 2s, body_read_timeout: 2s, body_min_rate: 1KiB}"

var reHeld = regexp.MustCompile(`(?:closed|answered \d+) after (\d+\.\d)s`)

// TestRampartCLISlow runs the command line with --slow against rampart
// with slowLimits: both slow probes must pass, the head cut by
// read_header_timeout and the POST body by body_min_rate (logged as
// protocol/body-too-slow), well before the 8s bound. The POST goes to the
// first expected path, /api/*, where POST is routed, so that the body is
// read rather than refused up front.
func TestRampartCLISlow(t *testing.T) {
	env := startRampart(t, slowLimits)
	expect := writeFile(t, env.dir, "expect.txt", "/api/*\n/\n")
	forbid := writeFile(t, env.dir, "forbidden.txt", "/admin/\n") // fewer path probes: a shorter run
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := audit.Main([]string{"https://" + env.addr, "--host", "app.test", "--ca", env.caFile,
		"--expect-paths", expect, "--forbidden-paths", forbid, "--slow", "--slow-for", "8s", "--json"}, &stdout, &stderr)
	t.Logf("audit took %v", time.Since(start).Round(10*time.Millisecond))
	var rep struct {
		Checks  []audit.Check
		Summary audit.Summary
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d, %v\n%s\n%s", code, err, stdout.String(), stderr.String())
	}
	byID := map[string]audit.Check{}
	for _, c := range rep.Checks {
		byID[c.ID] = c
		if c.Status == audit.Fail || strings.HasPrefix(c.ID, "limits.") {
			t.Logf("%s %s: %s", c.Status, c.ID, c.Evidence)
		}
	}
	if code != 0 || rep.Summary.Fail != 0 {
		t.Errorf("exit %d, summary %+v, want 0 and no fails", code, rep.Summary)
	}
	for _, id := range []string{"limits.slow-headers", "limits.slow-body"} {
		c := byID[id]
		m := reHeld.FindStringSubmatch(c.Evidence)
		if c.Status != audit.Pass || m == nil {
			t.Errorf("%s: %s %q, want pass, closed or answered", id, c.Status, c.Evidence)
			continue
		}
		// 2s of waiting is allowed; 6s leaves room for a loaded machine
		// and still tells a bound from the probe's 8s.
		if held, _ := strconv.ParseFloat(m[1], 64); held < 1.5 || held > 6 {
			t.Errorf("%s: held %.1fs, want about 2s", id, held)
		}
	}
	if ev := byID["limits.slow-body"].Evidence; !strings.HasPrefix(ev, "POST /api/ ") || strings.Contains(ev, "before any body byte") {
		t.Errorf("limits.slow-body: %q, want the body to /api/ read and cut", ev)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		log, _ := os.ReadFile(filepath.Join(env.dir, "security.log"))
		if bytes.Contains(log, []byte(`"reason":"body-too-slow"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no protocol/body-too-slow event in the security log")
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}
