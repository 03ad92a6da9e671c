package auth

import (
	"crypto/elliptic"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/units"
)

func TestJWT(t *testing.T) {
	rs := rsaKey(t, "rsa-1")
	rs384 := rs
	rs384.kid, rs384.method = "rsa-384", jwt.SigningMethodRS384
	es := ecKey(t, "ec-1", elliptic.P256())
	es384 := ecKey(t, "ec-384", elliptic.P384())
	rsOther := rsaKey(t, "rsa-1") // same kid, key not published
	// rs384 shares rs's key; publish it again without an alg restriction.
	rsNoAlg := rs.jwk()
	delete(rsNoAlg, "alg")
	rsNoAlg["kid"] = "rsa-384"
	srv := newKeyServer(t, jwksDoc(rs.jwk(), rsNoAlg, es.jwk(), es384.jwk()))

	var fails failures
	a := mustNew(t, jwtConfig(srv.URL), Deps{FetchKeys: fetch, OnFailure: fails.record})
	next := &counter{}
	h := a.Handler(next)

	pemKey := rs.pemBytes(t)
	hsConfusion := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": testIssuer, "aud": testAudience, "sub": "attacker", "exp": time.Now().Add(time.Hour).Unix(),
		})
		tok.Header["kid"] = "rsa-1"
		s, err := tok.SignedString(pemKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
			"iss": testIssuer, "aud": testAudience, "sub": "attacker", "exp": time.Now().Add(time.Hour).Unix(),
		})
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tampered := func() string {
		parts := strings.Split(rs.sign(t, nil), ".")
		parts[1] = b64([]byte(`{"iss":"` + testIssuer + `","aud":"finesse","sub":"admin","exp":9999999999}`))
		return strings.Join(parts, ".")
	}
	noKid := rs
	noKid.kid = ""

	tests := []struct {
		name  string
		token string
		pass  bool
		user  string
	}{
		{"RS256 valid", rs.sign(t, nil), true, "agent1"},
		{"RS384 valid", rs384.sign(t, nil), true, "agent1"},
		{"ES256 valid", es.sign(t, func(c jwt.MapClaims) { c["sub"] = "supervisor1" }), true, "supervisor1"},
		{"ES384 valid", es384.sign(t, nil), true, "agent1"},
		{"no kid: every fitting key tried", noKid.sign(t, nil), true, "agent1"},
		{"audience list containing ours", rs.sign(t, func(c jwt.MapClaims) { c["aud"] = []string{"cuic", "finesse"} }), true, "agent1"},
		{"expired within leeway", rs.sign(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }), true, "agent1"},
		{"expired", rs.sign(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), false, ""},
		{"not yet valid", rs.sign(t, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), false, ""},
		{"issued in the future", rs.sign(t, func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() }), false, ""},
		{"missing exp", rs.sign(t, func(c jwt.MapClaims) { delete(c, "exp") }), false, ""},
		{"wrong issuer", rs.sign(t, func(c jwt.MapClaims) { c["iss"] = "https://evil.example.net/ids/v1" }), false, ""},
		{"missing issuer", rs.sign(t, func(c jwt.MapClaims) { delete(c, "iss") }), false, ""},
		{"wrong audience", rs.sign(t, func(c jwt.MapClaims) { c["aud"] = "cuic" }), false, ""},
		{"missing audience", rs.sign(t, func(c jwt.MapClaims) { delete(c, "aud") }), false, ""},
		{"alg none", none(), false, ""},
		{"HS256 with the RSA public key as secret", hsConfusion(), false, ""},
		{"signed by an unpublished key with a known kid", rsOther.sign(t, nil), false, ""},
		{"unknown kid", func() string { k := rsaKey(t, "rsa-9"); return k.sign(t, nil) }(), false, ""},
		{"RS256 token naming an EC key", func() string { k := rs; k.kid = "ec-1"; return k.sign(t, nil) }(), false, ""},
		{"ES384 token naming a P-256 key", func() string { k := es384; k.kid = "ec-1"; return k.sign(t, nil) }(), false, ""},
		{"payload changed", tampered(), false, ""},
		{"garbage", "not-a-token", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached := next.n.Load()
			nfails := len(fails.list())
			info := &reqinfo.Info{}
			w := do(h, func(r *http.Request) {
				*r = *r.WithContext(reqinfo.With(r.Context(), info))
				r.Header.Set("Authorization", "Bearer "+tt.token)
			})
			if tt.pass {
				if w.Code != 200 || next.n.Load() != reached+1 {
					t.Fatalf("status %d, want 200", w.Code)
				}
				if info.Username != tt.user {
					t.Fatalf("username %q, want %q", info.Username, tt.user)
				}
				return
			}
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Fatalf("WWW-Authenticate %q", got)
			}
			if next.n.Load() != reached {
				t.Fatal("an invalid token reached next")
			}
			if len(fails.list()) != nfails+1 {
				t.Fatal("OnFailure not called")
			}
		})
	}
}

