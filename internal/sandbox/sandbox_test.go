package sandbox_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/pipeline"
	"github.com/rampart-proxy/rampart/internal/sandbox"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
	"github.com/rampart-proxy/rampart/internal/server"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/tlspolicy"
)

// The sandbox applies to the whole process, irreversibly: every test that
// enforces it re-executes this test binary with helperEnv set, and TestMain
// runs the helper instead of the tests.
const helperEnv = "RAMPART_SANDBOX_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "landlock":
		landlockHelper()
	case "drop":
		dropHelper()
	case "server":
		serverHelper()
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", os.Getenv(helperEnv))
		os.Exit(2)
	}
	os.Exit(0)
}

// result is what a helper found out: "ok" or the error.
type result map[string]string

func (r result) set(name string, err error) {
	if err == nil {
		r[name] = "ok"
	} else {
		r[name] = err.Error()
	}
}

func denied(s string) bool {
	return strings.Contains(s, "permission denied") || strings.Contains(s, "operation not permitted")
}

func emit(v any) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(3)
}

func env(name string) string { return os.Getenv("SBX_" + name) }

// landlockHelper plays a rampart server: it loads the config, reads the keys
// and binds the listener, enters the sandbox, then probes what it can reach.
// On a line on stdin it reloads and reports again.
func landlockHelper() {
	cfg, err := config.Load(env("CONFIG"))
	if err != nil {
		fatal("load: %v", err)
	}
	if _, err := tlspolicy.Build(cfg); err != nil {
		fatal("tls: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fatal("listen: %v", err)
	}
	defer ln.Close()
	logf, err := observe.OpenLog(cfg.Log.Access)
	if err != nil {
		fatal("log: %v", err)
	}
	st, err := sandbox.Apply(cfg, sandbox.Options{CacheDir: cfg.CacheDir})
	if err != nil {
		fatal("apply: %v", err)
	}
	r := result{}
	// The disk tier of the cache: a site directory, a temporary file
	// renamed into place, both deleted again.
	site := filepath.Join(cfg.CacheDir, "0123abcd")
	err = os.Mkdir(site, 0o700)
	if err == nil {
		tmp, final := filepath.Join(site, "x.tmp"), filepath.Join(site, "x")
		err = errors.Join(os.WriteFile(tmp, []byte("body"), 0o600), os.Rename(tmp, final), os.Remove(final), os.Remove(site))
	}
	r.set("cache dir", err)
	_, err = os.ReadFile(env("CONFIG"))
	r.set("read config", err)
	_, err = os.ReadFile(env("SECRET"))
	r.set("read secret", err)
	_, err = os.ReadFile("/etc/shadow")
	r.set("read /etc/shadow", err)
	_, err = os.ReadFile("/etc/hosts")
	r.set("read /etc/hosts", err)
	_, err = x509.SystemCertPool()
	r.set("system roots", err)
	_, err = time.LoadLocation("Europe/Berlin")
	r.set("time zone", err)
	err = os.WriteFile(filepath.Join(filepath.Dir(env("CONFIG")), "dropped"), []byte("x"), 0o600)
	r.set("write config dir", err)
	_, err = logf.Write([]byte("{}\n"))
	r.set("write open log", err)
	err = os.WriteFile(filepath.Join(filepath.Dir(cfg.Log.Access), "new.log"), []byte("x"), 0o600)
	r.set("create in log dir", err)
	err = os.WriteFile(filepath.Join(filepath.Dir(env("SECRET")), "planted"), []byte("x"), 0o600)
	r.set("write outside", err)
	err = exec.Command("/bin/true").Run()
	r.set("exec", err)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+env("UP"), 2*time.Second)
	if err == nil {
		c.Close()
	}
	r.set("dial upstream", err)
	c, err = net.DialTimeout("tcp", "127.0.0.1:"+env("OTHER"), 2*time.Second)
	if err == nil {
		c.Close()
	}
	r.set("dial other", err)
	// Plain TCP: Landlock does not cover Multipath TCP, which net.Listen
	// uses by default since Go 1.24 (see README: the firewall and
	// SocketBindDeny= cover it).
	var plain net.ListenConfig
	plain.SetMultipathTCP(false)
	l2, err := plain.Listen(context.Background(), "tcp", "127.0.0.1:"+env("OTHER_BIND"))
	if err == nil {
		l2.Close()
	}
	r.set("bind unlisted", err)
	l3, err := plain.Listen(context.Background(), "tcp", cfg.Admin.Listen)
	if err == nil {
		l3.Close()
	}
	r.set("bind admin", err)
	_, err = observe.Registry.Gather()
	r.set("metrics", err)
	emit(map[string]any{"phase": "sandboxed", "status": st, "results": r})

	// Reload, as SIGHUP does: the operator has replaced the certificate
	// and the config by rename in the meantime.
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fatal("stdin: %v", err)
	}
	r = result{}
	cfg2, err := config.Load(env("CONFIG"))
	r.set("reload config", err)
	if err == nil {
		r["sha256"] = cfg2.SHA256
		tc, err := tlspolicy.Build(cfg2)
		r.set("reload tls", err)
		if err == nil {
			for _, host := range []string{"app.test", "other.test"} {
				cert, err := tc.GetCertificate(&tls.ClientHelloInfo{ServerName: host})
				if err == nil {
					leaf, _ := x509.ParseCertificate(cert.Certificate[0])
					r["serial "+host] = leaf.SerialNumber.String()
				}
			}
		}
		p, err := pipeline.Build(context.Background(), cfg2, &pipeline.Shared{Store: state.NewMemory(state.MemoryOptions{})})
		r.set("reload pipeline", err)
		if err == nil {
			p.Close()
		}
	}
	emit(map[string]any{"phase": "reloaded", "results": r})
}

