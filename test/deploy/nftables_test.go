package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/internal/deploy"
)

// nftCheck parses a ruleset with `nft -c` in a fresh network namespace, so
// that the host's own firewall is neither read nor touched.
func nftCheck(t *testing.T, ruleset string) {
	t.Helper()
	requireRoot(t, "nft -c")
	requireTool(t, "nft")
	unshare := requireTool(t, "unshare")
	path := filepath.Join(t.TempDir(), "rampart.nft")
	writeFile(t, path, ruleset, 0o644)
	out, err := exec.Command(unshare, "-n", "nft", "-c", "-f", path).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Operation not permitted") && os.Getenv("RAMPART_REQUIRE_DEPLOY_TOOLS") != "1" {
			t.Skipf("no network namespaces here: %s", out)
		}
		t.Fatalf("nft -c -f: %v\n%s\n%s", err, out, ruleset)
	}
}

func TestNftablesParses(t *testing.T) {
	nftCheck(t, exampleArtefacts(t)["nftables/rampart.nft"])
	// Listeners on both families, a client allow list, management
	// openings, IPv6 upstreams and a state store.
	cfg := installedConfig(t, `listeners: ["0.0.0.0:443", "[::]:8443", "192.0.2.10:8444", "[2001:db8::10]:8445"]
admin: {listen: "127.0.0.1:9901"}
tls: {cert: certs/site.pem, key: certs/site-key.pem}
state: {store: redis, redis: {address: "[2001:db8::9]:6379"}}
sites:
  - host: app.example.com
    upstream: {targets: ["https://10.0.0.5:8445", "http://[2001:db8::5]:8080"]}
    auth: {kind: jwt, keys_url: "https://[2001:db8::20]/keys", issuer: "https://idp", audience: app}
    brute_force: {syslog: {address: "10.0.0.30:514"}}
    routes: [{prefix: /}]
  - host: other.example.com
    upstream: {targets: ["http://10.0.0.6:8080"]}
    brute_force: {syslog: {address: "[2001:db8::30]:514"}}
    routes: [{prefix: /}]
`)
	opts := exampleOptions
	opts.Clients, _ = deploy.ParsePrefixes("198.51.100.0/24, 2001:db8:1::/48")
	in, _ := deploy.ParseOpening("tcp/22@10.0.9.0/24")
	out, _ := deploy.ParseOpening("udp/123@2001:db8::123")
	opts.AllowIn, opts.AllowOut = []deploy.Opening{in}, []deploy.Opening{out}
	ruleset, err := deploy.Nftables(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	nftCheck(t, ruleset)
	opts.Clients = nil
	ruleset, err = deploy.Nftables(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	nftCheck(t, ruleset)
}

// netns is a network namespace made for one test.
func netns(t *testing.T, name string) string {
	t.Helper()
	name = fmt.Sprintf("rampart-%s-%d", name, os.Getpid())
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

var counterRE = regexp.MustCompile(`packets (\d+) bytes`)

func counter(t *testing.T, ns, name string) int {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "nft", "list", "counter", "inet", "rampart", name)
	m := counterRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("counter %s: %s", name, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestNftablesInNetns loads the generated ruleset into a namespace playing
// the DMZ host, wired by a veth pair to a second namespace playing the
// internal network (10.231.0.1 and 10.231.0.2 exist only inside these two
// namespaces), and checks what gets through.
func TestNftablesInNetns(t *testing.T) {
	requireRoot(t, "network namespaces")
	requireTool(t, "ip")
	requireTool(t, "nft")
	if out, err := exec.Command("ip", "netns", "add", fmt.Sprintf("rampart-probe-%d", os.Getpid())).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot create network namespaces here: %v %s", err, out)
	}
	_ = exec.Command("ip", "netns", "del", fmt.Sprintf("rampart-probe-%d", os.Getpid())).Run()

	dmz, inner := netns(t, "dmz"), netns(t, "inner")
	veth := fmt.Sprintf("rpt%d", os.Getpid()%100000)
	run(t, "ip", "-n", dmz, "link", "add", veth+"a", "type", "veth", "peer", "name", veth+"b", "netns", inner)
	run(t, "ip", "-n", dmz, "addr", "add", "10.231.0.1/24", "dev", veth+"a")
	run(t, "ip", "-n", inner, "addr", "add", "10.231.0.2/24", "dev", veth+"b")
	run(t, "ip", "-n", dmz, "link", "set", veth+"a", "up")
	run(t, "ip", "-n", inner, "link", "set", veth+"b", "up")

	cfg := installedConfig(t, `listen: "10.231.0.1:8443"
admin: {listen: "127.0.0.1:9901"}
tls: {cert: certs/site.pem, key: certs/site-key.pem}
sites:
  - host: app.example.com
    upstream: {targets: ["http://10.231.0.2:18080"]}
    routes: [{prefix: /}]
`)
	ruleset, err := deploy.Nftables(cfg, exampleOptions)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rampart.nft")
	writeFile(t, path, ruleset, 0o644)

	// Every port tried has a listener, so a refusal can only be the
	// firewall's: a dropped SYN times out, a closed port would be refused.
	startListeners(t, inner, "10.231.0.2:18080", "10.231.0.2:18081", "10.231.0.2:22")
	startListeners(t, dmz, ":8443", ":9901", ":9999")
	if got := dialFrom(t, dmz, "10.231.0.2:18081"); got != "ok" {
		t.Fatalf("without the firewall the namespaces do not talk: %s", got)
	}

	run(t, "ip", "netns", "exec", dmz, "nft", "-f", path)
	// Loading twice replaces the table rather than failing or doubling it.
	run(t, "ip", "netns", "exec", dmz, "nft", "-f", path)
	if n := strings.Count(run(t, "ip", "netns", "exec", dmz, "nft", "list", "tables"), "table inet rampart"); n != 1 {
		t.Fatalf("%d tables inet rampart after loading twice", n)
	}

	for _, c := range []struct {
		from, addr, want, why string
	}{
		{dmz, "10.231.0.2:18080", "ok", "outbound to the upstream"},
		{dmz, "10.231.0.2:18081", "timeout", "outbound to a port of the upstream host that is not the upstream"},
		{dmz, "10.231.0.2:22", "timeout", "outbound SSH to the internal network"},
		{inner, "10.231.0.1:8443", "ok", "inbound to the listener"},
		{inner, "10.231.0.1:9999", "timeout", "inbound to another port"},
		{inner, "10.231.0.1:9901", "timeout", "inbound to the admin port from off the host"},
		{dmz, "127.0.0.1:9901", "ok", "admin port over loopback"},
	} {
		if got := dialFrom(t, c.from, c.addr); got != c.want {
			t.Errorf("%s (%s): %s, want %s", c.why, c.addr, got, c.want)
		}
	}
	out, err := helperProc(t, dmz, "udp", "ADDR=10.231.0.2:53").CombinedOutput()
	if err != nil {
		t.Fatalf("udp helper: %v %s", err, out)
	}
	for _, name := range []string{"out_dropped", "in_dropped", "admin_refused", "dns_blocked"} {
		if n := counter(t, dmz, name); n == 0 {
			t.Errorf("counter %s is 0 after a packet it should count", name)
		} else {
			t.Logf("counter %s: %d packets", name, n)
		}
	}
}
