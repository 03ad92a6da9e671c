package deploy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/internal/config"
)

const baseConfig = `listen: "0.0.0.0:8443"
admin: {listen: "127.0.0.1:9901"}
tls: {cert: certs/site.pem, key: certs/site-key.pem}
log: {access: /var/log/rampart/access.log, security: /var/log/rampart/security.log}
limits: {drain_timeout: 30s, connections_total: 1000}
sites:
  - host: app.example.com
    upstream:
      targets: ["https://10.0.0.5:8445", "http://app.internal:8080"]
      tls: {ca: /etc/pki/internal/ca.pem}
    routes: [{prefix: /}]
`

func load(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("/srv/conf/rampart.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// hosts is a stand-in for /etc/hosts.
func hosts(name string) ([]netip.Addr, error) {
	switch name {
	case "app.internal":
		return []netip.Addr{netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("fd00::7")}, nil
	case "redis.internal":
		return []netip.Addr{netip.MustParseAddr("10.0.0.9")}, nil
	}
	return nil, errors.New("no such host")
}

func opts() Options {
	return Options{ConfigPath: "/etc/rampart/rampart.yaml", Resolve: hosts}
}

func has(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains("\n"+text+"\n", "\n"+l+"\n") {
			t.Errorf("missing line %q in:\n%s", l, text)
		}
	}
}

func lacks(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains("\n"+text+"\n", "\n"+l+"\n") {
			t.Errorf("unexpected line %q in:\n%s", l, text)
		}
	}
}

