// Command run is the load benchmark of rampart against nginx, haproxy,
// caddy and nginx+ModSecurity, all on loopback. It builds rampart, the Go
// upstream and the load generator, makes one certificate, starts each
// target in the foreground for each scenario, measures it from /proc, and
// writes one Markdown table per scenario (medians of -runs runs, each
// figure also as a ratio to nginx measured in the same run).
//
//	go run ./bench/run                      # 3 runs x 5 s, writes bench/RESULTS.md
//	go run ./bench/run -quick               # 1 run x 2 s, 500 WebSockets, no file
//	go run ./bench/run -scenarios 1,4 -targets rampart,nginx
//
// Every load goes to 127.0.0.1 and every step is bounded in time.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-proxy/rampart/bench/internal/loadresult"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
)

type settings struct {
	runs      int
	dur       time.Duration
	warmup    time.Duration
	conns     int
	hsConns   int
	rate      int
	wsCount   int
	scenarios map[string]bool
	targets   map[string]bool
	out       string
	jsonOut   string
	keep      bool
	profile   string
	quick     bool
	root      string
	loadStart string
	loadEnd   string
}

func main() {
	var c settings
	var scen, targ string
	flag.IntVar(&c.runs, "runs", 3, "runs of every scenario and target; tables show the median")
	flag.DurationVar(&c.dur, "d", 5*time.Second, "measured duration of one scenario on one target")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "load before each measured window")
	flag.IntVar(&c.conns, "c", 64, "keepalive connections (scenarios 1, 2, 3, 6)")
	flag.IntVar(&c.hsConns, "hs-c", 32, "concurrent new-connection workers (scenario 4)")
	flag.IntVar(&c.rate, "rate", 2000, "fixed request rate of scenario 6")
	flag.IntVar(&c.wsCount, "ws", 5000, "idle WebSockets of scenario 5")
	flag.StringVar(&scen, "scenarios", "1,2,3,4,5,6", "scenarios to run")
	flag.StringVar(&targ, "targets", "rampart,nginx,haproxy,caddy,nginx-modsec", "targets to run")
	flag.StringVar(&c.out, "out", "", "write the Markdown report to this file (default: bench/RESULTS.md unless -quick)")
	flag.StringVar(&c.jsonOut, "json", "", "also write every raw measurement as JSON to this file")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (configs, logs) for inspection")
	flag.StringVar(&c.profile, "profile", "", "run rampart under a CPU profiler and write one profile per scenario into this directory")
	flag.BoolVar(&c.quick, "quick", false, "development mode: 1 run, 2 s, 500 WebSockets, report to stdout only")
	flag.Parse()
	if c.quick {
		setIfUnset := func(name string, f func()) {
			set := false
			flag.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
			if !set {
				f()
			}
		}
		setIfUnset("runs", func() { c.runs = 1 })
		setIfUnset("d", func() { c.dur = 2 * time.Second })
		setIfUnset("warmup", func() { c.warmup = 500 * time.Millisecond })
		setIfUnset("ws", func() { c.wsCount = 500 })
	}
	c.scenarios = set(scen)
	c.targets = set(targ)
	if err := run(&c); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func set(csv string) map[string]bool {
	m := map[string]bool{}
	for s := range strings.SplitSeq(csv, ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/rampart-proxy/rampart") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the rampart repository")
		}
		dir = parent
	}
}

func raiseNofile() uint64 {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 0
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
	return r.Cur
}

func build(root, out string, extraEnv []string, args ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-o", out}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stderr = os.Stderr
	cmd.Stdout = os.Stderr
	return cmd.Run()
}