// serverHelper runs the real server in the order serve uses: server.New
// (keys read, logs opened, listeners bound), then the sandbox, then Serve.
// A line on stdin reloads; EOF stops it.
func serverHelper() {
	cfg, err := config.Load(env("CONFIG"))
	if err != nil {
		fatal("load: %v", err)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		fatal("server: %v", err)
	}
	srv.Load = func() (*config.Config, error) { return config.Load(env("CONFIG")) }
	st, err := sandbox.Apply(cfg, sandbox.Options{})
	if err != nil {
		fatal("apply: %v", err)
	}
	go func() {
		if err := srv.Serve(); err != nil {
			fatal("serve: %v", err)
		}
	}()
	emit(map[string]any{"phase": "serving", "status": st, "addr": srv.Addrs()[0].String(), "admin": srv.AdminAddr().String()})
	in := bufio.NewReader(os.Stdin)
	for {
		if _, err := in.ReadString('\n'); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			return
		}
		r := result{}
		r.set("reload", srv.Reload(context.Background()))
		r["sha256"] = srv.Config().SHA256
		emit(map[string]any{"phase": "reloaded", "results": r})
	}
}

func dropHelper() {
	r := result{}
	err := sandbox.DropPrivileges(env("USER"), env("GROUP"))
	r.set("drop", err)
	r["uid"] = strconv.Itoa(os.Getuid())
	r["euid"] = strconv.Itoa(os.Geteuid())
	r["gid"] = strconv.Itoa(os.Getgid())
	gs, _ := os.Getgroups()
	r["groups"] = fmt.Sprint(gs)
	_, err = os.ReadFile(env("ROOT_ONLY"))
	r.set("read root-only", err)
	_, err = os.ReadFile(env("PUBLIC"))
	r.set("read public", err)
	r.set("setuid 0", syscall.Setuid(0))
	// Every thread switched, not just this one: a fresh goroutine on
	// another OS thread sees the same ids.
	done := make(chan string)
	for range 4 {
		go func() { done <- fmt.Sprint(syscall.Getuid(), syscall.Geteuid()) }()
	}
	for range 4 {
		if ids := <-done; ids != r["uid"]+" "+r["euid"] {
			r["threads"] = "thread with ids " + ids
		}
	}
	emit(r)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return portOf(l.Addr())
}

func portOf(a net.Addr) string { return strconv.Itoa(a.(*net.TCPAddr).Port) }

// acceptor is a listener that accepts and closes until the test ends.
func acceptor(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return portOf(l.Addr())
}

type layout struct {
	root, etc, certs, logs, secret, tmp, config string
	ca                                          *selfsigned.CA
}

