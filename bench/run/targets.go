package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Host is the site name: SNI and Host of every request.
const Host = "bench.test"

// features are what a scenario switches on in a target.
type features struct {
	waf   bool // WAF blocking at paranoia level 1
	cache bool // cache on the static route
}

// env is what every target is started from.
type env struct {
	dir      string // work directory of the whole run
	bin      string // directory of the built binaries
	upstream string // host:port of the Go upstream
	caPEM    string // CA file the load generator trusts
	certPEM  string // leaf + CA chain
	keyPEM   string // leaf key (mode 0600)
	bothPEM  string // chain + key in one file (haproxy)
	rampart  string // rampart binary (or the profiling wrapper)
	profile  string // directory for CPU profiles, "" for none
}

// target is one proxy under test.
type target struct {
	name  string // row label
	kind  string // rampart | nginx | haproxy | caddy | nginx-modsec
	avail string // "" when it can run, else why not
}

// running is a started target.
type running struct {
	name string
	cmd  *exec.Cmd
	addr string
	dir  string
	done chan struct{}
	err  error
}

func (r *running) pid() int { return r.cmd.Process.Pid }

// stop ends the target: SIGTERM to the process, then SIGKILL to its process
// group if it is still there after grace.
func (r *running) stop(grace time.Duration) {
	if r == nil || r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(grace):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
	// Workers of a multi-process server share the group; none may outlive
	// the master.
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}

// start writes the target's config for the scenario's features into a
// fresh directory and starts it in the foreground.
func (e *env) start(t target, f features, label string) (*running, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, label)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var cmd *exec.Cmd
	var stdout io.Writer
	switch t.kind {
	case "rampart":
		admin, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg := rampartConfig(e, dir, port, admin, f)
		file := filepath.Join(dir, "rampart.yaml")
		if err := writeFile(file, cfg); err != nil {
			return nil, err
		}
		args := []string{"serve", "-c", file, "--allow-root"}
		if e.profile != "" {
			args = append(args, "-cpuprofile", filepath.Join(e.profile, label+".pprof"))
		}
		cmd = exec.Command(e.rampart, args...)
	case "nginx", "nginx-modsec":
		cfg, err := nginxConfig(e, dir, port, f, t.kind == "nginx-modsec")
		if err != nil {
			return nil, err
		}
		file := filepath.Join(dir, "nginx.conf")
		if err := writeFile(file, cfg); err != nil {
			return nil, err
		}
		cmd = exec.Command("nginx", "-p", dir, "-c", file, "-g", "daemon off;")
	case "haproxy":
		file := filepath.Join(dir, "haproxy.cfg")
		if err := writeFile(file, haproxyConfig(e, port)); err != nil {
			return nil, err
		}
		cmd = exec.Command("haproxy", "-db", "-f", file)
		// haproxy logs to stdout here (it has no file logger of its own;
		// in production the lines go to syslog, which writes a file).
		lf, err := os.Create(filepath.Join(dir, "access.log"))
		if err != nil {
			return nil, err
		}
		stdout = lf
	case "caddy":
		file := filepath.Join(dir, "Caddyfile")
		if err := writeFile(file, caddyConfig(e, dir, port)); err != nil {
			return nil, err
		}
		cmd = exec.Command("caddy", "run", "--config", file, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	default:
		return nil, fmt.Errorf("unknown target kind %q", t.kind)
	}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if stdout == nil {
		stdout = logf
	}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	r := &running{name: t.name, cmd: cmd, addr: addr, dir: dir, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		logf.Close()
		if c, ok := stdout.(io.Closer); ok {
			c.Close()
		}
		close(r.done)
	}()
	return r, nil
}

// tail returns the last lines of a target's stderr, for error reports; for
// a Go panic, the panic line and the frame that raised it.
func (r *running) tail() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "stderr.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			out := l
			// goroutine N [running]:, then function, then file:line.
			if i+4 < len(lines) {
				out += " at " + strings.TrimSpace(lines[i+3]) + " " + strings.TrimSpace(lines[i+4])
			}
			return out
		}
	}
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// client is the harness's own HTTPS client for readiness and sanity
// checks: it dials addr whatever the URL says, with SNI = Host.
func (e *env) client(addr string) (*http.Client, error) {
	pem, err := os.ReadFile(e.caPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: Host, RootCAs: pool, NextProtos: []string{"http/1.1"}},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}, nil
}

