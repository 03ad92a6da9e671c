package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-proxy/rampart/internal/units"
)

func init() {
	// Let tests refresh keys in milliseconds.
	minRefresh = time.Millisecond
	minKick = 0
}

const (
	testIssuer   = "https://ids.example.com:8553/ids/v1"
	testAudience = "finesse"
)

// fakeUpstream is a verify_url: it knows users and passwords and counts
// calls.
type fakeUpstream struct {
	mu      sync.Mutex
	users   map[string]string
	calls   atomic.Int64
	status  int           // when set, answered whatever the credentials
	err     error         // when set, returned
	release chan struct{} // when set, each call waits for it
}

func newUpstream(users map[string]string) *fakeUpstream {
	return &fakeUpstream{users: users}
}

func (u *fakeUpstream) Verify(ctx context.Context, authHeader string) (int, error) {
	u.calls.Add(1)
	if u.release != nil {
		select {
		case <-u.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if u.err != nil {
		return 0, u.err
	}
	if u.status != 0 {
		return u.status, nil
	}
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", authHeader)
	user, pass, ok := r.BasicAuth()
	u.mu.Lock()
	defer u.mu.Unlock()
	if ok && u.users[user] == pass {
		return http.StatusOK, nil
	}
	return http.StatusUnauthorized, nil
}

func (u *fakeUpstream) setPassword(user, pass string) {
	u.mu.Lock()
	u.users[user] = pass
	u.mu.Unlock()
}

// failures records OnFailure calls.
type failures struct {
	mu    sync.Mutex
	names []string
}

func (f *failures) record(_ *http.Request, user string) {
	f.mu.Lock()
	f.names = append(f.names, user)
	f.mu.Unlock()
}

func (f *failures) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.names...)
}

// counter is the next handler: it counts what reaches it.
type counter struct {
	n        atomic.Int64
	mu       sync.Mutex
	lastReq  *http.Request
	lastHead http.Header
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.mu.Lock()
	c.lastReq = r
	c.lastHead = r.Header.Clone()
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (c *counter) header() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastHead
}

func basicConfig() Config {
	return Config{Kind: KindBasic, VerifyURL: "/finesse/api/UserAuth"}
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// do sends one request through h and returns the recorder.
func do(h http.Handler, mutate func(r *http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "https://finesse.example.com/finesse/api/User/agent1", nil)
	if mutate != nil {
		mutate(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func withAuth(v string) func(r *http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", v) }
}

// keyPair is a signing key with its JWK.
type keyPair struct {
	kid    string
	method jwt.SigningMethod
	priv   any
	pub    any
}

func rsaKey(t testing.TB, kid string) keyPair {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{kid: kid, method: jwt.SigningMethodRS256, priv: k, pub: &k.PublicKey}
}

func ecKey(t testing.TB, kid string, curve elliptic.Curve) keyPair {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := jwt.SigningMethod(jwt.SigningMethodES256)
	if curve == elliptic.P384() {
		m = jwt.SigningMethodES384
	}
	return keyPair{kid: kid, method: m, priv: k, pub: &k.PublicKey}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (k keyPair) jwk() map[string]string {
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": k.kid, "use": "sig", "alg": k.method.Alg(),
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		raw, _ := pub.Bytes()
		return map[string]string{"kty": "EC", "kid": k.kid, "crv": pub.Curve.Params().Name,
			"x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:])}
	}
	panic("unknown key")
}

func (k keyPair) pemBytes(t testing.TB) []byte {
	der, err := x509.MarshalPKIXPublicKey(k.pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func jwks(keys ...keyPair) []byte {
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range keys {
		doc.Keys = append(doc.Keys, k.jwk())
	}
	b, _ := json.Marshal(doc)
	return b
}

// sign returns a token signed by k with the claims of a valid IdS token,
// changed by edit.
func (k keyPair) sign(t testing.TB, edit func(c jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "agent1",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	tok := jwt.NewWithClaims(k.method, c)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyServer serves a key document that tests can change and break.
type keyServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	fail    bool
	fetches atomic.Int64
}

func newKeyServer(t testing.TB, body []byte) *keyServer {
	ks := &keyServer{body: body}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.fetches.Add(1)
		ks.mu.Lock()
		defer ks.mu.Unlock()
		if ks.fail {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ks.body)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(body []byte, fail bool) {
	ks.mu.Lock()
	ks.body, ks.fail = body, fail
	ks.mu.Unlock()
}

// fetch is Deps.FetchKeys over plain HTTP, as the lead's egress fetcher
// would do it.
func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

func jwtConfig(keysURL string) Config {
	return Config{
		Kind: KindJWT, KeysURL: keysURL, Issuer: testIssuer, Audience: Strings{testAudience},
		Refresh: units.Duration(time.Hour),
	}
}

func mustNew(t testing.TB, cfg Config, deps Deps) *Authenticator {
	t.Helper()
	a, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
