package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/bench/internal/loadresult"
	"github.com/rampart-proxy/rampart/internal/config"
)

// The benchmark's rampart config must be one rampart accepts, with the
// protections the scenarios claim.
func TestRampartConfigLoads(t *testing.T) {
	dir := t.TempDir()
	e := &env{dir: dir, upstream: "127.0.0.1:9"}
	if err := e.makeCerts(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []features{{}, {cache: true}, {waf: true}} {
		file := filepath.Join(dir, "rampart.yaml")
		if err := os.WriteFile(file, []byte(rampartConfig(e, dir, 8443, 9901, f)), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(file)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		s := cfg.Sites[0]
		if s.Host != Host || s.RateLimit != "bench" {
			t.Errorf("%+v: site %q rate_limit %q", f, s.Host, s.RateLimit)
		}
		wafMode := string(cfg.WAFFor(0, 0).Mode)
		if want := map[bool]string{true: "block", false: "off"}[f.waf]; wafMode != want {
			t.Errorf("%+v: WAF mode %q, want %q", f, wafMode, want)
		}
		var cached bool
		for _, r := range s.Routes {
			if r.Cache != nil && r.Cache.Enabled {
				cached = r.Prefix == "/static/" && r.Cache.Public
			}
		}
		if cached != f.cache {
			t.Errorf("%+v: static route cached = %v", f, cached)
		}
		if cfg.Log.Access == "stdout" || cfg.Log.Access == "off" {
			t.Errorf("access log %q, want a file", cfg.Log.Access)
		}
	}
}

func TestPeerConfigs(t *testing.T) {
	dir := t.TempDir()
	e := &env{dir: dir, upstream: "127.0.0.1:9", certPEM: "c.pem", keyPEM: "k.pem", bothPEM: "b.pem"}
	ng, err := nginxConfig(e, dir, 8443, features{cache: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"worker_processes auto;", "keepalive 64;", "proxy_http_version 1.1;", "proxy_cache static;", "access_log " + dir} {
		if !strings.Contains(ng, want) {
			t.Errorf("nginx config lacks %q", want)
		}
	}
	if ng, _ := nginxConfig(e, dir, 8443, features{}, false); strings.Contains(ng, "proxy_cache static;") {
		t.Error("nginx caches in a proxied scenario")
	}
	if hp := haproxyConfig(e, 8443); !strings.Contains(hp, "http-reuse safe") || !strings.Contains(hp, "option httplog") {
		t.Error("haproxy config lacks http-reuse safe or httplog")
	}
	if cd := caddyConfig(e, dir, 8443); !strings.Contains(cd, "reverse_proxy 127.0.0.1:9") || !strings.Contains(cd, "output file") {
		t.Error("Caddyfile lacks reverse_proxy or a file log")
	}
	if n := haproxyMaxconn(); n < 100 {
		t.Errorf("haproxy maxconn %d", n)
	}
}

func TestMedianAndRatios(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is a number")
	}
	m := measurement{RSSBefore: 10 << 20, RSSHeld: 20 << 20, RSSAfter5: 15 << 20, Load: loadresult.Result{WSOpened: 1024, Requests: 20000}, CPU: 2}
	if got := returned(m); got != 50 {
		t.Errorf("returned = %v", got)
	}
	if got := perConnKiB(m); got != 10 {
		t.Errorf("KiB per connection = %v", got)
	}
	if got := perTenK(m); got != 1 {
		t.Errorf("CPU per 10k = %v", got)
	}
}

func TestReportMarksFailuresAndCrashes(t *testing.T) {
	c := &settings{runs: 2, scenarios: set("1"), conns: 64}
	all := []target{{name: "rampart", kind: "rampart"}, {name: "nginx", kind: "nginx"}, {name: "haproxy", kind: "haproxy", avail: "haproxy is not installed"}}
	ok := func(run int, target string, rps float64) measurement {
		return measurement{Run: run, Scenario: "1", Target: target, Kind: "http", CPU: 1, PeakRSS: 1 << 20,
			Load: loadresult.Result{Requests: int64(rps * 5), RPS: rps, P50: 1, P99: 2}}
	}
	ms := []measurement{
		ok(1, "nginx", 1000), ok(2, "nginx", 2000),
		ok(1, "rampart", 500),
		{Run: 2, Scenario: "1", Target: "rampart", Kind: "http", Err: "target exited", Crash: "panic: boom"},
	}
	r := renderReport(c, &env{}, all, ms, 0)
	for _, want := range []string{
		"| rampart | 500 (0.50×)",
		"| nginx (baseline) | 1500 (1.00×)",
		"rampart crashed in 1 of 2 runs",
		"haproxy not measured",
		"panic: boom",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("report lacks %q:\n%s", want, r)
		}
	}
}
