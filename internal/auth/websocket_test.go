package auth

import (
	"encoding/base64"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/units"
)

func upgrade(protocols string) func(r *http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if protocols != "" {
			r.Header.Set("Sec-WebSocket-Protocol", protocols)
		}
	}
}

func both(fs ...func(r *http.Request)) func(r *http.Request) {
	return func(r *http.Request) {
		for _, f := range fs {
			f(r)
		}
	}
}

func fromClient(addr string) func(r *http.Request) {
	return func(r *http.Request) {
		info := &reqinfo.Info{Client: netip.MustParseAddr(addr)}
		*r = *r.WithContext(reqinfo.With(r.Context(), info))
	}
}

func raw64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestWebSocketProtocolCredentials(t *testing.T) {
	k := rsaKey(t, "k")
	srv := newKeyServer(t, jwks(k))
	up := newUpstream(map[string]string{"agent1": "pw"})
	cfg := jwtConfig(srv.URL)
	cfg.Kind, cfg.VerifyURL = KindEither, "/finesse/api/UserAuth"
	var fails failures
	a := mustNew(t, cfg, Deps{FetchKeys: fetch, Verify: up.Verify, OnFailure: fails.record})
	token := k.sign(t, nil)

	tests := []struct {
		name      string
		mutate    func(r *http.Request)
		status    int
		protoSent string // Sec-WebSocket-Protocol forwarded ("" = none)
		authSent  string // Authorization forwarded
	}{
		{"bearer entry", upgrade("xmpp, " + ProtocolBearerPrefix + raw64(token)), 200, "xmpp", "Bearer " + token},
		{"bearer entry alone", upgrade(ProtocolBearerPrefix + raw64(token)), 200, "", "Bearer " + token},
		{"bearer entry with padding", upgrade("xmpp, " + ProtocolBearerPrefix + base64.URLEncoding.EncodeToString([]byte(token))), 200, "xmpp", "Bearer " + token},
		{"basic entry", upgrade(ProtocolBasicPrefix + raw64("agent1:pw") + ", xmpp"), 200, "xmpp", basicAuth("agent1", "pw")},
		{"entry over two header lines", func(r *http.Request) {
			upgrade("chat")(r)
			r.Header.Add("Sec-WebSocket-Protocol", "xmpp, "+ProtocolBearerPrefix+raw64(token))
		}, 200, "chat, xmpp", "Bearer " + token},
		{"Authorization header wins, entry still stripped", both(upgrade("xmpp, "+ProtocolBearerPrefix+raw64("junk")), withAuth(basicAuth("agent1", "pw"))), 200, "xmpp", basicAuth("agent1", "pw")},
		{"wrong password in entry", upgrade("xmpp, " + ProtocolBasicPrefix + raw64("agent1:nope")), 401, "", ""},
		{"expired token in entry", upgrade(ProtocolBearerPrefix + raw64(k.sign(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))), 401, "", ""},
		{"entry not base64url", upgrade("xmpp, " + ProtocolBearerPrefix + "***"), 401, "", ""},
		{"basic entry without colon", upgrade(ProtocolBasicPrefix + raw64("agent1")), 401, "", ""},
		{"two entries", upgrade(ProtocolBearerPrefix + raw64(token) + ", " + ProtocolBasicPrefix + raw64("agent1:pw")), 401, "", ""},
		{"entry on a plain request is ignored", func(r *http.Request) {
			r.Header.Set("Sec-WebSocket-Protocol", ProtocolBearerPrefix+raw64(token))
		}, 401, "", ""},
		{"no credentials at all", upgrade("xmpp"), 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &counter{}
			w := do(a.Handler(next), tt.mutate)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if tt.status != 200 {
				if next.n.Load() != 0 {
					t.Fatal("refused upgrade reached next")
				}
				return
			}
			h := next.header()
			if got := h.Get("Sec-WebSocket-Protocol"); got != tt.protoSent {
				t.Fatalf("forwarded Sec-WebSocket-Protocol %q, want %q", got, tt.protoSent)
			}
			if got := h.Get("Authorization"); got != tt.authSent {
				t.Fatalf("forwarded Authorization %q, want %q", got, tt.authSent)
			}
		})
	}
}

