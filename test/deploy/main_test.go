// Package deploy_test checks the deployment artefacts against the tools
// that consume them (systemd-analyze, nft, the SELinux policy compiler), the
// firewall's behaviour in network namespaces, the reproducible build and
// the program in a minimal container-like layout.
//
// Tools that are missing make their tests skip, saying why, unless
// RAMPART_REQUIRE_DEPLOY_TOOLS=1 (CI installs them: .ci/run).
package deploy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a small network helper, run
// inside a network namespace with `ip netns exec`.
const helperEnv = "RAMPART_DEPLOY_HELPER"

func TestMain(m *testing.M) {
	// The tools live in sbin, which a non-login root shell may lack.
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if !slices.Contains(filepath.SplitList(os.Getenv("PATH")), d) {
			os.Setenv("PATH", os.Getenv("PATH")+string(filepath.ListSeparator)+d)
		}
	}
	switch os.Getenv(helperEnv) {
	case "":
		code := m.Run()
		if buildDir != "" {
			os.RemoveAll(buildDir)
		}
		os.Exit(code)
	case "listen":
		listenHelper(strings.Fields(os.Getenv("ADDRS")))
	case "dial":
		dialHelper(os.Getenv("ADDR"))
	case "udp":
		udpHelper(os.Getenv("ADDR"))
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", os.Getenv(helperEnv))
		os.Exit(2)
	}
	os.Exit(0)
}

// listenHelper accepts on every address, answers "x" and closes, until its
// stdin closes.
func listenHelper(addrs []string) {
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("x"))
				c.Close()
			}
		}()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

// dialHelper connects and reads the listener's answer: "ok", "timeout" or
// the error.
func dialHelper(addr string) {
	c, err := net.DialTimeout("tcp", addr, 1500*time.Millisecond)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			fmt.Println("timeout")
			return
		}
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'x' {
		fmt.Println("no answer:", err)
		return
	}
	fmt.Println("ok")
}

// udpHelper sends one datagram (a DNS query would be one).
func udpHelper(addr string) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte("query")); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sent")
}

// requireTool returns the path of a command the test needs, or skips.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "%s is not installed (Debian: %s)", name, debianPackage[name])
	}
	return p
}

var debianPackage = map[string]string{
	"systemd-analyze": "systemd", "nft": "nftables", "ip": "iproute2",
	"unshare": "util-linux", "checkmodule": "checkpolicy", "semodule_package": "semodule-utils",
	"make": "make", "m4": "m4",
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("RAMPART_REQUIRE_DEPLOY_TOOLS") == "1" {
		t.Fatalf("%s, and RAMPART_REQUIRE_DEPLOY_TOOLS=1", msg)
	}
	t.Skip(msg)
}

func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "%s needs root", why)
	}
}

// repoRoot is the module's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// helperProc starts this test binary as a helper, optionally inside a
// network namespace.
func helperProc(t *testing.T, netns, mode string, env ...string) *exec.Cmd {
	t.Helper()
	args := []string{os.Args[0], "-test.run=^$"}
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	return cmd
}

// startListeners runs a listen helper and waits until it is ready.
func startListeners(t *testing.T, netns string, addrs ...string) {
	t.Helper()
	cmd := helperProc(t, netns, "listen", "ADDRS="+strings.Join(addrs, " "))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("listeners in %s: %q %v", netns, line, err)
	}
}

// dialFrom connects from inside netns and returns "ok", "timeout" or the
// error.
func dialFrom(t *testing.T, netns, addr string) string {
	t.Helper()
	out, err := helperProc(t, netns, "dial", "ADDR="+addr).CombinedOutput()
	if err != nil {
		t.Fatalf("dial helper: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildOut  []byte
)

// staticBinary builds ./cmd/rampart once, as `make build` does, and returns
// the binary's path. It builds from a snapshot of the module: two copies
// taken one right after the other (the second, at a deeper and different
// path, is what TestReproducibleBuild builds again), so that both builds
// see the same tree whatever is edited meanwhile.
func staticBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rampart-deploy-build")
		if buildErr != nil {
			return
		}
		for _, dst := range []string{snapshotA(), snapshotB()} {
			if buildErr = copyModule(repoRoot(t), dst); buildErr != nil {
				return
			}
		}
		buildOut, buildErr = goBuild(snapshotA(), filepath.Join(buildDir, "rampart"), nil)
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildOut)
	}
	return filepath.Join(buildDir, "rampart")
}

func snapshotA() string { return filepath.Join(buildDir, "src") }
func snapshotB() string { return filepath.Join(buildDir, "another", "checkout", "path") }

// buildFlags are the Makefile's `build` flags.
var buildFlags = []string{"build", "-trimpath", "-ldflags", "-s -w -buildid= -X main.version=test"}

func goBuild(dir, out string, env []string) ([]byte, error) {
	cmd := exec.Command("go", append(buildFlags, "-o", out, "./cmd/rampart")...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	return cmd.CombinedOutput()
}

// copyModule copies the module's files (without .git and build output) to
// dst: the builds under test see one snapshot of the tree, whatever is
// edited meanwhile, and two copies at different paths show that the path
// of the checkout does not leak into the binary.
func copyModule(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			switch rel {
			case ".git", "bin", filepath.Join("test", "e2e", "artifacts"):
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}
