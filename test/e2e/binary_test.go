package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/rampart once for the tests that run the real program.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rampart-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rampart")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/rampart").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binPath
}

// checkFile writes the config yaml as name beside a fresh certificate and
// key, and returns its path, for a run of rampart check.
func checkFile(t *testing.T, name, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	writeCerts(t, dir)
	file := filepath.Join(dir, name)
	must(t, os.WriteFile(file, []byte(yaml), 0o644))
	return file
}

// weakConfig loads but switches off five defaults, each a warning.
const weakConfig = `admin: {listen: "0.0.0.0:9901"}
tls: {cert: site.pem, key: site-key.pem, session_tickets: true}
sites:
  - host: app.test
    upstream:
      targets: ["https://127.0.0.1:9"]
      tls: {insecure_skip_verify: true}
    headers: {hsts: "off"}
    routes:
      - regex: ".*"
`

func TestCheck_ErrorsNameFileLineAndKey(t *testing.T) {
	bad := checkFile(t, "bad.yaml", `tls:
  cert: site.pem
  key: site-key.pem
  versions: ["1.1"]
sites:
  - host: app.test
    upstream:
      targets: ["10.0.0.5:80"]
    routes:
      - prefix: /api/
        methods: [GET, TRACE]
`)
	out, err := exec.Command(binary(t), "check", "-c", bad).CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"bad.yaml:4: tls.versions[0]:",
		"bad.yaml:8: sites[0].upstream.targets[0]:",
		"bad.yaml:11: sites[0].routes[0].methods[1]: TRACE is never proxied",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	typo := filepath.Join(filepath.Dir(bad), "typo.yaml")
	must(t, os.WriteFile(typo, []byte("tls: {cert: site.pem, key: site-key.pem}\nsites:\n  - host: app.test\n    upstreams: {}\n"), 0o644))
	out, err = exec.Command(binary(t), "check", "-c", typo).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "typo.yaml:4: sites[0].upstreams: unknown key") {
		t.Fatalf("unknown key not reported with its line:\n%s", out)
	}
}

func TestCheck_WarnsAboutEveryWeakenedDefault(t *testing.T) {
	file := checkFile(t, "weak.yaml", weakConfig)
	out, err := exec.Command(binary(t), "check", "-c", file).CombinedOutput()
	if exitCode(err) != 0 {
		t.Fatalf("exit %v\n%s", err, out)
	}
	for _, want := range []string{"session_tickets", "admin.listen", "insecure_skip_verify", "headers.hsts", "routes[0].regex", "5 warning(s)", "sha256 "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheck_WorldReadableKeyIsAnError(t *testing.T) {
	file := checkFile(t, "c.yaml", "tls: {cert: site.pem, key: site-key.pem}\nsites:\n  - host: app.test\n    upstream: {targets: [\"http://127.0.0.1:9\"]}\n    routes: [{prefix: /}]\n")
	must(t, os.Chmod(filepath.Join(filepath.Dir(file), "site-key.pem"), 0o644))
	out, err := exec.Command(binary(t), "check", "-c", file).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "world-readable") {
		t.Fatalf("exit %v\n%s", err, out)
	}
}

func TestServe_RefusesRootWithoutAllowRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs only as root: checks that serve refuses to run as root")
	}
	dir := t.TempDir()
	writeCerts(t, dir)
	file := filepath.Join(dir, "c.yaml")
	must(t, os.WriteFile(file, []byte(render(baseConfig, dir, "http://127.0.0.1:9")), 0o644))
	out, err := exec.Command(binary(t), "serve", "-c", file).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "refusing to serve as root") {
		t.Fatalf("exit %v\n%s", err, out)
	}
}