func run(c *settings) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	c.root = root
	if c.out == "" && !c.quick {
		c.out = filepath.Join(root, "bench", "RESULTS.md")
	}
	nofile := raiseNofile()
	if need := uint64(3*c.wsCount + 1000); c.scenarios["5"] && nofile < need {
		logf("open-file limit %d is below the %d scenario 5 needs; lowering the WebSocket count", nofile, need)
		c.wsCount = int(nofile-1000) / 3
	}

	dir, err := os.MkdirTemp("", "rampart-bench-")
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if c.keep {
		logf("work directory: %s (kept)", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := filepath.Join(dir, "bin")
	e := &env{dir: dir, bin: bin}

	logf("building rampart, upstream, loadgen")
	version := "bench-" + gitDescribe(root)
	ld := "-s -w -buildid= -X main.version=" + version
	e.rampart = filepath.Join(bin, "rampart")
	if err := build(root, e.rampart, []string{"CGO_ENABLED=0"}, "-ldflags", ld, "./cmd/rampart"); err != nil {
		return fmt.Errorf("build rampart: %w", err)
	}
	if c.profile != "" {
		if err := os.MkdirAll(c.profile, 0o755); err != nil {
			return err
		}
		c.profile, _ = filepath.Abs(c.profile)
		e.profile = c.profile
		e.rampart = filepath.Join(bin, "rampartprof")
		if err := build(root, e.rampart, []string{"CGO_ENABLED=0"}, "./bench/rampartprof"); err != nil {
			return fmt.Errorf("build rampartprof: %w", err)
		}
	}
	for _, p := range []string{"upstream", "loadgen"} {
		if err := build(root, filepath.Join(bin, p), nil, "./bench/"+p); err != nil {
			return fmt.Errorf("build %s: %w", p, err)
		}
	}

	if err := e.makeCerts(); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}

	up, upAddr, err := startUpstream(filepath.Join(bin, "upstream"), dir)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	defer up.stop(3 * time.Second)
	e.upstream = upAddr
	logf("upstream on %s", upAddr)

	all := []target{
		{name: "rampart", kind: "rampart"},
		{name: "nginx", kind: "nginx"},
		{name: "haproxy", kind: "haproxy"},
		{name: "caddy", kind: "caddy"},
		{name: "nginx+ModSecurity", kind: "nginx-modsec"},
	}
	for i := range all {
		all[i].avail = available(all[i].kind)
		if !c.targets[all[i].kind] && !c.targets[all[i].name] {
			all[i].avail = "not selected"
		}
		if all[i].avail != "" && all[i].avail != "not selected" {
			logf("%s: skipped: %s", all[i].name, all[i].avail)
		}
	}

	var ms []measurement
	started := time.Now()
	c.loadStart = loadavg()
	for run := 1; run <= c.runs; run++ {
		for _, sc := range scenarios(c) {
			if !c.scenarios[sc.num] {
				continue
			}
			ts := sc.targets(all)
			// Rotate the order each run so that no target always runs
			// first (warm caches) or last (a busier machine).
			ts = append(ts[(run-1)%len(ts):], ts[:(run-1)%len(ts)]...)
			for _, t := range ts {
				if t.avail != "" {
					continue
				}
				m := measure(c, e, up, sc, t, run)
				ms = append(ms, m)
				if m.Err != "" {
					logf("run %d  %-10s %-18s ERROR %s", run, sc.key, t.name, m.Err)
				} else {
					logf("run %d  %-10s %-18s %s", run, sc.key, t.name, m.short())
				}
			}
		}
	}
	c.loadEnd = loadavg()
	logf("all runs done in %s", time.Since(started).Round(time.Second))

	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(ms, "", "  ")
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	report := renderReport(c, e, all, ms, time.Since(started))
	fmt.Println(report)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(report), 0o644); err != nil {
			return err
		}
		logf("wrote %s", c.out)
	}
	if c.profile != "" {
		logf("CPU profiles of rampart in %s (go tool pprof -top FILE)", c.profile)
	}
	return nil
}

// loadavg is the 1, 5 and 15 minute load average: how busy the shared
// machine was.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " / ")
}