// ready waits until the target answers GET /api/small with the upstream's
// 200-byte body, then runs the scenario's checks.
func (e *env) ready(r *running, timeout time.Duration, f features) error {
	c, err := e.client(r.addr)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("exited during start (%v): %s", r.err, r.tail())
		default:
		}
		status, n, _, err := get(c, "GET", "/api/small", "")
		if err == nil && status == 200 && n == 200 {
			last = nil
			break
		}
		if err == nil {
			err = fmt.Errorf("GET /api/small: status %d, %d bytes", status, n)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		return fmt.Errorf("not ready after %s: %v", timeout, last)
	}
	// The other paths answer too, and the WAF, where on, refuses an attack
	// and lets the scenario's requests through.
	checks := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/static/asset.js", "", 200},
		{"GET", "/nothing-here", "", 404},
	}
	if f.waf {
		checks = append(checks,
			struct {
				method, path, body string
				want               int
			}{"GET", "/api/small?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", 403},
			struct {
				method, path, body string
				want               int
			}{"GET", "/api/small?id=1%27%20OR%20%271%27=%271", "", 403},
			struct {
				method, path, body string
				want               int
			}{"GET", wafGetPath, "", 200},
			struct {
				method, path, body string
				want               int
			}{"POST", "/api/small", wafPostBody, 200},
		)
	}
	for _, ch := range checks {
		status, _, _, err := get(c, ch.method, ch.path, ch.body)
		if err != nil {
			return fmt.Errorf("%s %s: %v", ch.method, ch.path, err)
		}
		if status != ch.want {
			return fmt.Errorf("%s %s: status %d, want %d", ch.method, ch.path, status, ch.want)
		}
	}
	return nil
}

func get(c *http.Client, method, path, body string) (status int, n int64, h http.Header, err error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+Host+path, rd)
	if err != nil {
		return 0, 0, nil, err
	}
	req.Header.Set("User-Agent", "rampart-bench/1.0")
	req.Header.Set("Accept", "*/*")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	n, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, n, resp.Header, err
}

// The requests of scenario 3.
const (
	wafGetPath  = "/api/small?q=hello+world&page=2&sort=name&lang=en"
	wafPostBody = `{"user":"alice","items":[1,2,3],"note":"hello world","flag":true}`
)

func rampartConfig(e *env, dir string, port, admin int, f features) string {
	waf := "{mode: off}"
	if f.waf {
		waf = "{mode: block, paranoia: 1}"
	}
	cache := ""
	if f.cache {
		cache = "\n        cache: {enabled: true, public: true}"
	}
	return fmt.Sprintf(`# rampart under load: every protection on except those the scenario names.
listen: "127.0.0.1:%d"
admin: {listen: "127.0.0.1:%d"}
tls: {cert: %q, key: %q}
limits:
  # one load client opens every connection: caps above what it opens
  connections_per_client: 20000
  connections_total: 20000
  handshakes_per_client: 100000/s
log:
  access: %q
  security: %q
rate_limits:
  bench: {rate: 1000000/s, burst: 1000000}
sites:
  - host: %s
    upstream: {targets: ["http://%s"]}
    rate_limit: bench
    waf: %s
    routes:
      - exact: /api/small
        methods: [GET, POST]
      - prefix: /static/%s
      - exact: /ws
        websocket: true
`, port, admin, e.certPEM, e.keyPEM, filepath.Join(dir, "access.log"), filepath.Join(dir, "security.log"),
		Host, e.upstream, waf, cache)
}

