package deploy_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/observe/observetest"
	"github.com/rampart-proxy/rampart/internal/sandbox"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
)

// TestReproducibleBuild builds ./cmd/rampart with the Makefile's flags
// from two copies of the module at different paths and wants the same
// bytes. With RAMPART_REPRO_COLD=1 the second build starts from an empty
// build cache, so every package is compiled again (slow).
func TestReproducibleBuild(t *testing.T) {
	first := staticBinary(t)
	dir := t.TempDir()
	src := snapshotB()
	second := filepath.Join(dir, "rampart")
	var env []string
	if os.Getenv("RAMPART_REPRO_COLD") == "1" {
		env = append(env, "GOCACHE="+filepath.Join(dir, "gocache"))
	}
	if out, err := goBuild(src, second, env); err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds of the same tree differ (%d and %d bytes)", len(a), len(b))
	}
	if bytes.Contains(a, []byte(repoRoot(t))) || bytes.Contains(a, []byte(src)) {
		t.Error("the binary holds the checkout's path: -trimpath had no effect")
	}
	// Static: no interpreter, so it runs on scratch and in a chroot.
	f, err := elf.Open(first)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (PT_INTERP); build with CGO_ENABLED=0")
		}
	}
}

// containerLayout lays out what the Containerfile's image holds, in a
// directory: the static binary at /rampart, the config and certificates
// under /etc/rampart (mounted read-only in the container), an empty /tmp
// (the --tmpfs /tmp of the run command) and nothing else: no shell, no
// libc, no /etc/passwd.
func containerLayout(t *testing.T, listen, admin string) (root, configPath string) {
	t.Helper()
	bin := staticBinary(t)
	root = t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "rampart"), string(data), 0o755)
	ca, err := selfsigned.NewCA("layout test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Leaf("app.test")
	if err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(root, "etc", "rampart")
	writeFile(t, filepath.Join(etc, "certs", "site.pem"), string(certPEM), 0o644)
	writeFile(t, filepath.Join(etc, "certs", "site-key.pem"), string(keyPEM), 0o600)
	// The key belongs to the image's user, 65532, as a mounted secret would.
	if err := os.Chown(filepath.Join(etc, "certs", "site-key.pem"), 65532, 65532); err != nil {
		t.Fatal(err)
	}
	configPath = filepath.Join(etc, "rampart.yaml")
	writeFile(t, configPath, fmt.Sprintf(`listen: %q
admin: {listen: %q}
tls: {cert: certs/site.pem, key: certs/site-key.pem}
log: {access: stdout, security: stderr}
sites:
  - host: app.test
    upstream: {targets: ["http://127.0.0.1:9"]}
    routes: [{prefix: /}]
`, listen, admin), 0o644)
	for _, d := range []string{etc, filepath.Join(etc, "certs"), filepath.Join(root, "etc")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	return root, configPath
}

func inLayout(root string, args ...string) *exec.Cmd {
	cmd := exec.Command("/rampart", args...)
	cmd.Path = "/rampart"
	cmd.Dir = "/"
	cmd.Env = []string{} // nothing from the host
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: 65532, Gid: 65532, Groups: []uint32{}},
	}
	return cmd
}

// TestContainerLayout runs the static binary as uid 65532 in a chroot
// holding only the binary, the config and the certificates: `rampart
// check` validates and prints the config's fingerprint, and `rampart serve`
// answers on its admin listener.
func TestContainerLayout(t *testing.T) {
	requireRoot(t, "chroot and a uid switch")
	root, configPath := containerLayout(t, "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t))
	cfg, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := inLayout(root, "check", "-c", "/etc/rampart/rampart.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("rampart check in the layout: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), cfg.SHA256) {
		t.Errorf("check does not print the config's fingerprint %s:\n%s", cfg.SHA256, out)
	}
	t.Logf("%s", out)

	cmd := inLayout(root, "serve", "-c", "/etc/rampart/rampart.yaml")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr observetest.Buffer // safe to read while the process writes
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "admin listening") {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not come up in the layout:\n%s", stderr.String())
	}
	resp, err := http.Get("http://" + cfg.Admin.Listen + "/healthz")
	if err != nil {
		t.Fatalf("admin /healthz: %v\n%s", err, stderr.String())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("admin /healthz: %s", resp.Status)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop on SIGTERM")
	}
	// Once serve applies the sandbox, its status line must say it is on
	// (Landlock needs no privilege and works in a chroot).
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, `"msg":"sandbox"`) {
			t.Logf("%s", line)
			if sandbox.ABI() > 0 && !strings.Contains(line, `"enabled":true`) {
				t.Errorf("the sandbox is off in the layout: %s", line)
			}
		}
	}
}

// A world-readable key is refused in the layout too: the image's user
// owns it and nobody else may read it.
func TestContainerLayout_RefusesWorldReadableKey(t *testing.T) {
	requireRoot(t, "chroot and a uid switch")
	root, _ := containerLayout(t, "127.0.0.1:8443", "127.0.0.1:9901")
	if err := os.Chmod(filepath.Join(root, "etc", "rampart", "certs", "site-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := inLayout(root, "check", "-c", "/etc/rampart/rampart.yaml").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "world-readable") {
		t.Fatalf("check accepted a world-readable key: %v\n%s", err, out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