func jwksDoc(keys ...map[string]string) []byte {
	var b strings.Builder
	b.WriteString(`{"keys":[`)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("{")
		first := true
		for name, v := range k {
			if !first {
				b.WriteString(",")
			}
			first = false
			b.WriteString(`"` + name + `":"` + v + `"`)
		}
		b.WriteString("}")
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func TestJWTMissingToken(t *testing.T) {
	srv := newKeyServer(t, jwks(rsaKey(t, "k")))
	var fails failures
	a := mustNew(t, jwtConfig(srv.URL), Deps{FetchKeys: fetch, OnFailure: fails.record})
	next := &counter{}
	tests := []struct {
		name   string
		auth   string
		status int
		chall  string
	}{
		{"none", "", 401, `Bearer realm="rampart"`},
		{"basic on a jwt site", basicAuth("a", "b"), 401, `Bearer realm="rampart"`},
		{"empty bearer", "Bearer ", 401, `Bearer error="invalid_token"`},
		{"bearer with spaces", "Bearer a b", 401, `Bearer error="invalid_token"`},
		{"lower-case scheme still read", "bearer x.y.z", 401, `Bearer error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(a.Handler(next), func(r *http.Request) {
				if tt.auth != "" {
					r.Header.Set("Authorization", tt.auth)
				}
			})
			if w.Code != tt.status || w.Header().Get("WWW-Authenticate") != tt.chall {
				t.Fatalf("status %d, WWW-Authenticate %q", w.Code, w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	if next.n.Load() != 0 {
		t.Fatal("a request without a valid token reached next")
	}
}

func TestJWTCookie(t *testing.T) {
	k := rsaKey(t, "k")
	srv := newKeyServer(t, jwks(k))
	cfg := jwtConfig(srv.URL)
	cfg.Cookie = "access_token"
	a := mustNew(t, cfg, Deps{FetchKeys: fetch})
	next := &counter{}
	h := a.Handler(next)
	if w := do(h, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "access_token", Value: k.sign(t, nil)}) }); w.Code != 200 {
		t.Fatalf("token cookie: %d", w.Code)
	}
	if w := do(h, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "other", Value: k.sign(t, nil)}) }); w.Code != 401 {
		t.Fatalf("token in another cookie: %d", w.Code)
	}
	expired := k.sign(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
	if w := do(h, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "access_token", Value: expired}) }); w.Code != 401 {
		t.Fatalf("expired token cookie: %d", w.Code)
	}
}

func TestJWTKeyRotation(t *testing.T) {
	old, rotated := rsaKey(t, "2024"), ecKey(t, "2025", elliptic.P256())
	srv := newKeyServer(t, jwks(old))
	cfg := jwtConfig(srv.URL)
	cfg.Refresh = units.Duration(20 * time.Millisecond)
	a := mustNew(t, cfg, Deps{FetchKeys: fetch})
	h := a.Handler(&counter{})
	status := func(k keyPair) int { return do(h, withAuth("Bearer "+k.sign(t, nil))).Code }

	if status(old) != 200 || status(rotated) != 401 {
		t.Fatal("initial key set wrong")
	}
	// The provider goes down: the last good keys stay in force.
	srv.set(nil, true)
	n := srv.fetches.Load()
	eventually(t, "failed refreshes", func() bool { return srv.fetches.Load() >= n+3 })
	if status(old) != 200 {
		t.Fatal("keys dropped when a refresh failed")
	}
	// A document without a usable key is a failed refresh too.
	srv.set([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), false)
	n = srv.fetches.Load()
	eventually(t, "refreshes", func() bool { return srv.fetches.Load() >= n+3 })
	if status(old) != 200 {
		t.Fatal("keys replaced by a document with no usable key")
	}
	// The provider rotates: the new key is picked up, the old one dropped.
	srv.set(jwks(rotated), false)
	eventually(t, "the rotated key", func() bool { return status(rotated) == 200 })
	if status(old) != 401 {
		t.Fatal("the retired key is still accepted")
	}
}

func TestJWTUnknownKidTriggersRefresh(t *testing.T) {
	old, rotated := rsaKey(t, "a"), rsaKey(t, "b")
	srv := newKeyServer(t, jwks(old))
	a := mustNew(t, jwtConfig(srv.URL), Deps{FetchKeys: fetch}) // refresh: 1h
	h := a.Handler(&counter{})
	srv.set(jwks(old, rotated), false)
	if do(h, withAuth("Bearer "+rotated.sign(t, nil))).Code != 401 {
		t.Fatal("unknown kid accepted before a refresh")
	}
	eventually(t, "refresh on unknown kid", func() bool {
		return do(h, withAuth("Bearer "+rotated.sign(t, nil))).Code == 200
	})
}

func TestJWTProviderDownAtStart(t *testing.T) {
	k := rsaKey(t, "k")
	srv := newKeyServer(t, nil)
	srv.set(nil, true)
	cfg := jwtConfig(srv.URL)
	cfg.Refresh = units.Duration(20 * time.Millisecond)
	a := mustNew(t, cfg, Deps{FetchKeys: fetch})
	h := a.Handler(&counter{})
	if do(h, withAuth("Bearer "+k.sign(t, nil))).Code != 401 {
		t.Fatal("token accepted with no keys loaded")
	}
	srv.set(jwks(k), false)
	eventually(t, "keys after the provider came back", func() bool {
		return do(h, withAuth("Bearer "+k.sign(t, nil))).Code == 200
	})
}

func TestJWTKeysFile(t *testing.T) {
	rs, es := rsaKey(t, ""), ecKey(t, "", elliptic.P384())
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "certs", "ids-public.pem")
	if err := os.WriteFile(file, append(rs.pemBytes(t), es.pemBytes(t)...), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := jwtConfig("")
	cfg.KeysURL, cfg.KeysFile = "", "certs/ids-public.pem"
	cfg.Refresh = units.Duration(20 * time.Millisecond)
	a := mustNew(t, cfg, Deps{BaseDir: dir})
	h := a.Handler(&counter{})
	for _, k := range []keyPair{rs, es} {
		if c := do(h, withAuth("Bearer "+k.sign(t, nil))).Code; c != 200 {
			t.Fatalf("%s: %d", k.method.Alg(), c)
		}
	}
	// Replacing the file rotates the keys.
	next := rsaKey(t, "")
	if err := os.WriteFile(file, next.pemBytes(t), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new key file", func() bool { return do(h, withAuth("Bearer "+next.sign(t, nil))).Code == 200 })

	if _, err := New(cfg, Deps{BaseDir: t.TempDir()}); err == nil {
		t.Fatal("missing keys_file accepted")
	}
}

func TestParseKeysRejects(t *testing.T) {
	small := func() []byte {
		k := rsaKey(t, "x")
		j := k.jwk()
		j["n"] = b64([]byte{0xc3, 0x4f, 0x01, 0x77}) // a 32-bit modulus
		return jwksDoc(j)
	}
	ec := ecKey(t, "e", elliptic.P256())
	offCurve := ec.jwk()
	offCurve["y"] = offCurve["x"]
	encKey := rsaKey(t, "enc").jwk()
	encKey["use"] = "enc"
	hsAlg := rsaKey(t, "h").jwk()
	hsAlg["alg"] = "HS256"
	tests := []struct {
		name string
		doc  []byte
	}{
		{"empty", nil},
		{"not json or pem", []byte("hello")},
		{"no keys member", []byte(`{"foo":[]}`)},
		{"symmetric key", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)},
		{"short RSA key", small()},
		{"point not on the curve", jwksDoc(offCurve)},
		{"encryption key", jwksDoc(encKey)},
		{"HS256 alg", jwksDoc(hsAlg)},
		{"P-521", []byte(`{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}`)},
		{"private PEM only", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseKeys(tt.doc); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// A single JWK (not wrapped in "keys") and a usable key next to an
	// unusable one are accepted.
	if _, err := parseKeys(jwksDoc(ec.jwk())[len(`{"keys":[`) : len(jwksDoc(ec.jwk()))-2]); err != nil {
		t.Fatalf("single JWK: %v", err)
	}
	set, err := parseKeys(jwksDoc(encKey, ec.jwk()))
	if err != nil || len(set.all) != 1 {
		t.Fatalf("mixed document: %v", err)
	}
}