// nginx as its users run it in production: worker per core, keepalive to
// the upstream, Mozilla "intermediate" TLS, access log to a file.
func nginxConfig(e *env, dir string, port int, f features, modsec bool) (string, error) {
	for _, d := range []string{"tmp", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	var load, modsecOn string
	if modsec {
		rules, err := modsecRules(dir)
		if err != nil {
			return "", err
		}
		load = "load_module " + modsecModule + ";"
		modsecOn = "modsecurity on;\n        modsecurity_rules_file " + rules + ";"
	}
	cache := ""
	if f.cache {
		cache = `proxy_cache static;
            proxy_cache_revalidate on;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout updating;
            add_header X-Cache-Status $upstream_cache_status;`
	}
	const fwd = `proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;`
	return fmt.Sprintf(`%[1]s
user root;
worker_processes auto;
worker_rlimit_nofile 20000;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;

events {
    worker_connections 16384;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    keepalive_timeout 65;

    access_log %[2]s/access.log combined;

    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;

    upstream app {
        server %[3]s;
        keepalive 64;
    }
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    proxy_cache_path %[2]s/cache levels=1:2 keys_zone=static:10m max_size=256m inactive=60m use_temp_path=off;

    server {
        listen 127.0.0.1:%[4]d ssl;
        server_name %[5]s;
        ssl_certificate %[6]s;
        ssl_certificate_key %[7]s;
        %[8]s

        proxy_http_version 1.1;

        location = /api/small {
            proxy_pass http://app;
            proxy_set_header Connection "";
            %[9]s
        }
        location /static/ {
            proxy_pass http://app;
            proxy_set_header Connection "";
            %[9]s
            %[10]s
        }
        location = /ws {
            proxy_pass http://app;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            %[9]s
            proxy_read_timeout 1h;
        }
        location / {
            return 404;
        }
    }
}
`, load, dir, e.upstream, port, Host, e.certPEM, e.keyPEM, modsecOn, fwd, cache), nil
}

// Where Debian's packages put ModSecurity and the CRS.
const (
	modsecModule      = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"
	modsecRecommended = "/usr/share/nginx/docs/modsecurity/modsecurity.conf"
	modsecUnicode     = "/usr/share/nginx/docs/modsecurity/unicode.mapping"
	crsSetup          = "/etc/modsecurity/crs/crs-setup.conf"
	crsBefore         = "/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf"
	crsAfter          = "/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf"
	crsRules          = "/usr/share/modsecurity-crs/rules"
)

// modsecRules writes the ModSecurity config: the recommended file Debian's
// nginx module ships, with the engine on, then the CRS as Debian's
// owasp-crs.load includes it (paranoia level 1, anomaly scoring, blocking).
// Response bodies are not inspected, as rampart's WAF does not by default.
func modsecRules(dir string) (string, error) {
	rec, err := os.ReadFile(modsecRecommended)
	if err != nil {
		return "", err
	}
	s := string(rec)
	s = strings.Replace(s, "SecRuleEngine DetectionOnly", "SecRuleEngine On", 1)
	s = strings.Replace(s, "SecResponseBodyAccess On", "SecResponseBodyAccess Off", 1)
	s = strings.Replace(s, "SecAuditLog /var/log/nginx/modsec_audit.log", "SecAuditLog "+filepath.Join(dir, "modsec_audit.log"), 1)
	s = strings.Replace(s, "SecStatusEngine On", "SecStatusEngine Off", 1)
	s = strings.Replace(s, "SecUnicodeMapFile unicode.mapping", "SecUnicodeMapFile "+modsecUnicode, 1)
	s = strings.ReplaceAll(s, "SecTmpDir /tmp/", "SecTmpDir "+filepath.Join(dir, "tmp")+"/")
	s = strings.ReplaceAll(s, "SecDataDir /tmp/", "SecDataDir "+filepath.Join(dir, "tmp")+"/")
	if !strings.Contains(s, "SecRuleEngine On") {
		return "", errors.New(modsecRecommended + ": no SecRuleEngine line to switch on")
	}
	conf := filepath.Join(dir, "modsecurity.conf")
	if err := writeFile(conf, s); err != nil {
		return "", err
	}
	main := filepath.Join(dir, "modsec-main.conf")
	body := fmt.Sprintf("Include %s\nInclude %s\nSecAction \"id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1\"\nInclude %s\nInclude %s/*.conf\nInclude %s\n",
		conf, crsSetup, crsBefore, crsRules, crsAfter)
	return main, writeFile(main, body)
}

// haproxy as its users run it: threads per core, Mozilla intermediate TLS,
// http-reuse safe, HTTP log to stdout (a file here).
func haproxyConfig(e *env, port int) string {
	return fmt.Sprintf(`global
    maxconn %d
    log stdout format raw local0
    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 20s
    timeout tunnel 1h
    http-reuse safe

frontend public
    bind 127.0.0.1:%d ssl crt %s alpn http/1.1
    acl site hdr(host) -i %s
    acl allowed path /api/small /ws
    acl allowed path_beg /static/
    http-request deny deny_status 421 unless site
    http-request deny deny_status 404 unless allowed
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    default_backend app

backend app
    server app1 %s
`, haproxyMaxconn(), port, e.bothPEM, Host, e.upstream)
}

// haproxyMaxconn is the largest maxconn the open-file limit allows: haproxy
// needs two descriptors per proxied connection and refuses to start when
// the limit is too low for its maxconn.
func haproxyMaxconn() int {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 4096
	}
	return int(min(r.Cur, 1<<20)-200) / 2
}

// Caddy as its users run it: a site block with reverse_proxy and a file
// access log; admin API and automatic HTTPS off (a fixed certificate).
func caddyConfig(e *env, dir string, port int) string {
	return fmt.Sprintf(`{
    admin off
    auto_https off
    servers {
        protocols h1 h2
    }
}

https://%s:%d {
    bind 127.0.0.1
    tls %s %s
    log {
        output file %s
    }
    @allowed path /api/small /ws /static/*
    handle @allowed {
        reverse_proxy %s
    }
    handle {
        respond 404
    }
}
`, Host, port, e.certPEM, e.keyPEM, filepath.Join(dir, "access.log"), e.upstream)
}