// The real program: SIGHUP with a broken file keeps serving, SIGHUP with a
// good one applies it, SIGTERM drains and exits 0.
func TestServe_SignalsReloadAndDrain(t *testing.T) {
	dir := t.TempDir()
	writeCerts(t, dir)
	up := newUpstream(t)
	file := filepath.Join(dir, "rampart.yaml")
	good := render(strings.Replace(baseConfig, `log: {access: off, security: "{{DIR}}/security.log"}`, `log: {access: off, security: "{{DIR}}/security.log"}`, 1), dir, up.URL)
	must(t, os.WriteFile(file, []byte(good), 0o644))
	args := []string{"serve", "-c", file}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-root")
	}
	cmd := exec.Command(binary(t), args...)
	stdout, _ := cmd.StdoutPipe()
	must(t, cmd.Start())
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		var m struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "listening" {
			addr = m.Addr
			break
		}
	}
	if addr == "" {
		t.Fatal("no listening line")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	e := &env{t: t, addr: addr, roots: nil, up: up}
	e.ca = nil
	e.roots = poolFromFile(t, filepath.Join(dir, "ca.pem"))
	status := func(path string) int {
		resp, err := e.client().Get("https://app.test" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status("/api/x"); s != 200 {
		t.Fatalf("status %d", s)
	}
	must(t, os.WriteFile(file, []byte("sites: [oops"), 0o644))
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	time.Sleep(300 * time.Millisecond)
	if s := status("/api/x"); s != 200 {
		t.Fatalf("after broken reload: status %d", s)
	}
	must(t, os.WriteFile(file, []byte(strings.Replace(good, "      - exact: /\n", "      - exact: /\n      - exact: /added\n", 1)), 0o644))
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	deadline := time.Now().Add(3 * time.Second)
	for status("/added") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("good reload not applied")
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
	sec, _ := os.ReadFile(filepath.Join(dir, "security.log"))
	if !strings.Contains(string(sec), "reload failed") {
		t.Fatalf("broken reload not logged:\n%s", sec)
	}
}

func TestDemo_ServesAndRefuses(t *testing.T) {
	cmd := exec.Command(binary(t), "demo", "--listen", "127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	must(t, cmd.Start())
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		var m struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "listening" {
			addr = m.Addr
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	e := &env{t: t, addr: addr}
	client := e.client()
	client.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	for path, want := range map[string]int{"/": 200, "/api/hello": 200, "/admin/": 403, "/nothing": 404, "/api/..;/admin/": 400} {
		resp, err := client.Get("https://localhost" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// runCheckJSON runs `rampart check --json -c file` and decodes its report.
func runCheckJSON(t *testing.T, file string) (code int, rep lintReport) {
	t.Helper()
	out, runErr := exec.Command(binary(t), "check", "--json", "-c", file).Output()
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("not a JSON report: %v\n%s", err, out)
	}
	return exitCode(runErr), rep
}

type lintReport struct {
	File     string `json:"file"`
	SHA256   string `json:"sha256"`
	Findings []struct {
		Rule     string `json:"rule"`
		Severity string `json:"severity"`
		Line     int    `json:"line"`
		Key      string `json:"key"`
		Message  string `json:"message"`
		Fix      string `json:"fix"`
	} `json:"findings"`
	Summary map[string]int `json:"summary"`
}

// find returns the severity, line and key of the findings of rule.
func (r lintReport) find(rule string) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Rule == rule {
			out = append(out, f.Severity+" "+filepath.Base(r.File)+":"+lintLine(f.Line)+" "+f.Key)
		}
	}
	return out
}

// lintLine formats a line number without strconv (not imported here).
func lintLine(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// The linter's findings in JSON: rule ids, severities, lines and keys, a
// consistent summary, the same fingerprint as the text summary, and exit
// status 1 because of one error.
func TestCheck_JSONFindingsHaveRuleIDs(t *testing.T) {
	file := checkFile(t, "lint.yaml", `trusted_proxies: [0.0.0.0/0]
client_ip: {header: X-Forwarded-For}
tls: {cert: site.pem, key: site-key.pem}
sites:
  - host: app.test
    upstream: {targets: ["http://127.0.0.1:9"]}
    routes:
      - prefix: /api/
      - prefix: /login
        rate_limit: "off"
      - exact: /ws
        websocket: true
      - regex: 'reports/[0-9]+'
      - prefix: /manager/
`)
	code, rep := runCheckJSON(t, file)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (trusted_proxies 0.0.0.0/0 is an error): %+v", code, rep)
	}
	for rule, want := range map[string]string{
		"trusted-proxies-everything": "error lint.yaml:1 trusted_proxies[0]",
		"login-rate-limit":           "warning lint.yaml:10 sites[0].routes[1].rate_limit",
		"websocket-uncapped":         "warning lint.yaml:12 sites[0].routes[2].websocket",
		"regex-unanchored":           "warning lint.yaml:13 sites[0].routes[3].regex",
		"route-exposes-admin-path":   "warning lint.yaml:14 sites[0].routes[4].prefix",
		"cert-expiring":              "info lint.yaml:3 tls.cert",
	} {
		if got := rep.find(rule); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want [%q]", rule, got, want)
		}
	}
	count := map[string]int{}
	for _, f := range rep.Findings {
		count[f.Severity]++
		if f.Message == "" || f.Fix == "" {
			t.Errorf("finding %+v lacks a message or a fix", f)
		}
	}
	for _, sev := range []string{"error", "warning", "info"} {
		if rep.Summary[sev] != count[sev] {
			t.Errorf("summary %v does not count the findings %v", rep.Summary, count)
		}
	}
	out, _ := exec.Command(binary(t), "check", "-c", file).CombinedOutput()
	if rep.SHA256 == "" || !strings.Contains(string(out), "failed, 1 site(s), 1 error(s), 4 warning(s), 1 info, sha256 "+rep.SHA256) {
		t.Errorf("text summary does not match the JSON report (sha256 %s):\n%s", rep.SHA256, out)
	}
	for _, want := range []string{
		filepath.Base(file) + ":10: warning[login-rate-limit]: sites[0].routes[1].rate_limit: prefix /login ",
		"(fix: rate_limit: login (5/s, burst 5))\n",
		filepath.Base(file) + ":1: error[trusted-proxies-everything]: trusted_proxies[0]: ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

// The weakened-defaults config: the same five warnings, with their rule
// ids, in JSON.
func TestCheck_JSONWeakDefaultsAreFiveWarnings(t *testing.T) {
	file := checkFile(t, "weak.yaml", weakConfig)
	code, rep := runCheckJSON(t, file)
	if code != 0 || rep.Summary["warning"] != 5 || rep.Summary["error"] != 0 {
		t.Fatalf("exit %d, summary %v", code, rep.Summary)
	}
	var warned []string
	for _, f := range rep.Findings {
		if f.Severity == "warning" {
			warned = append(warned, f.Rule)
		}
	}
	if got := strings.Join(warned, " "); got != "admin-listener-exposed tls-session-tickets upstream-insecure-skip-verify headers-hsts-off regex-matches-everything" {
		t.Fatalf("warnings in file order: %s", got)
	}
}

// A file that does not load: config-error findings naming line and key.
func TestCheck_JSONConfigErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	must(t, os.WriteFile(file, []byte("tls:\n  cert: site.pem\n  key: site-key.pem\n  versions: [\"1.1\"]\nsites: []\n"), 0o644))
	code, rep := runCheckJSON(t, file)
	if code != 1 || len(rep.Findings) == 0 || rep.SHA256 == "" {
		t.Fatalf("exit %d, report %+v", code, rep)
	}
	if got := rep.find("config-error"); len(got) == 0 || got[0] != "error bad.yaml:4 tls.versions[0]" {
		t.Fatalf("config errors %q", got)
	}
}

// A world-readable key is reported once, under its rule, and fails check.
func TestCheck_WorldReadableKeyHasRuleID(t *testing.T) {
	file := checkFile(t, "c.yaml", "tls: {cert: site.pem, key: site-key.pem}\nsites:\n  - host: app.test\n    upstream: {targets: [\"http://127.0.0.1:9\"]}\n    routes: [{prefix: /api/}]\n")
	must(t, os.Chmod(filepath.Join(filepath.Dir(file), "site-key.pem"), 0o644))
	code, rep := runCheckJSON(t, file)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	if got := rep.find("key-world-readable"); len(got) != 1 || got[0] != "error c.yaml:1 tls.key" {
		t.Fatalf("key-world-readable: %q", got)
	}
	if got := rep.find("build-error"); len(got) != 0 {
		t.Fatalf("reported twice, also as %q", got)
	}
}

// TestServe_CacheDirMustBeOurs: serve opens cache_dir after the privilege
// drop and refuses one that others could write into, saying what to fix.
func TestServe_CacheDirMustBeOurs(t *testing.T) {
	dir := t.TempDir()
	writeCerts(t, dir)
	up := newUpstream(t)
	cacheDir := filepath.Join(dir, "cache")
	must(t, os.Mkdir(cacheDir, 0o755))
	file := filepath.Join(dir, "rampart.yaml")
	conf := "cache_dir: " + cacheDir + "\n" + render(baseConfig, dir, up.URL)
	must(t, os.WriteFile(file, []byte(conf), 0o644))
	args := []string{"serve", "-c", file}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-root")
	}
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "chmod 700 "+cacheDir) {
		t.Fatalf("serve with a 0755 cache_dir: exit %d, output:\n%s", exitCode(err), out)
	}

	// Fixed as told, it starts.
	must(t, os.Chmod(cacheDir, 0o700))
	cmd := exec.Command(binary(t), args...)
	stdout, _ := cmd.StdoutPipe()
	must(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"msg":"listening"`) {
			return
		}
	}
	t.Fatal("serve with a 0700 cache_dir did not start")
}
