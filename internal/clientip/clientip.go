// Package clientip is pipeline stage 6: it decides who the client is.
//
// The client is the TCP peer, unless the peer is one of the configured
// trusted_proxies. Only then is forwarding information believed: the
// X-Forwarded-For list (walked from the right, skipping trusted proxies), a
// single-address header such as X-Client-IP, or the PROXY protocol header
// that the listener read (see Resolver.Listener). Anything a client sends
// on its own behalf is ignored, and every forwarding header a client could
// use to fool an upstream is removed from the request, because the proxy
// stage writes its own.
//
// The stage writes reqinfo.Info.Client and reqinfo.Info.Exempt; later
// stages (rate limits, bans, logs) read only those.
package clientip

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

type mode uint8

const (
	modePeer   mode = iota // the client is always the TCP peer
	modeXFF                // X-Forwarded-For from trusted peers
	modeSingle             // one address in a named header from trusted peers
	modeProxy              // PROXY protocol: the listener already put the client in RemoteAddr
)

const xffKey = "X-Forwarded-For"

// Resolver applies one Config. It is immutable and safe for concurrent use;
// a reload builds a new one.
type Resolver struct {
	trusted []netip.Prefix
	exempt  []netip.Prefix
	mode    mode
	header  string // canonical name of the configured header
}

// New checks cfg and returns its Resolver.
func New(cfg Config) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	trusted, _ := parsePrefixes("trusted_proxies", cfg.TrustedProxies)
	exempt, _ := parsePrefixes("exempt", cfg.Exempt)
	r := &Resolver{trusted: trusted, exempt: exempt}
	switch h := strings.TrimSpace(cfg.ClientIP.Header); {
	case cfg.ClientIP.ProxyProtocol:
		r.mode = modeProxy
	case h == "":
		r.mode = modePeer
	case textproto.CanonicalMIMEHeaderKey(h) == xffKey:
		r.mode, r.header = modeXFF, xffKey
	default:
		r.mode, r.header = modeSingle, textproto.CanonicalMIMEHeaderKey(h)
	}
	return r, nil
}

// ProxyProtocol reports whether the PROXY protocol is configured, in which
// case the server must wrap its listener with Listener, and the handler
// takes the client from the connection only.
func (r *Resolver) ProxyProtocol() bool { return r.mode == modeProxy }

// SharedPeer reports whether connections from peer carry the requests of
// many clients: peer is a trusted proxy and the client address travels in
// a header. The connection guard uses it to spare such peers its
// per-client caps (they still count towards the total). With the PROXY
// protocol the connection's address is already the client's, so it
// reports false.
func (r *Resolver) SharedPeer(peer netip.Addr) bool {
	if r.mode != modeXFF && r.mode != modeSingle {
		return false
	}
	return contains(r.trusted, peer.Unmap())
}

// Handler sets reqinfo Client and Exempt for each request, strips the
// client-supplied forwarding headers, and calls next.
func (r *Resolver) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		info := reqinfo.Of(req)
		client := r.Client(req, info.Peer)
		info.Client = client
		info.Exempt = client.IsValid() && contains(r.exempt, client)
		stripForwarding(req.Header, r.header)
		next.ServeHTTP(w, req)
	})
}

// Client returns the client of req that arrived from peer. An invalid peer
// is taken from req.RemoteAddr. The result is invalid only when neither
// names an IP address (e.g. a Unix socket).
func (r *Resolver) Client(req *http.Request, peer netip.AddrPort) netip.Addr {
	addr := peer.Addr()
	if !addr.IsValid() {
		if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
			addr = ap.Addr()
		} else if a, err := netip.ParseAddr(req.RemoteAddr); err == nil {
			addr = a
		}
	}
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() || !contains(r.trusted, addr) {
		return addr
	}
	switch r.mode {
	case modeXFF:
		return r.fromList(req.Header[xffKey], addr)
	case modeSingle:
		lines := req.Header[r.header]
		if len(lines) != 1 {
			return addr
		}
		if a, ok := parseEntry(trimOWS(lines[0])); ok {
			return a
		}
	}
	return addr
}

// fromList walks X-Forwarded-For from the right, over all header lines
// taken together, and returns the first address that is not a trusted
// proxy. Each proxy appends the address it received the request from, so
// everything to the right of that address was written by trusted proxies
// and everything to its left may have been forged by the client.
//
// Empty elements are skipped. A malformed element (not an address, or
// "unknown") stops the walk: the result is the last good address seen,
// which is a trusted proxy (or the peer itself), never something to the
// left of the garbage. When every element is trusted, the leftmost one is
// the client.
func (r *Resolver) fromList(lines []string, peer netip.Addr) netip.Addr {
	last := peer
	for i := len(lines) - 1; i >= 0; i-- {
		s := lines[i]
		for s != "" {
			var elem string
			if j := strings.LastIndexByte(s, ','); j >= 0 {
				elem, s = s[j+1:], s[:j]
			} else {
				elem, s = s, ""
			}
			elem = trimOWS(elem)
			if elem == "" {
				continue
			}
			a, ok := parseEntry(elem)
			if !ok {
				return last
			}
			if !contains(r.trusted, a) {
				return a
			}
			last = a
		}
	}
	return last
}

// parseEntry parses one forwarded address: "192.0.2.1", "2001:db8::1", or
// the same with a port ("192.0.2.1:443", "[2001:db8::1]:443"), which some
// proxies append. Zoned addresses are refused: a zone means nothing beyond
// the proxy that wrote it.
func parseEntry(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardingHeaders are the request headers, in canonical form, that
// upstream applications or frameworks read as the client's address, host or
// scheme. A client must never be able to set them; the proxy stage writes
// the ones it sends.
var forwardingHeaders = [...]string{
	"X-Forwarded-For",
	"X-Forwarded-Host",
	"X-Forwarded-Proto",
	"X-Forwarded-Port",
	"X-Real-Ip",
	"Forwarded",
	"X-Client-Ip",
	"True-Client-Ip",
	"Cf-Connecting-Ip",
	"X-Cluster-Client-Ip",
	"X-Original-Forwarded-For",
	"Fastly-Client-Ip",
}

// forwardingLengths has bit n set when a forwarding header is n bytes long.
var forwardingLengths = func() uint64 {
	var m uint64
	for _, f := range forwardingHeaders {
		m |= 1 << len(f)
	}
	return m
}()

// stripForwarding deletes the forwarding headers and the configured one,
// in any letter case and also when spelt with underscores
// ("X_Forwarded_For"), which CGI-style upstreams map onto the same variable
// as the dashed name.
func stripForwarding(h http.Header, configured string) {
	for k := range h {
		if (len(k) >= 64 || forwardingLengths&(1<<len(k)) == 0) && len(k) != len(configured) {
			continue // cheap filter: no forwarding header has this length
		}
		if isForwarding(k, configured) {
			delete(h, k)
		}
	}
}

func isForwarding(k, configured string) bool {
	if configured != "" && equalFoldDash(k, configured) {
		return true
	}
	for _, f := range forwardingHeaders {
		if equalFoldDash(k, f) {
			return true
		}
	}
	return false
}

// equalFoldDash compares ASCII case-insensitively, taking '_' for '-'.
func equalFoldDash(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	if a == b {
		return true
	}
	for i := 0; i < len(a); i++ {
		if lowerDash(a[i]) != lowerDash(b[i]) {
			return false
		}
	}
	return true
}

func lowerDash(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}
