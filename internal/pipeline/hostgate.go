package pipeline

import (
	"net"
	"net/http"
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
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		port := host[i+1:]
		host = host[:i]
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if _, lport, err := net.SplitHostPort(la.String()); err == nil && lport != port {
				return nil, "host-port-mismatch"
			}
		}
	}
	host = lowerASCII(strings.TrimSuffix(host, "."))
	s := p.sites[host]
	if s == nil {
		return nil, "unknown-host"
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
