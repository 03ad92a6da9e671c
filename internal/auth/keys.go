package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// acceptedAlgs are the only signature algorithms a token may use. Listing
// them (jwt.WithValidMethods) is what refuses "alg: none" and the HS256
// key-confusion attack, where a token is MACed with the public key as the
// secret: such a token never reaches signature checking.
var acceptedAlgs = []string{"RS256", "RS384", "ES256", "ES384"}

const (
	maxKeysDocument = 1 << 20 // bytes of one JWKS or PEM document
	maxKeys         = 64      // keys kept from one document
	minRSABits      = 2048
	initialFetch    = 5 * time.Second // bound of the fetch done by New
	retryInterval   = 30 * time.Second
)

// minKick is the shortest time between two fetches triggered by tokens
// naming an unknown key id. Tests lower it.
var minKick = 30 * time.Second

// verifyKey is one public key with the algorithm its JWK restricts it to.
type verifyKey struct {
	kid string
	alg string // "" when the document does not say
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

// fits reports whether k may verify a token signed with alg.
func (k verifyKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		return alg == "RS256" || alg == "RS384"
	case *ecdsa.PublicKey:
		return (alg == "ES256" && key.Curve == elliptic.P256()) || (alg == "ES384" && key.Curve == elliptic.P384())
	}
	return false
}

// keySet is one parsed key document.
type keySet struct {
	byKID map[string]verifyKey
	all   []verifyKey
}

