package deploy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/rampart-proxy/rampart/internal/config"
)

// Nftables returns the firewall of the DMZ host for cfg: table inet
// rampart, inbound only to the listener ports (plus established traffic
// and loopback; the admin port only over loopback), outbound only to the
// upstream targets and the state store, DNS blocked, everything else
// dropped and counted in named counters.
//
// Loaded with `nft -f`, it replaces any earlier version of the table
// atomically. Its chains drop by policy, so it is the whole policy of the
// host: management access (SSH) and time sync must be added with
// Options.AllowIn and AllowOut.
func Nftables(cfg *config.Config, opts Options) (string, error) {
	h, err := newHost(cfg, opts)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!/usr/sbin/nft -f")
	b.WriteString(h.header("nftables"))
	w("# Load:     nft -f rampart.nft   (replaces table inet rampart atomically)")
	w("# Counters: nft list counters table inet rampart")
	w("#")
	w("# DNS is blocked: pin every upstream name in /etc/hosts.")
	w("")
	w("table inet rampart")
	w("delete table inet rampart")
	w("")
	w("table inet rampart {")
	for _, c := range [][2]string{
		{"in_dropped", "inbound packets to anything but a listener port"},
		{"admin_refused", "admin port reached from off the host"},
		{"out_dropped", "outbound packets to anything but an upstream"},
		{"dns_blocked", "outbound DNS: pin upstream names in /etc/hosts"},
		{"invalid_dropped", "packets of no known connection state"},
		{"forward_dropped", "packets routed through the host"},
	} {
		w("\tcounter %s {", c[0])
		w("\t\tcomment %q", c[1])
		w("\t}")
	}
	w("")
	v4, v6 := h.upstreamElements(false)
	u4, u6 := h.upstreamElements(true)
	const tcpDest, udpDest = "TCP destinations (upstreams, key URLs, the state store)", "UDP destinations (syslog)"
	for _, set := range []struct {
		name, typ, what string
		elems           []string
	}{
		{"upstream_v4", "ipv4_addr", tcpDest, v4}, {"upstream_v6", "ipv6_addr", tcpDest, v6},
		{"datagram_v4", "ipv4_addr", udpDest, u4}, {"datagram_v6", "ipv6_addr", udpDest, u6},
	} {
		if len(set.elems) == 0 {
			continue
		}
		w("\t# %s: address . port.", set.what)
		w("\tset %s {", set.name)
		w("\t\ttype %s . inet_service", set.typ)
		w("\t\telements = { %s }", strings.Join(set.elems, ", "))
		w("\t}")
		w("")
	}
	w("\tchain input {")
	w("\t\ttype filter hook input priority filter; policy drop;")
	w("\t\tiif \"lo\" accept")
	w("\t\tct state established,related accept")
	w("\t\tct state invalid counter name \"invalid_dropped\" drop")
	w("\t\t# IPv6 needs neighbour discovery; path MTU discovery needs packet-too-big.")
	w("\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, packet-too-big } accept")
	if h.admin != nil {
		w("\t\t# Admin listener (%s): loopback only.", h.admin.Name)
		w("\t\ttcp dport %d counter name \"admin_refused\" drop", h.admin.Port)
	}
	for _, e := range h.listeners {
		h.writeListener(w, e)
	}
	for _, o := range h.opts.AllowIn {
		w("\t\t# --allow-in %s", o)
		w("\t\t%s saddr %s %s dport %d ct state new accept", family(o.Net.Addr()), o.Net, o.Proto, o.Port)
	}
	w("\t\tcounter name \"in_dropped\" drop")
	w("\t}")
	w("")
	w("\tchain output {")
	w("\t\ttype filter hook output priority filter; policy drop;")
	w("\t\toif \"lo\" accept")
	w("\t\tct state established,related accept")
	w("\t\tct state invalid counter name \"invalid_dropped\" drop")
	w("\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, packet-too-big } accept")
	for _, e := range h.upstreams {
		w("\t\t# %s: %s", e.Why, e.Name)
	}
	if len(v4) > 0 {
		w("\t\tip daddr . tcp dport @upstream_v4 ct state new accept")
	}
	if len(v6) > 0 {
		w("\t\tip6 daddr . tcp dport @upstream_v6 ct state new accept")
	}
	if len(u4) > 0 {
		w("\t\tip daddr . udp dport @datagram_v4 accept")
	}
	if len(u6) > 0 {
		w("\t\tip6 daddr . udp dport @datagram_v6 accept")
	}
	for _, o := range h.opts.AllowOut {
		w("\t\t# --allow-out %s", o)
		w("\t\t%s daddr %s %s dport %d ct state new accept", family(o.Net.Addr()), o.Net, o.Proto, o.Port)
	}
	w("\t\tmeta l4proto { tcp, udp } th dport 53 counter name \"dns_blocked\" drop")
	w("\t\tcounter name \"out_dropped\" drop")
	w("\t}")
	w("")
	w("\tchain forward {")
	w("\t\ttype filter hook forward priority filter; policy drop;")
	w("\t\tcounter name \"forward_dropped\" drop")
	w("\t}")
	w("}")
	return b.String(), nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "ip"
	}
	return "ip6"
}

func (h *host) upstreamElements(udp bool) (v4, v6 []string) {
	for _, e := range h.upstreams {
		if e.UDP != udp {
			continue
		}
		for _, a := range e.Addrs {
			if a.Is4() {
				if el := fmt.Sprintf("%s . %d", a, e.Port); !slices.Contains(v4, el) {
					v4 = append(v4, el)
				}
			} else if el := fmt.Sprintf("%s . %d", a, e.Port); !slices.Contains(v6, el) {
				v6 = append(v6, el)
			}
		}
	}
	return v4, v6
}

// writeListener writes the accept rules of one public listener.
func (h *host) writeListener(w func(string, ...any), e endpoint) {
	w("\t\t# Listener %s.", e.Name)
	if e.loopback() {
		w("\t\t# (loopback only: accepted above with iif lo)")
		return
	}
	// Sources: the client networks, or anywhere.
	var src4, src6 []string
	for _, c := range h.opts.Clients {
		if c.Addr().Is4() {
			src4 = append(src4, c.String())
		} else {
			src6 = append(src6, c.String())
		}
	}
	anySource := len(h.opts.Clients) == 0
	rule := func(fam, dst string, srcs []string) {
		if !anySource && len(srcs) == 0 {
			return // no client network of this family
		}
		var m []string
		if fam != "" && dst == "" && anySource {
			m = append(m, "meta nfproto "+map[string]string{"ip": "ipv4", "ip6": "ipv6"}[fam])
		}
		if dst != "" {
			m = append(m, fam+" daddr "+dst)
		}
		if !anySource {
			m = append(m, fam+" saddr "+set(srcs))
		}
		m = append(m, fmt.Sprintf("tcp dport %d ct state new accept", e.Port))
		w("\t\t%s", strings.Join(m, " "))
	}
	switch {
	case e.Any6: // every address, both families
		if anySource {
			w("\t\ttcp dport %d ct state new accept", e.Port)
			return
		}
		rule("ip", "", src4)
		rule("ip6", "", src6)
	case e.Any4:
		rule("ip", "", src4)
	default:
		for _, a := range e.Addrs {
			if a.IsLoopback() {
				continue
			}
			if a.Is4() {
				rule("ip", a.String(), src4)
			} else {
				rule("ip6", a.String(), src6)
			}
		}
	}
}

func set(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	return "{ " + strings.Join(xs, ", ") + " }"
}
