package pipeline

import (
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/rampart-proxy/rampart/internal/protoguard"
)

// hostGate is stage 4. The Host header must name a configured site, and the
// TLS SNI must name the same site: a client cannot open a TLS session for
// one host and send requests for another (domain fronting). A port in Host,
// if any, must be the port the request arrived on. Absolute-form targets
// were already matched against Host by the protocol guard.
func (p *Pipeline) hostGate(r *http.Request, gc *protoguard.Conn) (*site, string) {
	host := r.Host
	lport := 0
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		lport = la.Port
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		port := host[i+1:]
		host = host[:i]
		if n, err := strconv.Atoi(port); err != nil || (lport != 0 && n != lport) {
			return nil, "host-port-mismatch"
		}
	}
	host = lowerASCII(strings.TrimSuffix(host, "."))
	s := p.sites[host]
	if s == nil {
		return nil, "unknown-host"
	}
	if len(s.conf.Ports) > 0 && lport != 0 && !slices.Contains(s.conf.Ports, lport) {
		// Multi-port layouts select an upstream by (host, port).
		return nil, "site-not-on-this-port"
	}
	if gc == nil {
		return s, ""
	}
	sni := gc.TLS().ServerName
	if sni == "" {
		return nil, "missing-sni"
	}
	if p.sites[lowerASCII(sni)] != s {
		return nil, "sni-host-mismatch"
	}
	return s, ""
}

// lowerASCII lowercases without allocating when s is already lower case.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