func TestWebSocketProtocolCredentialsOff(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	cfg := basicConfig()
	off := false
	cfg.WebSocket.ProtocolCredentials = &off
	a := mustNew(t, cfg, Deps{Verify: up.Verify})
	next := &counter{}
	if w := do(a.Handler(next), upgrade("xmpp, "+ProtocolBasicPrefix+raw64("agent1:pw"))); w.Code != 401 {
		t.Fatalf("protocol credentials accepted while off: %d", w.Code)
	}
	if up.calls.Load() != 0 || next.n.Load() != 0 {
		t.Fatal("credentials were used")
	}
}

func TestWebSocketRecentAuthWindow(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	cfg := basicConfig()
	cfg.WebSocket.RecentAuthWindow = units.Duration(2 * time.Hour)
	a := mustNew(t, cfg, Deps{Verify: up.Verify})
	now := time.Now()
	a.now = func() time.Time { return now }
	next := &counter{}
	h := a.Handler(next)

	if w := do(h, both(upgrade("xmpp"), fromClient("203.0.113.7"))); w.Code != 401 {
		t.Fatalf("upgrade before any authentication: %d", w.Code)
	}
	if w := do(h, both(withAuth(basicAuth("agent1", "pw")), fromClient("203.0.113.7"))); w.Code != 200 {
		t.Fatalf("login: %d", w.Code)
	}
	info := &reqinfo.Info{Client: netip.MustParseAddr("203.0.113.7")}
	w := do(h, both(upgrade("xmpp"), func(r *http.Request) { *r = *r.WithContext(reqinfo.With(r.Context(), info)) }))
	if w.Code != 200 {
		t.Fatalf("upgrade from the same address within the window: %d", w.Code)
	}
	if info.Username != "agent1" {
		t.Fatalf("username %q, want the one that authenticated", info.Username)
	}
	if w := do(h, both(upgrade("xmpp"), fromClient("203.0.113.8"))); w.Code != 401 {
		t.Fatalf("upgrade from another address: %d", w.Code)
	}
	// A plain request is never let through by the window.
	if w := do(h, fromClient("203.0.113.7")); w.Code != 401 {
		t.Fatalf("plain request let through by the window: %d", w.Code)
	}
	now = now.Add(2*time.Hour + time.Second)
	if w := do(h, both(upgrade("xmpp"), fromClient("203.0.113.7"))); w.Code != 401 {
		t.Fatalf("upgrade after the window: %d", w.Code)
	}
	// Without a window, nothing is remembered.
	b := mustNew(t, basicConfig(), Deps{Verify: up.Verify})
	hb := b.Handler(&counter{})
	do(hb, both(withAuth(basicAuth("agent1", "pw")), fromClient("203.0.113.9")))
	if w := do(hb, both(upgrade("xmpp"), fromClient("203.0.113.9"))); w.Code != 401 {
		t.Fatalf("window off, upgrade let through: %d", w.Code)
	}
}

func TestWebSocketRecentTableBounded(t *testing.T) {
	up := newUpstream(map[string]string{"agent1": "pw"})
	cfg := basicConfig()
	cfg.WebSocket.RecentAuthWindow = units.Duration(time.Hour)
	cfg.WebSocket.MaxClients = 4
	a := mustNew(t, cfg, Deps{Verify: up.Verify})
	h := a.Handler(&counter{})
	for i := range 20 {
		addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String()
		do(h, both(withAuth(basicAuth("agent1", "pw")), fromClient(addr)))
		if n := a.recent.len(); n > 4 {
			t.Fatalf("recent table holds %d, bound 4", n)
		}
	}
	if w := do(h, both(upgrade("xmpp"), fromClient("198.51.100.0"))); w.Code != 401 {
		t.Fatal("evicted address still let through")
	}
	if w := do(h, both(upgrade("xmpp"), fromClient("198.51.100.19"))); w.Code != 200 {
		t.Fatal("recent address refused")
	}
}

func TestWebSocketUpgradeDetection(t *testing.T) {
	tests := []struct {
		conn, upg string
		want      bool
	}{
		{"Upgrade", "websocket", true},
		{"keep-alive, upgrade", "WebSocket", true},
		{"keep-alive", "websocket", false},
		{"Upgrade", "h2c", false},
		{"", "", false},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Connection", tt.conn)
		r.Header.Set("Upgrade", tt.upg)
		if got := isWebSocketUpgrade(r); got != tt.want {
			t.Errorf("Connection %q Upgrade %q: %v", tt.conn, tt.upg, got)
		}
	}
}
