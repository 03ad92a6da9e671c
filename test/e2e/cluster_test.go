package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/internal/state/statetest"
)

// clusterConfig: instances behind a load balancer share bans and rate
// limits through Redis. The upstream answers 401 on /api/fail401.
const clusterConfig = `
listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0"}
log: {access: off, security: "{{DIR}}/security.log"}
tls: {cert: "{{DIR}}/site.pem", key: "{{DIR}}/site-key.pem"}
limits: {handshakes_per_client: 1000/s}
state: {store: redis, redis: {address: "{{REDIS}}"}, on_store_failure: local}
rate_limits:
  shared: {rate: 1/m, burst: 4}
sites:
  - host: app.test
    upstream: {targets: ["{{UP}}"]}
    waf: {mode: "off"}
    brute_force: {failures: 3, window: 30s, ban: 10m, ban_status: 429}
    routes:
      - prefix: /api/
        methods: [GET, POST]
      - prefix: /limited/
        rate_limit: shared
`

func TestCluster_BanAndRateLimitSharedThroughRedis(t *testing.T) {
	redis := statetest.StartRedis(t)
	cfg := strings.ReplaceAll(clusterConfig, "{{REDIS}}", redis.Addr)
	a, b := start(t, cfg), start(t, cfg)

	// Three failed logins through A ban the client on B too.
	for i := 0; i < 3; i++ {
		resp := a.get("/api/fail401")
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("login %d via A: %d", i, resp.StatusCode)
		}
	}
	resp := b.get("/api/x")
	resp.Body.Close()
	if resp.StatusCode != 429 || b.up.hits.Load() != 0 {
		t.Fatalf("B: status %d, upstream hits %d; want 429 and none", resp.StatusCode, b.up.hits.Load())
	}
	// Lift the ban through B's admin API; A lets the client in again.
	req, _ := http.NewRequest("DELETE", "http://"+b.srv.AdminAddr().String()+"/bans/ip:127.0.0.1", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil || r.StatusCode/100 != 2 {
		t.Fatalf("unban: %v %v", err, r)
	}
	r.Body.Close()
	resp = a.get("/api/x")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("A after unban: %d", resp.StatusCode)
	}

	// A burst of 4 shared by A and B: the fifth request is refused
	// whichever instance it reaches.
	var codes []int
	for _, e := range []*env{a, b, a, b, a, b} {
		resp := e.get("/limited/x")
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[200 200 200 200 429 429]" {
		t.Fatalf("shared burst: %v", codes)
	}

	// Redis gone: the instances keep serving with local state.
	redis.Stop()
	for _, e := range []*env{a, b} {
		resp := e.get("/api/x")
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("without Redis: %d", resp.StatusCode)
		}
	}
}