func TestSystemd_HardeningFromConfig(t *testing.T) {
	unit, err := Systemd(load(t, baseConfig), opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, unit,
		"User=rampart", "Group=rampart",
		"ExecStart=/usr/local/bin/rampart serve -c /etc/rampart/rampart.yaml",
		"ExecStartPre=/usr/local/bin/rampart check -c /etc/rampart/rampart.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM",
		"TimeoutStopSec=35s", // drain_timeout 30s + 5s
		"LimitNOFILE=6096",   // 2 x 1000 + 4096
		"MemoryMax=1G", "UMask=0077",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
		"ProtectKernelLogs=yes", "ProtectControlGroups=yes", "ProtectClock=yes",
		"ProtectHostname=yes", "ProtectProc=invisible", "ProcSubset=pid",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces=yes",
		"RestrictRealtime=yes", "RestrictSUIDSGID=yes", "LockPersonality=yes",
		"MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
		"SystemCallArchitectures=native",
		// No port below 1024: no capability at all.
		"CapabilityBoundingSet=", "AmbientCapabilities=", "PrivateUsers=yes",
		// Config directory (relocated to the host path), the upstream CA's.
		"ReadOnlyPaths=-/etc/rampart", "ReadOnlyPaths=-/etc/pki/internal",
		"LogsDirectory=rampart",
		"SocketBindAllow=tcp:8443", "SocketBindAllow=tcp:9901", "SocketBindDeny=any",
		// A public listener: clients from anywhere.
		"IPAddressAllow=any",
	)
	lacks(t, unit, "IPAddressDeny=any", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
}

func TestSystemd_LowPortKeepsOnlyNetBindService(t *testing.T) {
	cfg := load(t, strings.Replace(baseConfig, `"0.0.0.0:8443"`, `"0.0.0.0:443"`, 1))
	unit, err := Systemd(cfg, opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, unit, "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "SocketBindAllow=tcp:443")
	lacks(t, unit, "PrivateUsers=yes", "CapabilityBoundingSet=")
}

func TestSystemd_AddressAllowListWhenClientsAreKnown(t *testing.T) {
	o := opts()
	o.Clients = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	unit, err := Systemd(load(t, baseConfig), o)
	if err != nil {
		t.Fatal(err)
	}
	has(t, unit, "IPAddressDeny=any",
		"IPAddressAllow=localhost 192.0.2.0/24 10.0.0.5/32 10.0.0.7/32 fd00::7/128")
	lacks(t, unit, "IPAddressAllow=any")

	// A loopback-only listener (behind a local balancer): the allow list
	// needs no client network at all.
	unit, err = Systemd(load(t, strings.Replace(baseConfig, `"0.0.0.0:8443"`, `"127.0.0.1:8443"`, 1)), opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, unit, "IPAddressDeny=any", "IPAddressAllow=localhost 10.0.0.5/32 10.0.0.7/32 fd00::7/128")
}

func TestSystemd_LogOutsideVarLogAndRedis(t *testing.T) {
	text := strings.Replace(baseConfig, "log: {access: /var/log/rampart/access.log, security: /var/log/rampart/security.log}",
		"log: {access: /srv/logs/access.log, security: /var/log/rampart.log}\nstate: {store: redis, redis: {address: \"redis.internal:6380\"}}", 1)
	unit, err := Systemd(load(t, text), opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, unit, "ReadWritePaths=-/srv/logs", "ReadWritePaths=-/var/log/rampart.log")
	lacks(t, unit, "LogsDirectory=rampart")
	nft, err := Nftables(load(t, text), opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, nft, "\t\telements = { 10.0.0.5 . 8445, 10.0.0.7 . 8080, 10.0.0.9 . 6380 }")
}

func TestDeploy_Refusals(t *testing.T) {
	for name, text := range map[string]string{
		"relative log":       strings.Replace(baseConfig, "/var/log/rampart/access.log", "access.log", 1),
		"port 0":             strings.Replace(baseConfig, `"0.0.0.0:8443"`, `"0.0.0.0:0"`, 1),
		"unresolvable upstr": strings.Replace(baseConfig, "app.internal", "nowhere.internal", 1),
	} {
		if _, err := Systemd(load(t, text), opts()); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestNftables_FromConfig(t *testing.T) {
	nft, err := Nftables(load(t, baseConfig), opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, nft,
		"table inet rampart", "delete table inet rampart",
		"\t\ttype filter hook input priority filter; policy drop;",
		"\t\ttype filter hook output priority filter; policy drop;",
		"\t\ttype filter hook forward priority filter; policy drop;",
		"\t\tiif \"lo\" accept", "\t\toif \"lo\" accept",
		"\t\tct state established,related accept",
		"\t\ttcp dport 9901 counter name \"admin_refused\" drop",
		"\t\tmeta nfproto ipv4 tcp dport 8443 ct state new accept",
		"\t\telements = { 10.0.0.5 . 8445, 10.0.0.7 . 8080 }",
		"\t\telements = { fd00::7 . 8080 }",
		"\t\tip daddr . tcp dport @upstream_v4 ct state new accept",
		"\t\tip6 daddr . tcp dport @upstream_v6 ct state new accept",
		"\t\tmeta l4proto { tcp, udp } th dport 53 counter name \"dns_blocked\" drop",
		"\t\tcounter name \"in_dropped\" drop", "\t\tcounter name \"out_dropped\" drop",
	)
	for _, c := range []string{"in_dropped", "out_dropped", "dns_blocked", "admin_refused", "invalid_dropped", "forward_dropped"} {
		has(t, nft, "\tcounter "+c+" {")
	}
}

func TestNftables_ListenersClientsAndOpenings(t *testing.T) {
	text := strings.Replace(baseConfig, `listen: "0.0.0.0:8443"`, `listeners: ["203.0.113.10:443", "[2001:db8::10]:443", "127.0.0.1:8443"]`, 1)
	o := opts()
	in, _ := ParseOpening("tcp/22@10.0.9.0/24")
	out, _ := ParseOpening("udp/123@10.0.0.1")
	o.AllowIn, o.AllowOut = []Opening{in}, []Opening{out}
	nft, err := Nftables(load(t, text), o)
	if err != nil {
		t.Fatal(err)
	}
	has(t, nft,
		"\t\tip daddr 203.0.113.10 tcp dport 443 ct state new accept",
		"\t\tip6 daddr 2001:db8::10 tcp dport 443 ct state new accept",
		"\t\t# (loopback only: accepted above with iif lo)",
		"\t\tip saddr 10.0.9.0/24 tcp dport 22 ct state new accept",
		"\t\tip daddr 10.0.0.1/32 udp dport 123 ct state new accept",
	)
	o.Clients = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("198.51.101.0/24")}
	nft, err = Nftables(load(t, text), o)
	if err != nil {
		t.Fatal(err)
	}
	has(t, nft, "\t\tip daddr 203.0.113.10 ip saddr { 198.51.100.0/24, 198.51.101.0/24 } tcp dport 443 ct state new accept")
	if strings.Contains(nft, "ip6 daddr 2001:db8::10") {
		t.Errorf("IPv6 listener opened though no IPv6 client network is listed:\n%s", nft)
	}
}

func TestParseOpening(t *testing.T) {
	for _, bad := range []string{"", "tcp/22", "sctp/22@10.0.0.0/8", "tcp/0@10.0.0.1", "tcp/x@10.0.0.1", "tcp/22@nowhere"} {
		if _, err := ParseOpening(bad); err == nil {
			t.Errorf("ParseOpening(%q): no error", bad)
		}
	}
	o, err := ParseOpening("udp/123@2001:db8::1")
	if err != nil || o.String() != "udp/123@2001:db8::1/128" {
		t.Errorf("got %v, %v", o, err)
	}
}

func TestSELinux_FromConfig(t *testing.T) {
	text := strings.Replace(baseConfig, `"0.0.0.0:8443"`, `"0.0.0.0:443"`, 1)
	files, err := SELinux(load(t, text), opts())
	if err != nil {
		t.Fatal(err)
	}
	te, fc, sh := files["rampart.te"], files["rampart.fc"], files["rampart-selinux.sh"]
	has(t, te, "policy_module(rampart, 1.0.0)", "type rampart_t;", "type rampart_exec_t;",
		"type rampart_conf_t;", "type rampart_log_t;", "type rampart_cache_t;",
		"type rampart_port_t;", "type rampart_upstream_port_t;",
		"allow rampart_t self:capability net_bind_service;",
		"allow rampart_t rampart_port_t:tcp_socket name_bind;",
		"allow rampart_t rampart_upstream_port_t:tcp_socket name_connect;",
		"#   semanage port -a -t rampart_port_t -p tcp 443",
		"#   semanage port -a -t rampart_upstream_port_t -p tcp 8080",
	)
	if strings.Contains(te, "corenet_tcp_connect_") || strings.Count(te, "name_connect") != 1 {
		t.Errorf("rampart_t may connect to more than its upstream ports:\n%s", te)
	}
	has(t, fc,
		`/usr/local/bin/rampart                           --	gen_context(system_u:object_r:rampart_exec_t,s0)`,
		`/etc/rampart(/.*)?                               	gen_context(system_u:object_r:rampart_conf_t,s0)`,
		`/var/log/rampart(/.*)?                           	gen_context(system_u:object_r:rampart_log_t,s0)`,
		"# /etc/pki/internal (sites[0].upstream.tls.ca): left as it is, read as cert_t",
	)
	has(t, sh, "port rampart_port_t 443", "port rampart_port_t 9901",
		"port rampart_upstream_port_t 8080", "port rampart_upstream_port_t 8445",
		"restorecon -RFv /usr/local/bin/rampart /etc/rampart /var/log/rampart")
	if !strings.Contains(files["rampart.if"], "interface(`rampart_domtrans'") {
		t.Error("rampart.if lacks rampart_domtrans")
	}

	files, err = SELinux(load(t, baseConfig), opts())
	if err != nil {
		t.Fatal(err)
	}
	lacks(t, files["rampart.te"], "allow rampart_t self:capability net_bind_service;")
}

func TestDestinations_AuthKeysAndSyslog(t *testing.T) {
	text := strings.Replace(baseConfig, "    routes: [{prefix: /}]\n", `    auth: {kind: jwt, keys_url: "https://10.0.0.20:8553/keys", issuer: "https://idp", audience: app}
    brute_force: {syslog: {address: "10.0.0.30:514"}}
    routes: [{prefix: /}, {prefix: /api/}]
`, 1)
	cfg := load(t, text)
	nft, err := Nftables(cfg, opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, nft,
		"\t\telements = { 10.0.0.5 . 8445, 10.0.0.7 . 8080, 10.0.0.20 . 8553 }",
		"\t\telements = { 10.0.0.30 . 514 }",
		"\t\tip daddr . udp dport @datagram_v4 accept",
	)
	files, err := SELinux(cfg, opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, files["rampart-selinux.sh"], "port rampart_upstream_port_t 8553")
	lacks(t, files["rampart-selinux.sh"], "port rampart_upstream_port_t 514")
	has(t, files["rampart.te"], "allow rampart_t self:udp_socket create_socket_perms;")
	o := opts()
	o.Clients, _ = ParsePrefixes("192.0.2.0/24")
	unit, err := Systemd(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	has(t, unit, "IPAddressAllow=localhost 192.0.2.0/24 10.0.0.5/32 10.0.0.7/32 fd00::7/128 10.0.0.20/32 10.0.0.30/32")
}

func TestDeploy_CacheDir(t *testing.T) {
	text := strings.Replace(baseConfig, "sites:", "cache_dir: /var/cache/rampart\nsites:", 1)
	unit, err := Systemd(load(t, text), opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, unit, "CacheDirectory=rampart", "CacheDirectoryMode=0700")
	lacks(t, unit, "ReadWritePaths=-/var/cache/rampart")
	unit, err = Systemd(load(t, baseConfig), opts())
	if err != nil {
		t.Fatal(err)
	}
	lacks(t, unit, "CacheDirectory=rampart")

	// Elsewhere: a writable path, labelled as the cache (not as a log).
	text = strings.Replace(baseConfig, "sites:", "cache_dir: /srv/cache\nsites:", 1)
	unit, err = Systemd(load(t, text), opts())
	if err != nil {
		t.Fatal(err)
	}
	has(t, unit, "ReadWritePaths=-/srv/cache")
	files, err := SELinux(load(t, text), opts())
	if err != nil {
		t.Fatal(err)
	}
	fc := files["rampart.fc"]
	has(t, fc, `/srv/cache(/.*)?                                 	gen_context(system_u:object_r:rampart_cache_t,s0)`)
	if strings.Contains(fc, "/srv/cache(/.*)?                                 \tgen_context(system_u:object_r:rampart_log_t") {
		t.Errorf("cache_dir labelled as a log directory:\n%s", fc)
	}
	if !strings.Contains(files["rampart-selinux.sh"], "/srv/cache") {
		t.Errorf("restorecon does not relabel the cache directory:\n%s", files["rampart-selinux.sh"])
	}
}