// parseKeys reads a JWKS document ({"keys": [...]}), a single JWK, or PEM
// blocks (PUBLIC KEY, RSA PUBLIC KEY, CERTIFICATE). Keys that cannot be
// used for RS256/RS384/ES256/ES384 are skipped; a document with no usable
// key is an error.
func parseKeys(data []byte) (*keySet, error) {
	if len(data) > maxKeysDocument {
		return nil, fmt.Errorf("key document of %d bytes is larger than %d", len(data), maxKeysDocument)
	}
	data = bytes.TrimSpace(data)
	var keys []verifyKey
	var skipped []string
	switch {
	case bytes.HasPrefix(data, []byte("{")):
		var doc struct {
			Keys []json.RawMessage `json:"keys"`
			Kty  string            `json:"kty"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("JWKS: %v", err)
		}
		raws := doc.Keys
		if raws == nil && doc.Kty != "" {
			raws = []json.RawMessage{data}
		}
		if raws == nil {
			return nil, errors.New(`JWKS: no "keys" member`)
		}
		for i, raw := range raws {
			k, err := parseJWK(raw)
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
				continue
			}
			keys = append(keys, k)
		}
	case bytes.Contains(data, []byte("-----BEGIN")):
		rest := data
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			k, err := parsePEMBlock(b)
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("PEM %s: %v", b.Type, err))
				continue
			}
			keys = append(keys, k)
		}
	default:
		return nil, errors.New("neither a JWKS document nor PEM")
	}
	if len(keys) == 0 {
		msg := "no usable RSA (2048 bits or more) or EC P-256/P-384 signing key"
		if len(skipped) > 0 {
			msg += ": " + strings.Join(skipped, "; ")
		}
		return nil, errors.New(msg)
	}
	if len(keys) > maxKeys {
		keys = keys[:maxKeys]
	}
	set := &keySet{byKID: map[string]verifyKey{}, all: keys}
	for _, k := range keys {
		if k.kid == "" {
			continue
		}
		if _, dup := set.byKID[k.kid]; !dup {
			set.byKID[k.kid] = k
		}
	}
	return set, nil
}

// jwk is the part of RFC 7517/7518 that describes RSA and EC public keys.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func parseJWK(raw []byte) (verifyKey, error) {
	var j jwk
	if err := json.Unmarshal(raw, &j); err != nil {
		return verifyKey{}, err
	}
	if j.Use != "" && j.Use != "sig" {
		return verifyKey{}, fmt.Errorf("use %q is not sig", j.Use)
	}
	if j.Alg != "" && !accepted(j.Alg) {
		return verifyKey{}, fmt.Errorf("alg %q is not one of %s", j.Alg, strings.Join(acceptedAlgs, ", "))
	}
	k := verifyKey{kid: j.Kid, alg: j.Alg}
	switch j.Kty {
	case "RSA":
		n, err := b64int(j.N)
		if err != nil {
			return k, fmt.Errorf("n: %v", err)
		}
		e, err := b64int(j.E)
		if err != nil {
			return k, fmt.Errorf("e: %v", err)
		}
		pub := &rsa.PublicKey{N: n}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return k, errors.New("e is not a usable RSA exponent")
		}
		pub.E = int(e.Int64())
		if err := checkRSA(pub); err != nil {
			return k, err
		}
		k.key = pub
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return k, fmt.Errorf("crv %q is not P-256 or P-384", j.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err := b64bytes(j.X)
		if err != nil || len(x) != size {
			return k, errors.New("x is not a coordinate of the curve's size")
		}
		y, err := b64bytes(j.Y)
		if err != nil || len(y) != size {
			return k, errors.New("y is not a coordinate of the curve's size")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return k, fmt.Errorf("not a point of %s: %v", j.Crv, err)
		}
		k.key = pub
	default:
		return k, fmt.Errorf("kty %q is not RSA or EC", j.Kty)
	}
	if !k.fits(k.alg) && k.alg != "" {
		return k, fmt.Errorf("alg %s does not fit the key", k.alg)
	}
	return k, nil
}

func parsePEMBlock(b *pem.Block) (verifyKey, error) {
	var pub any
	var err error
	switch b.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(b.Bytes); err == nil {
			pub = c.PublicKey
		}
	default:
		return verifyKey{}, errors.New("not a public key or certificate")
	}
	if err != nil {
		return verifyKey{}, err
	}
	switch key := pub.(type) {
	case *rsa.PublicKey:
		if err := checkRSA(key); err != nil {
			return verifyKey{}, err
		}
	case *ecdsa.PublicKey:
		if key.Curve != elliptic.P256() && key.Curve != elliptic.P384() {
			return verifyKey{}, errors.New("EC key is not on P-256 or P-384")
		}
	default:
		return verifyKey{}, fmt.Errorf("%T is not an RSA or EC key", pub)
	}
	return verifyKey{key: pub}, nil
}

func checkRSA(k *rsa.PublicKey) error {
	if k.N == nil || k.N.BitLen() < minRSABits {
		return fmt.Errorf("RSA key shorter than %d bits", minRSABits)
	}
	return nil
}

func accepted(alg string) bool {
	for _, a := range acceptedAlgs {
		if a == alg {
			return true
		}
	}
	return false
}

func b64bytes(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, errors.New("missing")
	}
	return base64.RawURLEncoding.DecodeString(s)
}

func b64int(s string) (*big.Int, error) {
	b, err := b64bytes(s)
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b), nil
}

// keyStore holds the key set in effect and refreshes it in the background.
// A failed fetch keeps the last good set.
type keyStore struct {
	source  string // URL or file, for logs
	fetch   func(ctx context.Context) ([]byte, error)
	refresh time.Duration

	cur       atomic.Pointer[keySet]
	lastFetch atomic.Int64 // unix nanoseconds of the last attempt
	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newKeyStore(source string, refresh time.Duration, fetch func(ctx context.Context) ([]byte, error)) *keyStore {
	return &keyStore{
		source: source, fetch: fetch, refresh: refresh,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// load fetches and parses the keys once; on success they take effect.
func (ks *keyStore) load(ctx context.Context) error {
	ks.lastFetch.Store(time.Now().UnixNano())
	data, err := ks.fetch(ctx)
	if err == nil {
		var set *keySet
		if set, err = parseKeys(data); err == nil {
			ks.cur.Store(set)
			keysTotal.WithLabelValues("ok").Inc()
			return nil
		}
	}
	keysTotal.WithLabelValues("error").Inc()
	kept := 0
	if set := ks.cur.Load(); set != nil {
		kept = len(set.all)
	}
	observe.Default().Event(slog.LevelError, "auth: signing keys not refreshed",
		slog.String("source", ks.source), slog.String("error", err.Error()), slog.Int("keys_kept", kept))
	return err
}

// start runs the refresh loop until close.
func (ks *keyStore) start() {
	go func() {
		defer close(ks.done)
		for {
			wait := ks.refresh
			if ks.cur.Load() == nil && retryInterval < wait {
				wait = retryInterval // nothing loaded yet: try again sooner
			}
			t := time.NewTimer(wait)
			select {
			case <-ks.stop:
				t.Stop()
				return
			case <-t.C:
			case <-ks.kick:
				t.Stop()
			}
			ctx, cancel := context.WithTimeout(context.Background(), initialFetch)
			_ = ks.load(ctx)
			cancel()
		}
	}()
}

// requestRefresh asks the loop for an early fetch, as when a token names a
// key id that is not known (the provider may have rotated its keys), at
// most once per minKick.
func (ks *keyStore) requestRefresh() {
	if time.Since(time.Unix(0, ks.lastFetch.Load())) < minKick {
		return
	}
	select {
	case ks.kick <- struct{}{}:
	default:
	}
}

func (ks *keyStore) close() {
	ks.closeOnce.Do(func() { close(ks.stop) })
	<-ks.done
}

// keyfunc selects the verification key for t: the key with the token's
// kid, or when the token has none (or the document names none), every key
// that fits the token's algorithm.
func (ks *keyStore) keyfunc(t *jwt.Token) (any, error) {
	set := ks.cur.Load()
	if set == nil {
		return nil, errors.New("no signing keys loaded")
	}
	alg := t.Method.Alg()
	var kid string
	if v, ok := t.Header["kid"]; ok {
		s, isString := v.(string)
		if !isString {
			return nil, errors.New("kid is not a string")
		}
		kid = s
	}
	if kid != "" && len(set.byKID) > 0 {
		k, ok := set.byKID[kid]
		if !ok {
			ks.requestRefresh()
			return nil, fmt.Errorf("unknown key id %q", observe.Clip(kid, 64))
		}
		if !k.fits(alg) {
			return nil, fmt.Errorf("key %q does not fit alg %s", observe.Clip(kid, 64), alg)
		}
		return k.key, nil
	}
	var keys []jwt.VerificationKey
	for _, k := range set.all {
		if k.fits(alg) {
			keys = append(keys, k.key)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key fits alg %s", alg)
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}
