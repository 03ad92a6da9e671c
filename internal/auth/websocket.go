package auth

import (
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// The Sec-WebSocket-Protocol entries that carry credentials. A browser
// cannot set Authorization on a WebSocket, but it can offer subprotocols,
// so a client offers its real subprotocol and one of these:
//
//	Sec-WebSocket-Protocol: xmpp, base64url.bearer.authorization.<base64url(token)>
//	Sec-WebSocket-Protocol: xmpp, base64url.basic.authorization.<base64url(user ":" password)>
//
// <…> is base64url without padding (RFC 4648 §5), so the entry is a valid
// subprotocol token whatever the credentials contain. rampart removes the
// entry before forwarding (the upstream never sees credentials in the
// subprotocol list and so cannot echo them back), and puts the credentials
// in the Authorization header of the forwarded upgrade when the client sent
// none.
const (
	ProtocolBearerPrefix = "base64url.bearer.authorization."
	ProtocolBasicPrefix  = "base64url.basic.authorization."
)

// isWebSocketUpgrade reports whether r asks to become a WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// protocolCredential is what takeProtocolCredentials found.
type protocolCredential struct {
	found     bool
	malformed bool
	cred      credential
}

// takeProtocolCredentials removes every credential entry from the
// Sec-WebSocket-Protocol header of h, whatever the config, and returns the
// credentials if there was exactly one well-formed entry.
func takeProtocolCredentials(h http.Header) protocolCredential {
	values := h.Values("Sec-WebSocket-Protocol")
	if len(values) == 0 {
		return protocolCredential{}
	}
	var keep []string
	var out protocolCredential
	n := 0
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			low := strings.ToLower(e)
			switch {
			case strings.HasPrefix(low, ProtocolBearerPrefix):
				n++
				tok, err := b64text(e[len(ProtocolBearerPrefix):])
				if err != nil || tok == "" || len(tok) > maxTokenLen {
					out.malformed = true
					continue
				}
				out.cred = credential{kind: credBearer, token: tok, fromProtocol: true}
			case strings.HasPrefix(low, ProtocolBasicPrefix):
				n++
				raw, err := b64text(e[len(ProtocolBasicPrefix):])
				user, pass, ok := splitBasic(raw)
				if err != nil || !ok {
					out.malformed = true
					continue
				}
				out.cred = credential{kind: credBasic, user: user, pass: pass, fromProtocol: true}
			default:
				keep = append(keep, e)
			}
		}
	}
	if n == 0 {
		return protocolCredential{}
	}
	h.Del("Sec-WebSocket-Protocol")
	if len(keep) > 0 {
		h.Set("Sec-WebSocket-Protocol", strings.Join(keep, ", "))
	}
	out.found = true
	if n > 1 {
		out.malformed = true // which one would count? refuse rather than guess
	}
	if out.malformed {
		out.cred = credential{}
	}
	return out
}

func b64text(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return string(b), err
}

// recentEntry is one client address that authenticated.
type recentEntry struct {
	at   time.Time
	user string
}

// clientOf is the client identity the pipeline resolved, or the TCP peer
// when the request did not pass through it.
func clientOf(r *http.Request) netip.Addr {
	if c := reqinfo.Of(r).Client; c.IsValid() {
		return c.Unmap()
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
