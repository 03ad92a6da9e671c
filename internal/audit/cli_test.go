package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain_UsageErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.txt")
	_ = os.WriteFile(empty, []byte("# nothing\n"), 0o644)
	bad := filepath.Join(dir, "bad.txt")
	_ = os.WriteFile(bad, []byte("admin\n"), 0o644)
	for _, args := range [][]string{
		{},
		{"https://a.test", "https://b.test"},
		{"http://a.test"},
		{"https://a.test", "--burst", "501"},
		{"https://a.test", "--burst", "x"},
		{"https://a.test", "--nope"},
		{"https://a.test", "--timeout", "0s"},
		{"https://a.test", "--slow", "--slow-for", "4s"},
		{"https://a.test", "--slow", "--slow-for", "3m"},
		{"https://a.test", "--slow", "--slow-for", "x"},
		{"https://a.test", "--slow-for", "10s"}, // a bound without the probes
		{"https://a.test", "--ca", filepath.Join(dir, "missing.pem")},
		{"https://a.test", "--expect-paths", filepath.Join(dir, "missing.txt")},
		{"https://a.test", "--forbidden-paths", empty},
		{"https://a.test", "--forbidden-paths", bad},
	} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %s)", args, code, errb.String())
		}
		if !strings.Contains(errb.String(), "Usage: rampart audit") {
			t.Errorf("%q: no usage on stderr: %s", args, errb.String())
		}
	}
	var out bytes.Buffer
	if code := Main([]string{"--help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "--expect-paths") {
		t.Errorf("--help: %d %s", code, out.String())
	}
}

func TestParseArgs_Slow(t *testing.T) {
	cl, err := parseArgs([]string{"https://a.test", "--json"})
	if err != nil || cl.opts.Slow || cl.opts.SlowFor != DefaultSlowFor || !cl.asJSON {
		t.Errorf("no --slow: %v %+v", err, cl)
	}
	cl, err = parseArgs([]string{"--slow", "https://a.test"})
	if err != nil || !cl.opts.Slow || cl.opts.SlowFor != DefaultSlowFor {
		t.Errorf("--slow: %v %+v", err, cl)
	}
	cl, err = parseArgs([]string{"https://a.test", "--slow-for", "8s", "--slow"})
	if err != nil || !cl.opts.Slow || cl.opts.SlowFor != 8*time.Second {
		t.Errorf("--slow-for 8s --slow: %v %+v", err, cl)
	}
	var out bytes.Buffer
	if Main([]string{"--help"}, &out, &out); !strings.Contains(out.String(), "--slow-for") {
		t.Errorf("--help does not list --slow-for:\n%s", out.String())
	}
}

func TestMain_Unreachable(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"https://127.0.0.1:1", "--timeout", "1s"}, &out, &errb); code != 1 {
		t.Errorf("exit %d, want 1; %s", code, errb.String())
	}
}

func TestMain_Findings(t *testing.T) {
	srv, _ := lenientServer(t)
	dir := t.TempDir()
	forbid := filepath.Join(dir, "forbid.txt")
	_ = os.WriteFile(forbid, []byte("/admin/\n"), 0o644)
	html := filepath.Join(dir, "r.html")
	var out, errb bytes.Buffer
	// Flags before and after the target; --host twice.
	code := Main([]string{"--json", srv.URL, "--host", "app.test", "--host", "www.app.test", "--insecure", "--forbidden-paths", forbid, "--html", html}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
	}
	var rep struct {
		Target  string
		Checks  []Check
		Summary Summary
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Target != srv.URL || rep.Summary.Fail == 0 {
		t.Errorf("report %+v", rep)
	}
	for _, c := range rep.Checks {
		if strings.HasPrefix(c.ID, "paths.") && strings.Contains(c.ID, "manager") {
			t.Errorf("default forbidden path probed although a file was given: %s", c.ID)
		}
	}
	if b, err := os.ReadFile(html); err != nil || !bytes.Contains(b, []byte("host.unknown")) {
		t.Errorf("HTML report: %v", err)
	}
}

func TestMain_PassIsExitZero(t *testing.T) {
	var f *fake
	f = startFake(t, nil, func(r *rawReq) rawResp { return strictSite(portOf(f))(r) })
	mainHandshakeRate = 1000
	t.Cleanup(func() { mainHandshakeRate = 0 })
	var out, errb bytes.Buffer
	code := Main([]string{f.target(), "--host", "app.test", "--ca", f.ca.file, "--timeout", "2s"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out.String(), errb.String())
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("colour written to a buffer")
	}
	if !strings.Contains(out.String(), "0 fail") {
		t.Errorf("summary missing:\n%s", out.String())
	}
}
