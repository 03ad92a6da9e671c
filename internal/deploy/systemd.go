package deploy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
)

// Systemd returns a hardened unit file for cfg.
func Systemd(cfg *config.Config, opts Options) (string, error) {
	h, err := newHost(cfg, opts)
	if err != nil {
		return "", err
	}
	o := h.opts
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	b.WriteString(h.header("systemd"))
	w("# Install: /etc/systemd/system/rampart.service; then")
	w("#   systemctl daemon-reload && systemctl enable --now rampart")
	w("# Check:   systemd-analyze security rampart.service")
	w("")
	w("[Unit]")
	w("Description=rampart deny-by-default TLS reverse proxy")
	w("Wants=network-online.target")
	w("After=network-online.target nftables.service")
	w("")
	w("[Service]")
	w("Type=simple")
	w("User=%s", o.User)
	w("Group=%s", o.Group)
	w("ExecStartPre=%s check -c %s", o.Binary, h.configPath)
	w("ExecStart=%s serve -c %s", o.Binary, h.configPath)
	w("ExecReload=/bin/kill -HUP $MAINPID")
	w("KillSignal=SIGTERM")
	w("# limits.drain_timeout (%s) plus a margin for the listeners to close.", h.cfg.Limits.DrainTimeout.D())
	w("TimeoutStopSec=%s", seconds(h.cfg.Limits.DrainTimeout.D()+5*time.Second))
	w("Restart=on-failure")
	w("RestartSec=2s")
	w("")
	w("# Resources.")
	nofile := o.LimitNOFILE
	if nofile == 0 {
		nofile = 2*h.cfg.Limits.Connections.ConnectionsTotal + 4096
	}
	w("LimitNOFILE=%d", nofile)
	w("MemoryMax=%s", o.MemoryMax)
	w("TasksMax=4096")
	w("UMask=0077")
	w("")
	w("# Privileges.")
	w("NoNewPrivileges=yes")
	if h.lowPort() {
		w("# A listener port is below 1024: binding it is the one capability kept.")
		w("CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
		w("AmbientCapabilities=CAP_NET_BIND_SERVICE")
	} else {
		w("CapabilityBoundingSet=")
		w("AmbientCapabilities=")
		w("# No capability is needed (every port is 1024 or above), so the service")
		w("# can run in its own user namespace.")
		w("PrivateUsers=yes")
	}
	w("RestrictSUIDSGID=yes")
	w("")
	w("# File system: everything read-only, nothing of /home, /root or /dev.")
	w("ProtectSystem=strict")
	w("ProtectHome=yes")
	w("PrivateTmp=yes")
	w("PrivateMounts=yes")
	w("PrivateDevices=yes")
	w("DevicePolicy=closed")
	w("ProtectProc=invisible")
	w("ProcSubset=pid")
	w("# The config, certificates, keys and CA files (directories, so that a file")
	w("# replaced by rename is seen on reload).")
	for _, p := range h.plan.ReadOnly {
		w("ReadOnlyPaths=-%s", p.Path)
	}
	logsDirs := map[string]bool{}
	for _, p := range h.plan.ReadWrite {
		if rel, ok := strings.CutPrefix(p.Path, "/var/cache/"); ok && p.Cache && !strings.Contains(rel, "/") {
			w("# cache_dir: the cache's disk tier, created and owned by %s.", o.User)
			w("CacheDirectory=%s", rel)
			w("CacheDirectoryMode=0700")
			continue
		}
		if rel, ok := strings.CutPrefix(p.Path, "/var/log/"); ok && !p.File && !strings.Contains(rel, "/") {
			if !logsDirs[rel] {
				logsDirs[rel] = true
				w("# Log directory, created and owned by %s.", o.User)
				w("LogsDirectory=%s", rel)
				w("LogsDirectoryMode=0750")
			}
			continue
		}
		w("ReadWritePaths=-%s", p.Path)
	}
	w("")
	w("# Kernel and system.")
	w("ProtectKernelTunables=yes")
	w("ProtectKernelModules=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectControlGroups=yes")
	w("ProtectClock=yes")
	w("ProtectHostname=yes")
	w("RestrictNamespaces=yes")
	w("RestrictRealtime=yes")
	w("LockPersonality=yes")
	w("MemoryDenyWriteExecute=yes")
	w("RemoveIPC=yes")
	w("PrivateIPC=yes")
	w("KeyringMode=private")
	w("SystemCallArchitectures=native")
	w("SystemCallFilter=@system-service")
	w("# rampart confines itself further with Landlock; older systemd versions")
	w("# do not count these calls in @system-service.")
	w("SystemCallFilter=landlock_create_ruleset landlock_add_rule landlock_restrict_self")
	w("SystemCallFilter=~@privileged @resources @mount @debug @cpu-emulation @obsolete @raw-io @reboot @swap @module @clock")
	w("SystemCallErrorNumber=EPERM")
	w("")
	w("# Network.")
	w("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX")
	w("# Only the listener and admin ports may be bound (this also covers")
	w("# Multipath TCP, which Landlock does not).")
	for _, p := range h.bindPorts() {
		w("SocketBindAllow=tcp:%d", p)
	}
	w("SocketBindDeny=any")
	h.writeIPAccounting(w)
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String(), nil
}

func (h *host) bindPorts() []uint16 {
	ps := h.listenPorts()
	if h.admin != nil && !slices.Contains(ps, h.admin.Port) {
		ps = append(ps, h.admin.Port)
		slices.Sort(ps)
	}
	return ps
}

// writeIPAccounting writes IPAddressDeny/IPAddressAllow. These filter by
// the remote address of every packet, inbound and outbound, without
// connection state: a listener that serves the internet must accept
// packets from any address and send its answers to any address, so for
// it the allow list cannot restrict egress, and the nftables ruleset (which
// tracks connections) is what limits outbound traffic to the upstreams.
func (h *host) writeIPAccounting(w func(string, ...any)) {
	if h.publicIngress() {
		w("# Clients come from anywhere (a public listener and no --clients): an")
		w("# address allow list would have to hold every client, i.e. any, because")
		w("# systemd filters packets by address without connection state. Egress")
		w("# is limited to the upstreams by the nftables ruleset (rampart deploy")
		w("# nftables) and by rampart's own Landlock rules (TCP connect only to")
		w("# the upstream ports).")
		w("IPAddressAllow=any")
		w("IPAddressDeny=")
		return
	}
	var allow []string
	add := func(s string) {
		if !slices.Contains(allow, s) {
			allow = append(allow, s)
		}
	}
	add("localhost")
	for _, e := range h.listeners {
		for _, a := range e.Addrs {
			if !a.IsLoopback() {
				add(netip.PrefixFrom(a, a.BitLen()).String())
			}
		}
	}
	for _, c := range h.opts.Clients {
		add(c.String())
	}
	for _, e := range h.upstreams {
		for _, a := range e.Addrs {
			add(netip.PrefixFrom(a, a.BitLen()).String())
		}
	}
	w("# Clients only from the listed networks: every other address is refused")
	w("# in both directions, so rampart reaches nothing but its upstreams.")
	w("IPAddressDeny=any")
	w("IPAddressAllow=%s", strings.Join(allow, " "))
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int((d+time.Second-1)/time.Second))
}
