// Package mockcc is a small stand-in for a contact center's internal
// servers, for `rampart demo --profile cisco-cc` and the tests. It imitates
// only what the proxy sees: a Finesse-like REST API with Basic auth, an
// agent desktop page with static assets that carry validators, an
// XMPP-over-WebSocket notification channel, an IdS-like token service
// issuing signed JWTs with a JWKS, CUIC report JSON and a LiveData
// socket.io-style WebSocket. It is not a clone of any product.
package mockcc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Users are the agents the mock Finesse knows: id → password.
var Users = map[string]string{"agent1": "Secret#1", "agent2": "Secret#2"}

// Components are the four upstreams.
type Components struct {
	Finesse, IdS, CUIC, LiveData *Upstream
	signer                       *ecdsa.PrivateKey
}

// Upstream is one running mock server.
type Upstream struct {
	URL  string // https://127.0.0.1:port
	Hits atomic.Int64
	srv  *http.Server
	ln   net.Listener
}

// Close stops the server.
func (u *Upstream) Close() { _ = u.srv.Close() }

// Start runs the four components on loopback with TLS (tc: the upstream
// certificate, client certificates verified against tc.ClientCAs when set).
func Start(tc *tls.Config) (*Components, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &Components{signer: key}
	for _, x := range []struct {
		dst **Upstream
		h   func(*Upstream) http.Handler
	}{
		{&c.Finesse, c.finesse}, {&c.IdS, c.ids}, {&c.CUIC, cuic}, {&c.LiveData, livedata},
	} {
		u := &Upstream{}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
		if err != nil {
			c.Close()
			return nil, err
		}
		u.ln = ln
		u.URL = "https://" + ln.Addr().String()
		h := x.h(u)
		u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.Hits.Add(1)
			h.ServeHTTP(w, r)
		}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = u.srv.Serve(ln) }()
		*x.dst = u
	}
	return c, nil
}

// Close stops all components.
func (c *Components) Close() {
	for _, u := range []*Upstream{c.Finesse, c.IdS, c.CUIC, c.LiveData} {
		if u != nil {
			u.Close()
		}
	}
}

func checkBasic(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	want, known := Users[user]
	return user, known && subtle.ConstantTimeCompare([]byte(pass), []byte(want)) == 1
}

const assetVersion = "2026.11.1"

var assetModified = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// static serves a file with ETag and Last-Modified, answering conditionals.
func static(contentType, body string) http.HandlerFunc {
	sum := sha256.Sum256([]byte(body))
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:8]) + `"`
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", assetModified.Format(http.TimeFormat))
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("Content-Type", contentType)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write([]byte(body))
	}
}

func (c *Components) finesse(u *Upstream) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /finesse/api/UserAuth", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := checkBasic(r); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="finesse"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/finesse/api/User/{id}", func(w http.ResponseWriter, r *http.Request) {
		user, ok := checkBasic(r)
		if !ok || user != r.PathValue("id") {
			w.Header().Set("WWW-Authenticate", `Basic realm="finesse"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, "<User><loginId>%s</loginId><state>NOT_READY</state><extension>1001</extension></User>", user)
		case http.MethodPut:
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("GET /desktop/", static("text/html; charset=utf-8", desktopHTML))
	mux.HandleFunc("GET /desktop/static/desktop.js", static("application/javascript", desktopJS))
	mux.HandleFunc("GET /desktop/static/desktop.css", static("text/css", desktopCSS))
	mux.HandleFunc("GET /3rdpartygadget/files/gadget.js", static("application/javascript", "console.log('gadget');\n"))
	mux.HandleFunc("/cfadmin/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "CFADMIN: must never be reachable through the proxy")
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"xmpp"}})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		ctx := r.Context()
		// The client sends <auth user='…'/>; the server answers with a
		// presence event, as an XMPP notification service would after login.
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		user := "unknown"
		if i := strings.Index(string(msg), "user='"); i >= 0 {
			rest := string(msg)[i+6:]
			if j := strings.IndexByte(rest, '\''); j >= 0 {
				user = rest[:j]
			}
		}
		event := fmt.Sprintf("<message><event><User><loginId>%s</loginId><state>READY</state></User></event></message>", user)
		if err := conn.Write(ctx, websocket.MessageText, []byte(event)); err != nil {
			return
		}
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	})
	return mux
}

func (c *Components) ids(u *Upstream) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ids/v1/keys", func(w http.ResponseWriter, r *http.Request) {
		pub, err := c.signer.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			http.Error(w, "error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "EC", "crv": "P-256", "kid": "ids-1", "alg": "ES256", "use": "sig",
			"x": b64(pub[1:33]), "y": b64(pub[33:65]),
		}}})
	})
	mux.HandleFunc("POST /ids/v1/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		user, ok := checkBasic(r)
		if !ok {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusUnauthorized)
			return
		}
		tok, err := c.Token(user, time.Hour)
		if err != nil {
			http.Error(w, "error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	})
	mux.HandleFunc("/idsadmin/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "IDSADMIN: must never be reachable through the proxy")
	})
	return mux
}

// Issuer is the iss claim of the mock IdS tokens; Audience their aud.
const (
	Issuer   = "https://ids.mock.test/ids/v1"
	Audience = "finesse"
)

// Token signs an ES256 JWT for user, valid for ttl.
func (c *Components) Token(user string, ttl time.Duration) (string, error) {
	header := b64j(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "ids-1"})
	now := time.Now()
	claims := b64j(map[string]any{"sub": user, "iss": Issuer, "aud": Audience, "iat": now.Unix(), "exp": now.Add(ttl).Unix()})
	signing := header + "." + claims
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, c.signer, sum[:])
	if err != nil {
		return "", err
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return signing + "." + b64(sig), nil
}

// PublicKey returns the IdS signing key.
func (c *Components) PublicKey() crypto.PublicKey { return &c.signer.PublicKey }

func cuic(u *Upstream) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cuic/rest/about", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"product":"reporting (mock)","version":"` + assetVersion + `"}`))
	})
	mux.HandleFunc("GET /cuic/rest/reports/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": r.PathValue("id"), "rows": [][]any{{"agent1", 12, 340}, {"agent2", 9, 410}}})
	})
	mux.HandleFunc("GET /cuic/static/report.css", static("text/css", "table{border-collapse:collapse}\n"))
	return mux
}

func livedata(u *Upstream) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livedata/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"up"}`))
	})
	mux.HandleFunc("GET /security/socket.io/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("transport") != "websocket" {
			http.Error(w, "transport must be websocket", http.StatusBadRequest)
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		ctx := r.Context()
		// socket.io framing, reduced: "0" open, then "42[event,data]" pushes.
		_ = conn.Write(ctx, websocket.MessageText, []byte(`0{"sid":"mock","pingInterval":25000}`))
		_ = conn.Write(ctx, websocket.MessageText, []byte(`42["agentStats",{"ready":3,"talking":5}]`))
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	})
	return mux
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64j(v any) string {
	b, _ := json.Marshal(v)
	return b64(b)
}
