package lint

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// upstreams reports https targets verified against the system roots.
// insecure_skip_verify and plain http are config.Warnings.
func (l *linter) upstreams() {
	for i, s := range l.cfg.Sites {
		ut := s.Upstream.TLS
		if ut.CA != "" || ut.InsecureSkipVerify {
			continue
		}
		for j, t := range s.Upstream.Targets {
			if u, err := url.Parse(t); err == nil && u.Scheme == "https" {
				l.report(RuleUpSysRoots, p("sites", i, "upstream", "targets", j),
					"%s is verified against the public system roots: an internal server seldom has a publicly trusted certificate, and any public CA could issue one for %s", u.Host, u.Hostname())
				break
			}
		}
	}
}

// clientIP reports trusted_proxies and exempt ranges that are too wide, and
// client_ip settings that have no effect.
func (l *linter) clientIP() {
	c := l.cfg.Stages.Config
	for k, s := range c.TrustedProxies {
		pfx, ok := parsePrefix(s)
		switch {
		case !ok:
		case pfx.Bits() == 0:
			l.report(RuleProxiesAll, p("trusted_proxies", k), "%s is every address: any client can name its own address in %s and escape its bans and rate limits", s, sourceName(c.ClientIP.Header, c.ClientIP.ProxyProtocol))
		case tooWide(pfx):
			l.report(RuleProxiesBroad, p("trusted_proxies", k), "%s covers %s addresses: any client in it can name its own address and escape its bans and rate limits", s, sizeOf(pfx))
		}
	}
	for k, s := range c.Exempt {
		if pfx, ok := parsePrefix(s); ok && (pfx.Bits() == 0 || tooWide(pfx)) {
			l.report(RuleExemptBroad, p("exempt", k), "%s covers %s addresses, all exempt from rate limits", s, sizeOf(pfx))
		}
	}
	header := strings.TrimSpace(c.ClientIP.Header)
	switch {
	case header != "" && len(c.TrustedProxies) == 0:
		l.report(RuleClientIPNoop, p("client_ip", "header"), "%s is never believed because trusted_proxies is empty: the client is always the TCP peer", header)
	case header == "" && !c.ClientIP.ProxyProtocol && len(c.TrustedProxies) > 0:
		l.report(RuleClientIPNoop, p("trusted_proxies"), "trusted_proxies is set but client_ip names no source (header or proxy_protocol): the proxies' forwarding information is never read, and every client behind them shares one address for bans and rate limits")
	}
}

func sourceName(header string, proxyProtocol bool) string {
	switch {
	case proxyProtocol:
		return "a PROXY protocol header"
	case strings.TrimSpace(header) != "":
		return strings.TrimSpace(header)
	}
	return "a forwarding header"
}

// parsePrefix reads a range or a single address as clientip does.
func parsePrefix(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	return pfx, true
}

// tooWide: an IPv4 range shorter than /8 or an IPv6 range shorter than /32
// (a whole provider's allocation).
func tooWide(pfx netip.Prefix) bool {
	if pfx.Addr().Is4() {
		return pfx.Bits() < 8
	}
	return pfx.Bits() < 32
}

func sizeOf(pfx netip.Prefix) string {
	return fmt.Sprintf("2^%d", pfx.Addr().BitLen()-pfx.Bits())
}