func newLayout(t *testing.T) *layout {
	t.Helper()
	root := t.TempDir()
	l := &layout{
		root:   root,
		etc:    filepath.Join(root, "etc", "rampart"),
		logs:   filepath.Join(root, "log", "rampart"),
		secret: filepath.Join(root, "secret"),
		tmp:    filepath.Join(root, "tmp"),
	}
	l.certs = filepath.Join(l.etc, "certs")
	l.config = filepath.Join(l.etc, "rampart.yaml")
	for _, d := range []string{l.certs, l.logs, l.secret, l.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if l.ca, err = selfsigned.NewCA("sandbox test CA"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.secret, "shadow"), []byte("root:$6$secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

// writeCert writes a fresh certificate by rename, as certbot or an
// operator's deployment would, and returns its serial number.
func (l *layout) writeCert(t *testing.T) string {
	t.Helper()
	certPEM, keyPEM, err := l.ca.Leaf("app.test")
	if err != nil {
		t.Fatal(err)
	}
	replace(t, filepath.Join(l.certs, "site.pem"), certPEM, 0o644)
	replace(t, filepath.Join(l.certs, "site-key.pem"), keyPEM, 0o600)
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// writeCertbot lays out a certificate as certbot does: live/NAME/*.pem are
// links into archive/NAME/, and a renewal adds numbered files there and
// repoints the links. It returns the serial number.
func (l *layout) writeCertbot(t *testing.T, n int) string {
	t.Helper()
	certPEM, keyPEM, err := l.ca.Leaf("other.test")
	if err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(l.root, "letsencrypt", "live", "other")
	archive := filepath.Join(l.root, "letsencrypt", "archive", "other")
	must(t, os.MkdirAll(live, 0o755))
	must(t, os.MkdirAll(archive, 0o700))
	for _, f := range []struct {
		name string
		data []byte
	}{{"fullchain", certPEM}, {"privkey", keyPEM}} {
		target := filepath.Join(archive, fmt.Sprintf("%s%d.pem", f.name, n))
		must(t, os.WriteFile(target, f.data, 0o600))
		link := filepath.Join(live, f.name+".pem")
		must(t, os.Symlink(fmt.Sprintf("../../archive/other/%s%d.pem", f.name, n), link+".new"))
		must(t, os.Rename(link+".new", link))
	}
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

func replace(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func requireLandlock(t *testing.T) {
	t.Helper()
	if sandbox.ABI() < 1 {
		if os.Getenv("RAMPART_REQUIRE_LANDLOCK") == "1" {
			t.Fatal("the kernel has no Landlock and RAMPART_REQUIRE_LANDLOCK=1")
		}
		t.Skip("the kernel has no Landlock: nothing to enforce")
	}
}

func helper(t *testing.T, mode string, vars map[string]string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, "SBX_"+k+"="+v)
	}
	return cmd
}

func TestLandlock_ConfinesFilesAndPorts_AndReloadStillWorks(t *testing.T) {
	requireLandlock(t)
	l := newLayout(t)
	oldSerial := l.writeCert(t)
	oldOther := l.writeCertbot(t, 1)
	up, other := acceptor(t), acceptor(t)
	listen, admin, otherBind := freePort(t), freePort(t), freePort(t)
	cfgText := fmt.Sprintf(`listen: "127.0.0.1:%s"
admin: {listen: "127.0.0.1:%s"}
tls: {cert: certs/site.pem, key: certs/site-key.pem}
log: {access: %s, security: stderr}
cache_dir: %[6]s
sites:
  - host: app.test
    upstream: {targets: ["http://127.0.0.1:%[4]s"]}
    routes: [{prefix: /}]
  - host: other.test
    tls: {cert: %[5]s/fullchain.pem, key: %[5]s/privkey.pem}
    upstream: {targets: ["http://127.0.0.1:%[4]s"]}
    routes: [{prefix: /}]
`, listen, admin, filepath.Join(l.logs, "access.log"), up, filepath.Join(l.root, "letsencrypt", "live", "other"), filepath.Join(l.root, "cache"))
	must(t, os.Mkdir(filepath.Join(l.root, "cache"), 0o700))
	replace(t, l.config, []byte(cfgText), 0o644)

	cmd := helper(t, "landlock", map[string]string{
		"CONFIG": l.config, "SECRET": filepath.Join(l.secret, "shadow"),
		"UP": up, "OTHER": other, "OTHER_BIND": otherBind,
	})
	// The temp dir is read-write under the sandbox: it must not be the
	// one holding the secret.
	cmd.Env = append(cmd.Env, "TMPDIR="+l.tmp)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	next := func() map[string]json.RawMessage {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("helper ended early: %v\n%s", lines.Err(), stderr.String())
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatalf("helper output %q: %v", lines.Text(), err)
		}
		return m
	}

	first := next()
	var st sandbox.Status
	var r result
	must(t, json.Unmarshal(first["status"], &st))
	must(t, json.Unmarshal(first["results"], &r))
	t.Logf("status: %s", st)
	if !st.Enabled || !st.FS || st.ABI != min(sandbox.ABI(), 11) {
		t.Fatalf("status %+v: want enabled, fs rules, ABI %d", st, min(sandbox.ABI(), 11))
	}
	allowed := []string{"read config", "read /etc/hosts", "system roots", "time zone", "write open log", "create in log dir", "cache dir", "dial upstream", "bind admin", "metrics"}
	refused := []string{"read secret", "read /etc/shadow", "write config dir", "write outside", "exec"}
	if sandbox.ABI() >= 4 {
		if !st.Net {
			t.Errorf("kernel ABI %d but net rules not enforced", sandbox.ABI())
		}
		refused = append(refused, "dial other", "bind unlisted")
	} else {
		t.Logf("kernel Landlock ABI %d has no TCP rules; port checks skipped", sandbox.ABI())
	}
	for _, k := range allowed {
		if r[k] != "ok" {
			t.Errorf("%s: %s, want allowed", k, r[k])
		}
	}
	for _, k := range refused {
		if !denied(r[k]) {
			t.Errorf("%s: %q, want permission denied", k, r[k])
		}
	}

	// Replace the certificate and the config by rename, then reload.
	newSerial := l.writeCert(t)
	newOther := l.writeCertbot(t, 2)
	if newSerial == oldSerial || newOther == oldOther {
		t.Fatal("same serial twice")
	}
	replace(t, l.config, []byte(cfgText+"    # edited\n"), 0o644)
	newCfg, err := config.Load(l.config)
	must(t, err)
	if _, err := io.WriteString(stdin, "reload\n"); err != nil {
		t.Fatal(err)
	}
	second := next()
	r = nil
	must(t, json.Unmarshal(second["results"], &r))
	for _, k := range []string{"reload config", "reload tls", "reload pipeline"} {
		if r[k] != "ok" {
			t.Errorf("%s under the sandbox: %s", k, r[k])
		}
	}
	if r["sha256"] != newCfg.SHA256 {
		t.Errorf("reloaded config sha256 %s, want the replaced file's %s", r["sha256"], newCfg.SHA256)
	}
	if r["serial app.test"] != newSerial {
		t.Errorf("reloaded certificate serial %s, want the one replaced by rename %s (old %s)", r["serial app.test"], newSerial, oldSerial)
	}
	if r["serial other.test"] != newOther {
		t.Errorf("reloaded certificate serial %s, want the renewed certbot one %s (old %s)", r["serial other.test"], newOther, oldOther)
	}
}

// TestLandlock_Server runs the whole server under the sandbox: HTTPS
// through the pipeline to the upstream, a multipart upload (the WAF spools
// its file part to the temp dir), metrics on the admin listener, file logs
// and a reload with a renewed certificate.
func TestLandlock_Server(t *testing.T) {
	requireLandlock(t)
	l := newLayout(t)
	l.writeCert(t)
	upstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "upstream saw %s %s (%d bytes)", r.Method, r.URL.Path, n)
	}), ReadHeaderTimeout: 5 * time.Second}
	ul, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go upstream.Serve(ul)
	t.Cleanup(func() { upstream.Close() })
	cfgText := fmt.Sprintf(`listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0"}
tls: {cert: certs/site.pem, key: certs/site-key.pem}
log: {access: %s, security: %s}
sites:
  - host: app.test
    upstream: {targets: ["http://%s"]}
    routes:
      - prefix: /
        methods: [GET, POST]
`, filepath.Join(l.logs, "access.log"), filepath.Join(l.logs, "security.log"), ul.Addr())
	replace(t, l.config, []byte(cfgText), 0o644)

	cmd := helper(t, "server", map[string]string{"CONFIG": l.config})
	cmd.Env = append(cmd.Env, "TMPDIR="+l.tmp)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	next := func() map[string]json.RawMessage {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("server helper ended: %v\n%s", lines.Err(), stderr.String())
		}
		var m map[string]json.RawMessage
		must(t, json.Unmarshal(lines.Bytes(), &m))
		return m
	}
	first := next()
	var st sandbox.Status
	var addr, admin string
	must(t, json.Unmarshal(first["status"], &st))
	must(t, json.Unmarshal(first["addr"], &addr))
	must(t, json.Unmarshal(first["admin"], &admin))
	if !st.Enabled {
		t.Fatalf("sandbox not enabled: %s", st)
	}

	pool := x509.NewCertPool()
	pool.AddCert(l.ca.Cert)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "app.test"},
	}}
	get := func(method, body, ctype string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+"/upload", strings.NewReader(body))
		req.Host = "app.test"
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v\n%s", method, err, stderr.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("GET", "", ""); code != 200 || !strings.Contains(body, "upstream saw GET /upload") {
		t.Errorf("GET through the sandboxed server: %d %q", code, body)
	}
	var mp strings.Builder
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "report.txt")
	fw.Write([]byte(strings.Repeat("quarterly numbers\n", 200)))
	mw.Close()
	if code, body := get("POST", mp.String(), mw.FormDataContentType()); code != 200 || !strings.Contains(body, "upstream saw POST") {
		t.Errorf("multipart upload through the sandboxed server: %d %q\n%s", code, body, stderr.String())
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	must(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(metrics), "process_open_fds") {
		t.Errorf("metrics under the sandbox: %d, process collector present: %v", resp.StatusCode, strings.Contains(string(metrics), "process_open_fds"))
	}

	// Renew the certificate, edit the config, reload.
	serial := l.writeCert(t)
	replace(t, l.config, []byte(cfgText+"    # reloaded\n"), 0o644)
	want, err := config.Load(l.config)
	must(t, err)
	io.WriteString(stdin, "reload\n")
	var r result
	must(t, json.Unmarshal(next()["results"], &r))
	if r["reload"] != "ok" || r["sha256"] != want.SHA256 {
		t.Fatalf("reload under the sandbox: %v (want sha256 %s)\n%s", r, want.SHA256, stderr.String())
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "app.test"})
	must(t, err)
	got := conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	conn.Close()
	if got != serial {
		t.Errorf("after reload the server presents serial %s, want the renewed %s", got, serial)
	}
	if code, _ := get("GET", "", ""); code != 200 {
		t.Errorf("GET after reload: %d", code)
	}
	// The logs reach their files (buffered: give them a moment).
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(l.logs, "access.log"))
		if strings.Contains(string(b), `"path":"/upload"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("access log has no request line:\n%s", b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLandlock_DisabledDoesNothing(t *testing.T) {
	// Disabled never touches the process, so it runs in this one.
	cfg, err := config.Parse("/etc/rampart/rampart.yaml", []byte(minimalConfig))
	must(t, err)
	st, err := sandbox.Apply(cfg, sandbox.Options{Disabled: true})
	must(t, err)
	if st.Enabled || st.Plan != nil || !strings.Contains(st.String(), "sandbox: off") {
		t.Fatalf("disabled sandbox reported %+v (%s)", st, st)
	}
	if _, err := os.ReadFile("/etc/hostname"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the process was restricted: %v", err)
	}
}

func TestDropPrivileges_ToNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dropping privileges needs root; this test runs as uid", os.Geteuid())
	}
	dir := t.TempDir()
	// The file's mode, not a directory's, must be what refuses.
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Chmod(filepath.Dir(dir), 0o755))
	rootOnly := filepath.Join(dir, "root-only")
	public := filepath.Join(dir, "public")
	must(t, os.WriteFile(rootOnly, []byte("secret"), 0o600))
	must(t, os.WriteFile(public, []byte("hello"), 0o644))
	out, err := helper(t, "drop", map[string]string{"USER": "nobody", "ROOT_ONLY": rootOnly, "PUBLIC": public}).Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var r result
	must(t, json.Unmarshal(out, &r))
	t.Logf("after drop: %v", r)
	if r["drop"] != "ok" {
		t.Fatalf("DropPrivileges: %s", r["drop"])
	}
	if r["uid"] == "0" || r["euid"] == "0" || r["gid"] == "0" {
		t.Errorf("still root: uid %s euid %s gid %s", r["uid"], r["euid"], r["gid"])
	}
	if strings.Contains(" "+strings.Trim(r["groups"], "[]")+" ", " 0 ") {
		t.Errorf("root group kept as a supplementary group: %s", r["groups"])
	}
	if !denied(r["read root-only"]) {
		t.Errorf("read a root-only 0600 file after the drop: %s", r["read root-only"])
	}
	if r["read public"] != "ok" {
		t.Errorf("cannot read a 0644 file after the drop: %s", r["read public"])
	}
	if !denied(r["setuid 0"]) {
		t.Errorf("setuid(0) after the drop: %s", r["setuid 0"])
	}
	if r["threads"] != "" {
		t.Errorf("not every thread switched: %s", r["threads"])
	}
}

func TestDropPrivileges_RefusesRootAndUnknown(t *testing.T) {
	for _, c := range []struct{ user, group, want string }{
		{"root", "", "uid 0"},
		{"0", "", "uid 0"},
		{"nobody", "root", "gid 0"},
		{"nobody", "0", "gid 0"},
		{"", "", "no user"},
		{"no-such-user-rampart", "", "unknown user"},
		{"nobody", "no-such-group-rampart", "unknown group"},
	} {
		err := sandbox.DropPrivileges(c.user, c.group)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DropPrivileges(%q, %q) = %v, want an error with %q", c.user, c.group, err, c.want)
		}
	}
	if os.Getuid() == 0 && os.Geteuid() == 0 {
		return
	}
	t.Fatal("a refused drop changed the process's ids")
}

const minimalConfig = `listen: "0.0.0.0:443"
admin: {listen: "127.0.0.1:9901"}
tls: {cert: certs/site.pem, key: certs/site-key.pem, client_ca: /etc/ssl/private/clients.pem, client_auth: require}
log: {access: /var/log/rampart/access.log, security: /var/log/rampart.log}
state: {store: redis, redis: {address: "10.0.0.9:6379"}}
sites:
  - host: app.example.com
    upstream:
      targets: ["https://10.0.0.5:8445", "http://app.internal:8080"]
      tls: {ca: /etc/rampart/ca/internal.pem}
    routes: [{prefix: /}]
  - host: other.example.com
    tls: {cert: /etc/letsencrypt/live/other/fullchain.pem, key: /etc/letsencrypt/live/other/privkey.pem}
    upstream: {targets: ["http://10.0.0.6:8445"]}
    auth: {kind: jwt, keys_url: "https://10.0.0.20/jwks", issuer: "https://idp", audience: app}
    brute_force: {syslog: {address: "10.0.0.30:514"}}
    routes:
      - prefix: /
      - prefix: /local/
        auth: {keys_url: "", keys_file: /etc/rampart/jwks/keys.json}
`

func TestPlan_FromConfig(t *testing.T) {
	cfg, err := config.Parse("/etc/rampart/rampart.yaml", []byte(minimalConfig))
	must(t, err)
	p, err := sandbox.NewPlan(cfg, sandbox.Options{CacheDir: "/var/cache/rampart"})
	must(t, err)
	var ro, rw []string
	for _, x := range p.ReadOnly {
		ro = append(ro, fmt.Sprintf("%s file=%v", x.Path, x.File))
	}
	for _, x := range p.ReadWrite {
		rw = append(rw, fmt.Sprintf("%s file=%v", x.Path, x.File))
	}
	wantRO := []string{
		"/etc/letsencrypt/live/other file=false",
		"/etc/rampart file=false", // config, certs/ and ca/ below it
		"/etc/ssl/private/clients.pem file=true",
	}
	wantRW := []string{
		"/var/cache/rampart file=false",
		"/var/log/rampart file=false",
		"/var/log/rampart.log file=true",
	}
	if fmt.Sprint(ro) != fmt.Sprint(wantRO) {
		t.Errorf("read-only:\n got %v\nwant %v", ro, wantRO)
	}
	if fmt.Sprint(rw) != fmt.Sprint(wantRW) {
		t.Errorf("read-write:\n got %v\nwant %v", rw, wantRW)
	}
	if fmt.Sprint(p.BindPorts) != "[443 9901]" {
		t.Errorf("bind ports %v, want [443 9901]", p.BindPorts)
	}
	if fmt.Sprint(p.ConnectPorts) != "[443 6379 8080 8445]" {
		t.Errorf("connect ports %v, want [443 6379 8080 8445] (JWKS, redis, upstreams)", p.ConnectPorts)
	}
	if fmt.Sprint(p.ConnectUDP) != "[514]" {
		t.Errorf("UDP ports %v, want [514] (syslog)", p.ConnectUDP)
	}
	if !p.DNS {
		t.Error("app.internal is a name: DNS should be allowed")
	}
	if len(p.Warnings) != 2 {
		t.Errorf("want warnings for the two files in shared directories, got %q", p.Warnings)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