func gitDescribe(root string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func available(kind string) string {
	need := map[string][]string{
		"nginx":        {"nginx"},
		"haproxy":      {"haproxy"},
		"caddy":        {"caddy"},
		"nginx-modsec": {"nginx"},
	}
	for _, b := range need[kind] {
		if _, err := exec.LookPath(b); err != nil {
			return b + " is not installed (apt-get install " + b + ")"
		}
	}
	if kind == "nginx-modsec" {
		for _, f := range []string{modsecModule, modsecRecommended, crsSetup, crsRules} {
			if _, err := os.Stat(f); err != nil {
				return f + " missing (apt-get install libnginx-mod-http-modsecurity modsecurity-crs)"
			}
		}
	}
	return ""
}

func (e *env) makeCerts() error {
	ca, err := selfsigned.NewCA("rampart bench CA")
	if err != nil {
		return err
	}
	cert, key, err := ca.Leaf(Host)
	if err != nil {
		return err
	}
	e.caPEM = filepath.Join(e.dir, "ca.pem")
	e.certPEM = filepath.Join(e.dir, "cert.pem")
	e.keyPEM = filepath.Join(e.dir, "key.pem")
	e.bothPEM = filepath.Join(e.dir, "cert-and-key.pem")
	if err := os.WriteFile(e.caPEM, ca.CertPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(e.certPEM, cert, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(e.keyPEM, key, 0o600); err != nil {
		return err
	}
	return os.WriteFile(e.bothPEM, append(append([]byte{}, cert...), key...), 0o600)
}

func startUpstream(bin, dir string) (*running, string, error) {
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := os.Create(filepath.Join(dir, "upstream.log"))
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	r := &running{name: "upstream", cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		stderr.Close()
		close(r.done)
	}()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case line <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-line:
		addr, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			r.stop(time.Second)
			return nil, "", fmt.Errorf("unexpected first line %q", l)
		}
		r.addr = addr
		return r, addr, nil
	case <-time.After(10 * time.Second):
		r.stop(time.Second)
		return nil, "", fmt.Errorf("did not start")
	}
}

// upstreamStats reads the upstream's request counters (plain HTTP on
// loopback, never through a proxy).
func upstreamStats(addr string) map[string]int64 {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/__stats")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m map[string]int64
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

// scenario is one table of the report (scenario 2 and 3 have two each).
type scenario struct {
	num, key, title string
	desc            string
	feat            features
	args            func(c *settings) []string // loadgen arguments
	kind            string                     // http | ws
	peers           []string                   // target kinds, in row order
	baseline        string                     // target kind the ratios divide by
}

func (s scenario) targets(all []target) []target {
	var out []target
	for _, k := range s.peers {
		for _, t := range all {
			if t.kind == k {
				out = append(out, t)
			}
		}
	}
	return out
}

func scenarios(c *settings) []scenario {
	std := []string{"rampart", "nginx", "haproxy", "caddy"}
	ka := func(extra ...string) func(c *settings) []string {
		return func(c *settings) []string {
			return append([]string{"-mode", "keepalive", "-c", strconv.Itoa(c.conns)}, extra...)
		}
	}
	return []scenario{
		{num: "1", key: "1", title: "1. Small JSON (200 B), TLS keepalive, %d connections",
			desc: "GET /api/small over 64 keepalive TLS connections: the per-request cost of the proxy path.",
			args: ka("-path", "/api/small"), kind: "http", peers: std, baseline: "nginx"},
		{num: "2", key: "2-proxied", title: "2a. Static asset (20 KiB), proxied, %d connections",
			desc: "GET /static/asset.js, every request forwarded to the upstream.",
			args: ka("-path", "/static/asset.js"), kind: "http", peers: std, baseline: "nginx"},
		{num: "2", key: "2-cached", title: "2b. Static asset (20 KiB), cached: rampart cache vs nginx proxy_cache, %d connections",
			desc: "Same requests with the cache on (rampart `cache: {enabled: true, public: true}`, nginx `proxy_cache`); the upstream column counts the requests that still reached it in the measured window.",
			feat: features{cache: true},
			args: ka("-path", "/static/asset.js"), kind: "http", peers: []string{"rampart", "nginx"}, baseline: "nginx"},
		{num: "3", key: "3-get", title: "3a. WAF at paranoia level 1: GET with a query string, %d connections",
			desc: "GET " + wafGetPath + " — rampart (Coraza + CRS 4, `waf: {mode: block, paranoia: 1}`) vs nginx + ModSecurity 3 + CRS 3 (SecRuleEngine On, anomaly blocking, PL1). Both were checked to refuse XSS and SQLi probes with 403 before measuring.",
			feat: features{waf: true},
			args: ka("-path", wafGetPath), kind: "http", peers: []string{"rampart", "nginx-modsec"}, baseline: "nginx-modsec"},
		{num: "3", key: "3-post", title: "3b. WAF at paranoia level 1: small JSON POST, %d connections",
			desc: "POST /api/small with a " + strconv.Itoa(len(wafPostBody)) + "-byte JSON body (Content-Type: application/json), inspected by both WAFs.",
			feat: features{waf: true},
			args: ka("-path", "/api/small", "-method", "POST", "-body", wafPostBody), kind: "http", peers: []string{"rampart", "nginx-modsec"}, baseline: "nginx-modsec"},
		{num: "4", key: "4", title: "4a. Handshake-heavy: a new TLS connection per request, %d workers, same key exchange (X25519) for all",
			desc: "Each request on a new connection: TCP connect, full TLS handshake (no session resumption), GET /api/small, `Connection: close`. Latency includes connect and handshake. The client offers only X25519, so every target does the same key exchange (the OpenSSL 3.0 peers cannot do the post-quantum hybrid).",
			args: func(c *settings) []string {
				return []string{"-mode", "newconn", "-c", strconv.Itoa(c.hsConns), "-path", "/api/small", "-groups", "x25519"}
			}, kind: "http", peers: std, baseline: "nginx"},
		{num: "4", key: "4-pq", title: "4b. Handshake-heavy, %d workers, the client offers X25519MLKEM768 first (as current browsers do)",
			desc: "Same as 4a with Go's default client groups: rampart negotiates the post-quantum hybrid X25519MLKEM768 (an ML-KEM-768 encapsulation on top of X25519 in every handshake), nginx falls back to X25519.",
			args: func(c *settings) []string {
				return []string{"-mode", "newconn", "-c", strconv.Itoa(c.hsConns), "-path", "/api/small"}
			}, kind: "http", peers: []string{"rampart", "nginx"}, baseline: "nginx"},
		{num: "5", key: "5", title: "5. %d idle WebSockets held open",
			desc: "WebSockets opened through the proxy to the upstream's echo (one echo each to prove both legs work), held idle, then closed. RSS per WebSocket = (RSS held − RSS before) / sockets; both legs (client TLS + upstream TCP) count. 'after close' is sampled 1 s and 5 s after the last socket closed.",
			args: func(c *settings) []string {
				hold := max(c.dur, 3*time.Second)
				return []string{"-mode", "ws", "-n", strconv.Itoa(c.wsCount), "-c", "64", "-path", "/ws", "-d", hold.String()}
			}, kind: "ws", peers: std, baseline: "nginx"},
		{num: "6", key: "6", title: "6. Latency at a fixed rate of %d req/s (open loop)",
			desc: "GET /api/small at a constant rate over 64 keepalive connections; latency is measured from each request's scheduled send time, so stalls are not hidden (no coordinated omission).",
			args: func(c *settings) []string {
				return []string{"-mode", "rate", "-rate", strconv.Itoa(c.rate), "-c", strconv.Itoa(c.conns), "-path", "/api/small"}
			}, kind: "rate", peers: std, baseline: "nginx"},
	}
}

// measurement is one scenario on one target in one run.
type measurement struct {
	Run      int               `json:"run"`
	Scenario string            `json:"scenario"`
	Target   string            `json:"target"`
	Kind     string            `json:"kind"`
	Err      string            `json:"error,omitempty"`
	Load     loadresult.Result `json:"load"`
	CPU      float64           `json:"cpu_seconds"` // proxy CPU in the measured window
	Syscalls int64             `json:"syscalls_rw"` // proxy read+write system calls in the window
	PeakRSS  int64             `json:"peak_rss"`
	// Upstream requests for the static asset in the measured window.
	UpstreamAsset int64 `json:"upstream_asset"`
	// Scenario 5.
	RSSBefore   int64   `json:"rss_before"`
	RSSHeld     int64   `json:"rss_held"`
	RSSAfter1   int64   `json:"rss_after_1s"`
	RSSAfter5   int64   `json:"rss_after_5s"`
	UpOpenHeld  int64   `json:"upstream_ws_open_held"`
	UpOpenAfter int64   `json:"upstream_ws_open_after"`
	WSCPU       float64 `json:"ws_cpu_seconds"`
	// Crash is set when the target died (a panic, for a Go target);
	// CrashAfter when that happened after the measured window, which
	// keeps the figures.
	Crash      string `json:"crash,omitempty"`
	CrashAfter bool   `json:"crash_after_window,omitempty"`
}

func (m measurement) short() string {
	l := m.Load
	if m.Kind == "ws" {
		return fmt.Sprintf("opened %d/%d  rss %.1f→%.1f→%.1f MiB  %.1f KiB/ws  upstream open %d→%d",
			l.WSOpened, l.WSOpened+l.WSFailed, mib(m.RSSBefore), mib(m.RSSHeld), mib(m.RSSAfter5),
			perConnKiB(m), m.UpOpenHeld, m.UpOpenAfter)
	}
	return fmt.Sprintf("%8.0f req/s  p50 %.2f  p99 %.2f  p99.9 %.2f ms  cpu %.2fs  rss %.1f MiB  err %d non2xx %d  %s",
		l.RPS, l.P50, l.P99, l.P999, m.CPU, mib(m.PeakRSS), l.Errors, l.Non2xx, l.TLS)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func perConnKiB(m measurement) float64 {
	if m.Load.WSOpened == 0 {
		return 0
	}
	return float64(m.RSSHeld-m.RSSBefore) / 1024 / float64(m.Load.WSOpened)
}

// measure starts t for sc, runs the load generator against it, samples
// the target's process tree and stops it.
func measure(c *settings, e *env, up *running, sc scenario, t target, run int) (m measurement) {
	m = measurement{Run: run, Scenario: sc.key, Target: t.name, Kind: sc.kind}
	label := fmt.Sprintf("run%d-%s-%s", run, sc.key, t.kind)
	r, err := e.start(t, sc.feat, label)
	if err != nil {
		m.Err = "start: " + err.Error()
		return m
	}
	defer func() {
		r.stop(5 * time.Second)
		// A panic on the way down, or one the loop above did not see.
		if m.Crash == "" {
			if tail := r.tail(); strings.HasPrefix(tail, "panic: ") || strings.HasPrefix(tail, "fatal error: ") {
				m.Crash = tail
				m.CrashAfter = m.Err == ""
			}
		}
	}()
	if err := e.ready(r, 30*time.Second, sc.feat); err != nil {
		m.Err = err.Error()
		return m
	}
	pid := r.pid()

	args := append([]string{"-addr", r.addr, "-host", Host, "-ca", e.caPEM,
		"-d", c.dur.String(), "-warmup", c.warmup.String()}, sc.args(c)...)
	if sc.kind == "ws" {
		time.Sleep(500 * time.Millisecond)
		m.RSSBefore = rssBytes(pid)
	}
	samp := startSampler(pid, 100*time.Millisecond)
	var cpu0, cpu1, wsCPU0 float64
	var sys0 int64
	var before map[string]int64
	wsCPU0 = cpuSeconds(pid)
	onLine := func(line string) {
		switch {
		case line == "phase measure":
			before = upstreamStats(e.upstream)
			cpu0 = cpuSeconds(pid)
			sys0 = syscallsRW(pid)
		case line == "phase done":
			cpu1 = cpuSeconds(pid)
			m.Syscalls = syscallsRW(pid) - sys0
			after := upstreamStats(e.upstream)
			if before != nil && after != nil {
				m.UpstreamAsset = after["asset"] + after["asset_not_modified"] - before["asset"] - before["asset_not_modified"]
			}
		case strings.HasPrefix(line, "phase open"):
			time.Sleep(time.Second) // let the last tunnels settle
			m.RSSHeld = rssBytes(pid)
			if e.profile != "" && t.kind == "rampart" {
				_ = syscall.Kill(pid, syscall.SIGUSR1) // heap profile of the held sockets
			}
			if s := upstreamStats(e.upstream); s != nil {
				m.UpOpenHeld = s["ws_open"]
			}
		}
	}
	timeout := c.warmup + c.dur + 90*time.Second
	lr, err := runLoadgen(filepath.Join(e.bin, "loadgen"), args, timeout, onLine)
	m.PeakRSS = samp.Stop()
	m.Load = lr
	select {
	case <-r.done:
		m.Crash = fmt.Sprintf("exited (%v): %s", r.err, r.tail())
		if err != nil || lr.Requests == 0 || lr.Errors > 0 || sc.kind == "ws" {
			m.Err = "target exited during the measured window: " + m.Crash
			return m
		}
		// It went down after the window (when the load generator closed
		// its connections): the figures stand, the crash is reported.
		m.CrashAfter = true
	default:
	}
	if err != nil {
		m.Err = "loadgen: " + err.Error()
		return m
	}
	m.CPU = cpu1 - cpu0
	if sc.kind == "ws" {
		time.Sleep(time.Second)
		m.RSSAfter1 = rssBytes(pid)
		time.Sleep(4 * time.Second)
		m.RSSAfter5 = rssBytes(pid)
		m.WSCPU = cpuSeconds(pid) - wsCPU0
		if s := upstreamStats(e.upstream); s != nil {
			m.UpOpenAfter = s["ws_open"]
		}
		if lr.WSOpened == 0 {
			m.Err = "no WebSocket opened: " + lr.FirstError
		}
	} else if lr.Requests == 0 {
		m.Err = "no request completed: " + lr.FirstError
	}
	return m
}

func runLoadgen(bin string, args []string, timeout time.Duration, onLine func(string)) (loadresult.Result, error) {
	var lr loadresult.Result
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return lr, err
	}
	if err := cmd.Start(); err != nil {
		return lr, err
	}
	var last string
	br := bufio.NewReader(out)
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimSpace(line)
		if line != "" {
			if strings.HasPrefix(line, "{") {
				last = line
			} else {
				onLine(line)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		return lr, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if last == "" {
		return lr, fmt.Errorf("no result line")
	}
	if err := json.Unmarshal([]byte(last), &lr); err != nil {
		return lr, err
	}
	return lr, nil
}
