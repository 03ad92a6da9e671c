package clientip

import (
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
	"strings"
)

// Config is the part of the config file that says who the client is. The
// config package embeds it inline, so its keys are top-level:
//
//	trusted_proxies: [10.0.0.0/8]
//	client_ip: {header: X-Forwarded-For}
//	exempt: [192.0.2.10/32]
type Config struct {
	// TrustedProxies are the peers whose forwarding information (a header
	// or a PROXY protocol header) is believed. CIDR ranges or single
	// addresses.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ClientIP says where a trusted peer puts the client address.
	ClientIP Source `yaml:"client_ip"`
	// Exempt are the client ranges that bypass rate limits (never bans).
	Exempt []string `yaml:"exempt"`
}

// Source is where the client address comes from when the peer is trusted.
// At most one of Header and ProxyProtocol is set; with neither, the client
// is always the TCP peer.
type Source struct {
	// Header names the request header a trusted proxy sets:
	// X-Forwarded-For (a list, walked from the right) or a header holding
	// one address such as X-Client-IP or X-Real-IP.
	Header string `yaml:"header"`
	// ProxyProtocol makes the listener require a PROXY protocol (v1 or v2)
	// header from trusted peers and refuse connections from everyone else.
	ProxyProtocol bool `yaml:"proxy_protocol"`
}

// Validate reports every mistake in c, each saying what to write instead.
func (c Config) Validate() error {
	var errs []error
	if _, err := parsePrefixes("trusted_proxies", c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if _, err := parsePrefixes("exempt", c.Exempt); err != nil {
		errs = append(errs, err)
	}
	src := c.ClientIP
	h := strings.TrimSpace(src.Header)
	switch {
	case h != "" && src.ProxyProtocol:
		errs = append(errs, errors.New("client_ip: header and proxy_protocol are exclusive: "+
			"use proxy_protocol: true when the load balancer speaks the PROXY protocol (TCP mode), "+
			"or header: when it is an HTTP proxy that adds a header, not both"))
	case h != "" && !validHeaderName(h):
		errs = append(errs, fmt.Errorf("client_ip.header: %q is not a valid header name: write e.g. X-Forwarded-For or X-Client-IP", src.Header))
	case h != "" && textproto.CanonicalMIMEHeaderKey(h) == "Forwarded":
		errs = append(errs, errors.New("client_ip.header: the RFC 7239 Forwarded header is not supported: "+
			"configure the proxy to send X-Forwarded-For and write header: X-Forwarded-For"))
	case src.ProxyProtocol && len(c.TrustedProxies) == 0:
		errs = append(errs, errors.New("client_ip.proxy_protocol: every connection would be refused because trusted_proxies is empty: "+
			"list the addresses of the load balancers that send the PROXY header"))
	}
	return errors.Join(errs...)
}

// Warnings lists settings that are valid but probably not what was meant.
func (c Config) Warnings() []string {
	var w []string
	prefixes, _ := parsePrefixes("trusted_proxies", c.TrustedProxies)
	for _, p := range prefixes {
		if p.Bits() == 0 {
			w = append(w, "trusted_proxies includes every address: any client can forge its identity")
			break
		}
	}
	src := c.ClientIP
	if strings.TrimSpace(src.Header) != "" && len(c.TrustedProxies) == 0 {
		w = append(w, "client_ip.header is set but trusted_proxies is empty: the header is never believed and the client is always the TCP peer")
	}
	if strings.TrimSpace(src.Header) == "" && !src.ProxyProtocol && len(c.TrustedProxies) > 0 {
		w = append(w, "trusted_proxies is set but client_ip names no source: set client_ip.header or client_ip.proxy_protocol, or the proxies are never believed")
	}
	return w
}

// parsePrefixes parses CIDR ranges and single addresses. IPv4-mapped IPv6
// ranges are turned into IPv4 ranges, since client addresses are unmapped
// before they are compared.
func parsePrefixes(key string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	var errs []error
	for i, s := range list {
		p, err := parsePrefix(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range: write e.g. 10.0.0.0/8, 192.0.2.10 or 2001:db8::/32", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range: write an address, a slash and a prefix length, e.g. 10.0.0.0/8 or 2001:db8::/32", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has bits set after the prefix length: write %s for the network or %s/%d for the single address",
			s, p.Masked(), p.Addr(), p.Addr().BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, fmt.Errorf("%q is wider than the IPv4-mapped range ::ffff:0:0/96: write the IPv4 range instead", s)
		}
		p = netip.PrefixFrom(a.Unmap(), bits)
	}
	return p, nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		default:
			return false
		}
	}
	return s != ""
}
