package deploy_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/deploy"
)

var update = flag.Bool("update", false, "rewrite the static artefacts in deploy/ from examples/rampart.yaml")

// exampleOptions are the options the static artefacts are generated with:
// the example config installed as /etc/rampart/rampart.yaml.
var exampleOptions = deploy.Options{ConfigPath: "/etc/rampart/rampart.yaml"}

func exampleConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join(repoRoot(t), "examples", "rampart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// installedConfig parses yaml as a config installed as
// /etc/rampart/rampart.yaml, the path exampleOptions name.
func installedConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(exampleOptions.ConfigPath, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// exampleArtefacts generates every static artefact, by path under deploy/.
func exampleArtefacts(t *testing.T) map[string]string {
	t.Helper()
	cfg := exampleConfig(t)
	unit, err := deploy.Systemd(cfg, exampleOptions)
	if err != nil {
		t.Fatal(err)
	}
	nft, err := deploy.Nftables(cfg, exampleOptions)
	if err != nil {
		t.Fatal(err)
	}
	se, err := deploy.SELinux(cfg, exampleOptions)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{
		"systemd/rampart.service": unit,
		"nftables/rampart.nft":    nft,
	}
	for name, text := range se {
		out["selinux/"+name] = text
	}
	return out
}

var shaLine = regexp.MustCompile(`(?m)^# config sha256: [0-9a-f]+$`)

// TestStaticArtefacts keeps deploy/ equal to what `rampart deploy`
// generates for examples/rampart.yaml. The config's fingerprint line is
// not compared, so that editing a comment of the example does not fail
// it; anything that changes an artefact does. Regenerate with
//
//	go test ./test/deploy -run TestStaticArtefacts -update
func TestStaticArtefacts(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy")
	for rel, want := range exampleArtefacts(t) {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		if *update {
			mode := os.FileMode(0o644)
			if strings.HasSuffix(rel, ".sh") {
				mode = 0o755
			}
			writeFile(t, path, want, mode)
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (regenerate: go test ./test/deploy -run TestStaticArtefacts -update)", err)
			continue
		}
		if shaLine.ReplaceAllString(string(got), "") != shaLine.ReplaceAllString(want, "") {
			t.Errorf("deploy/%s differs from what examples/rampart.yaml generates; regenerate: go test ./test/deploy -run TestStaticArtefacts -update\n--- generated:\n%s", rel, want)
		}
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure runs systemd-analyze security on a unit file and returns its
// overall exposure score (0 best, 10 worst).
func exposure(t *testing.T, unit string) (float64, string) {
	t.Helper()
	tool := requireTool(t, "systemd-analyze")
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.service")
	writeFile(t, path, unit, 0o644)
	cmd := exec.Command(tool, "security", "--offline=yes", "--no-pager", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	m := exposureRE.FindStringSubmatch(string(out))
	if m == nil {
		if err != nil && os.Getenv("RAMPART_REQUIRE_DEPLOY_TOOLS") != "1" && strings.Contains(string(out), "Unknown command verb") {
			t.Skipf("this systemd-analyze has no offline security mode: %s", out)
		}
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return score, string(out)
}

// The unit's exposure score stays at or under 1.5 for the example (public
// listener), for a port below 1024 (one capability kept) and with a
// client allow list.
func TestSystemdAnalyzeSecurity(t *testing.T) {
	requireTool(t, "systemd-analyze")
	cfg := exampleConfig(t)
	low := installedConfig(t, `listen: "0.0.0.0:443"
tls: {cert: certs/site.pem, key: certs/site-key.pem}
log: {access: /var/log/rampart/access.log, security: /var/log/rampart/security.log}
sites:
  - host: app.example.com
    upstream: {targets: ["https://10.0.0.5:8445"]}
    routes: [{prefix: /}]
`)
	clients := exampleOptions
	clients.Clients, _ = deploy.ParsePrefixes("192.0.2.0/24")
	for _, c := range []struct {
		name string
		cfg  *config.Config
		opts deploy.Options
	}{
		{"example", cfg, exampleOptions},
		{"port 443", low, exampleOptions},
		{"client allow list", cfg, clients},
	} {
		unit, err := deploy.Systemd(c.cfg, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		score, out := exposure(t, unit)
		t.Logf("%s: exposure %.1f", c.name, score)
		if score > 1.5 {
			t.Errorf("%s: exposure %.1f > 1.5\n%s", c.name, score, out)
		}
	}
}

// systemd-analyze verify loads the unit as systemd would and reports
// unknown or malformed settings.
func TestSystemdVerify(t *testing.T) {
	tool := requireTool(t, "systemd-analyze")
	bin := staticBinary(t)
	opts := exampleOptions
	opts.Binary = bin
	unit, err := deploy.Systemd(exampleConfig(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.service")
	writeFile(t, path, unit, 0o644)
	cmd := exec.Command(tool, "verify", "--man=no", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning")
	out, err := cmd.CombinedOutput()
	text := string(out)
	t.Logf("systemd-analyze verify: %v\n%s", err, text)
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "rampart.service") && (strings.Contains(line, "Unknown key") || strings.Contains(line, "Failed to parse") || strings.Contains(line, "Invalid")) {
			t.Errorf("verify: %s", line)
		}
	}
}
