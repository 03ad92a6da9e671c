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

func TestCheck_ErrorsNameFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	writeCerts(t, dir)
	bad := filepath.Join(dir, "bad.yaml")
	must(t, os.WriteFile(bad, []byte(`tls:
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
`), 0o644))
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
	typo := filepath.Join(dir, "typo.yaml")
	must(t, os.WriteFile(typo, []byte("tls: {cert: site.pem, key: site-key.pem}\nsites:\n  - host: app.test\n    upstreams: {}\n"), 0o644))
	out, err = exec.Command(binary(t), "check", "-c", typo).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "typo.yaml:4: sites[0].upstreams: unknown key") {
		t.Fatalf("unknown key not reported with its line:\n%s", out)
	}
}

func TestCheck_WarnsAboutEveryWeakenedDefault(t *testing.T) {
	dir := t.TempDir()
	writeCerts(t, dir)
	file := filepath.Join(dir, "weak.yaml")
	must(t, os.WriteFile(file, []byte(`admin: {listen: "0.0.0.0:9901"}
tls: {cert: site.pem, key: site-key.pem, session_tickets: true}
sites:
  - host: app.test
    upstream:
      targets: ["https://127.0.0.1:9"]
      tls: {insecure_skip_verify: true}
    headers: {hsts: "off"}
    routes:
      - regex: ".*"
`), 0o644))
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
	dir := t.TempDir()
	writeCerts(t, dir)
	must(t, os.Chmod(filepath.Join(dir, "site-key.pem"), 0o644))
	file := filepath.Join(dir, "c.yaml")
	must(t, os.WriteFile(file, []byte("tls: {cert: site.pem, key: site-key.pem}\nsites:\n  - host: app.test\n    upstream: {targets: [\"http://127.0.0.1:9\"]}\n    routes: [{prefix: /}]\n"), 0o644))
	out, err := exec.Command(binary(t), "check", "-c", file).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "world-readable") {
		t.Fatalf("exit %v\n%s", err, out)
	}
}

func TestServe_RefusesRootWithoutAllowRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs only as root: checks that serve refuses to run as root")
	}
	out, err := exec.Command(binary(t), "serve", "-c", "/nonexistent.yaml").CombinedOutput()
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
