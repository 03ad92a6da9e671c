// Package auth is the edge-authentication stage: it sits between the rate
// limit and the WAF and refuses, with 401, every request to a protected
// route that does not carry valid credentials, so that anonymous traffic
// never reaches an internal server.
//
// Three kinds of credentials are understood:
//
//   - basic_upstream: HTTP Basic credentials, checked by calling a path on
//     the site's own upstream (for Cisco Finesse, /finesse/api/UserAuth) with
//     them. A success is cached per user name as an HMAC of the password
//     under a per-process random key, never the password, for `cache`; a
//     burst of requests with the same new credentials makes one upstream
//     call.
//   - jwt: a Bearer token (or a configured cookie) signed by the identity
//     provider (Cisco IdS), checked against its published keys (JWKS or
//     PEM), which are refreshed in the background. Only RS256, RS384, ES256
//     and ES384 are accepted; issuer, audience and expiry are required.
//   - either: Basic or Bearer, each checked as above.
//
// WebSocket upgrades may also carry the credentials in Sec-WebSocket-Protocol
// (see ProtocolBearerPrefix), or be let through when the same client address
// authenticated recently (recent_auth_window).
//
// The keys and their semantics are documented in README.md.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// Stage is the stage name of auth refusals in logs and metrics.
const Stage = "auth"

// Refusal reasons (rampart_refusals_total{stage="auth",reason}).
const (
	ReasonMissing     = "missing-credentials"
	ReasonMalformed   = "malformed-credentials"
	ReasonBadBasic    = "bad-credentials"
	ReasonBadToken    = "invalid-token"
	ReasonUnavailable = "verify-unavailable"
)

const (
	maxTokenLen    = 16 << 10 // a longer bearer token is malformed
	maxUsernameLen = 256      // longer user names are cut in logs
	realm          = `realm="rampart"`
)

// Deps are what the stage needs from the rest of the proxy.
type Deps struct {
	// Verify sends a GET to verify_url through the site's upstream pool
	// with authHeader as the Authorization header, and returns the status.
	// Required for basic_upstream and either.
	Verify func(ctx context.Context, authHeader string) (status int, err error)
	// FetchKeys fetches keys_url through the egress dialer. Required for
	// jwt and either with keys_url.
	FetchKeys func(ctx context.Context, url string) ([]byte, error)
	// OnFailure is called for each request refused for wrong credentials
	// (upstream 401/403, an invalid token, malformed credentials), with the
	// user name when one is known, so that failures count towards
	// brute-force bans. Missing credentials are not a failure. Optional.
	OnFailure func(r *http.Request, username string)
	// BaseDir resolves a relative keys_file (the config file's directory).
	BaseDir string
}

// Authenticator enforces one effective auth config. It is safe for
// concurrent use; Close stops its background key refresh.
type Authenticator struct {
	cfg  Config
	deps Deps
	now  func() time.Time

	macKey  [32]byte
	creds   *lru[string, credEntry]
	flights singleflight.Group

	keys   *keyStore
	parser *jwt.Parser

	recent *lru[string, recentEntry]

	closeOnce sync.Once
}

// credEntry is a verified Basic credential: never the password, only its
// keyed hash, and when the upstream last confirmed it.
type credEntry struct {
	mac [sha256.Size]byte
	at  time.Time
}

// New returns the authenticator for cfg, an effective config (see
// Config.Merge). With keys_file the keys are read now and an unreadable
// file is an error; with keys_url they are fetched now, and a failed fetch
// is logged and retried in the background (tokens are refused until keys
// are loaded). Callers must Close the authenticator when it is replaced.
func New(cfg Config, deps Deps) (*Authenticator, error) {
	cfg = Defaults().Merge(&cfg)
	if err := cfg.ValidateEffective(); err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg, deps: deps, now: time.Now}
	if !cfg.Enabled() {
		return a, nil
	}
	if cfg.usesBasic() {
		if deps.Verify == nil {
			return nil, fmt.Errorf("auth: kind %s needs a verifier", cfg.Kind)
		}
		if _, err := rand.Read(a.macKey[:]); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		a.creds = newLRU[string, credEntry](cfg.MaxEntries)
	}
	if cfg.usesJWT() {
		if err := a.startKeys(); err != nil {
			return nil, err
		}
		a.parser = jwt.NewParser(
			jwt.WithValidMethods(acceptedAlgs),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience...),
			jwt.WithLeeway(cfg.Leeway.D()),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(func() time.Time { return a.now() }),
		)
	}
	if cfg.WebSocket.RecentAuthWindow > 0 {
		a.recent = newLRU[string, recentEntry](cfg.WebSocket.MaxClients)
	}
	return a, nil
}

func (a *Authenticator) startKeys() error {
	cfg := a.cfg
	var ks *keyStore
	if cfg.KeysFile != "" {
		path := cfg.keysPath(a.deps.BaseDir)
		ks = newKeyStore(path, cfg.Refresh.D(), func(context.Context) ([]byte, error) {
			return readLimited(path)
		})
		data, err := readLimited(path)
		if err != nil {
			return fmt.Errorf("auth.keys_file: %w", err)
		}
		set, err := parseKeys(data)
		if err != nil {
			return fmt.Errorf("auth.keys_file %s: %w", path, err)
		}
		ks.cur.Store(set)
		ks.lastFetch.Store(time.Now().UnixNano())
	} else {
		if a.deps.FetchKeys == nil {
			return fmt.Errorf("auth: keys_url needs a fetcher")
		}
		url, fetch := cfg.KeysURL, a.deps.FetchKeys
		ks = newKeyStore(url, cfg.Refresh.D(), func(ctx context.Context) ([]byte, error) { return fetch(ctx, url) })
		ctx, cancel := context.WithTimeout(context.Background(), initialFetch)
		_ = ks.load(ctx) // logged; retried by the loop
		cancel()
	}
	a.keys = ks
	ks.start()
	return nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeysDocument+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeysDocument {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxKeysDocument)
	}
	return data, nil
}

// Config returns the effective config in force.
func (a *Authenticator) Config() Config { return a.cfg }

// Close stops the background key refresh. It may be called more than once.
func (a *Authenticator) Close() {
	a.closeOnce.Do(func() {
		if a.keys != nil {
			a.keys.close()
		}
	})
}

// credKind is what kind of credentials a request presented.
type credKind int

const (
	credNone credKind = iota
	credBasic
	credBearer
	credMalformed
)

type credential struct {
	kind         credKind
	user, pass   string // Basic
	token        string // Bearer
	fromProtocol bool   // taken from Sec-WebSocket-Protocol
}

// Handler authenticates each request before passing it to next. With auth
// off it returns next itself.
func (a *Authenticator) Handler(next http.Handler) http.Handler {
	if !a.cfg.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upgrade := isWebSocketUpgrade(r)
		// Credential entries never travel upstream, whatever the outcome.
		pc := takeProtocolCredentials(r.Header)
		cred := a.extract(r)
		if cred.kind == credNone && upgrade && a.cfg.protocolCredentials() && pc.found {
			switch {
			case pc.malformed:
				cred = credential{kind: credMalformed}
			case pc.cred.kind == credBasic && a.cfg.usesBasic(), pc.cred.kind == credBearer && a.cfg.usesJWT():
				cred = pc.cred
			}
		}
		info := reqinfo.Of(r)
		switch cred.kind {
		case credNone:
			if a.cfg.allowPreflight() && isPreflight(r) {
				countNonePreflight.Inc()
				next.ServeHTTP(w, r)
				return
			}
			if upgrade && a.recentlyAuthenticated(r, info) {
				countRecentPass.Inc()
				next.ServeHTTP(w, r)
				return
			}
			countNoneMissing.Inc()
			reqinfo.Of(r).NoCredentials = true
			a.refuse(w, r, ReasonMissing, a.challenges(false))
			return
		case credMalformed:
			countNoneMalformed.Inc()
			a.failed(r, "")
			a.refuse(w, r, ReasonMalformed, a.challenges(true))
			return
		case credBasic:
			info.Username = clipUser(cred.user)
			if !a.basic(w, r, cred) {
				return
			}
		case credBearer:
			user, err := a.checkToken(cred.token)
			if err != nil {
				countBearerRejected.Inc()
				a.failed(r, "")
				a.refuse(w, r, ReasonBadToken, []string{`Bearer error="invalid_token"`}, slog.String("error", observe.Clip(err.Error(), 200)))
				return
			}
			countBearerPass.Inc()
			info.Username = user
		}
		if cred.fromProtocol && r.Header.Get("Authorization") == "" {
			if cred.kind == credBasic {
				r.Header.Set("Authorization", basicHeader(cred.user, cred.pass))
			} else {
				r.Header.Set("Authorization", "Bearer "+cred.token)
			}
		}
		a.remember(r, info.Username)
		next.ServeHTTP(w, r)
	})
}

// isPreflight reports whether r is a CORS preflight.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// extract reads the credentials of the Authorization header, or of the
// token cookie. A scheme the kind does not accept counts as no credentials.
func (a *Authenticator) extract(r *http.Request) credential {
	vals := r.Header.Values("Authorization")
	if len(vals) > 1 {
		return credential{kind: credMalformed}
	}
	if len(vals) == 1 {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
		rest = strings.TrimSpace(rest)
		switch {
		case strings.EqualFold(scheme, "Basic") && a.cfg.usesBasic():
			raw, err := base64.StdEncoding.DecodeString(rest)
			if err != nil {
				return credential{kind: credMalformed}
			}
			user, pass, ok := splitBasic(string(raw))
			if !ok {
				return credential{kind: credMalformed}
			}
			return credential{kind: credBasic, user: user, pass: pass}
		case strings.EqualFold(scheme, "Bearer") && a.cfg.usesJWT():
			if rest == "" || len(rest) > maxTokenLen || strings.ContainsAny(rest, " \t") {
				return credential{kind: credMalformed}
			}
			return credential{kind: credBearer, token: rest}
		}
		return credential{}
	}
	if a.cfg.Cookie != "" && a.cfg.usesJWT() {
		if c, err := r.Cookie(a.cfg.Cookie); err == nil && c.Value != "" {
			if len(c.Value) > maxTokenLen {
				return credential{kind: credMalformed}
			}
			return credential{kind: credBearer, token: c.Value}
		}
	}
	return credential{}
}

// splitBasic splits "user:password". The user name must be non-empty valid
// UTF-8 without control characters; the password may be anything but
// control characters.
func splitBasic(raw string) (user, pass string, ok bool) {
	user, pass, ok = strings.Cut(raw, ":")
	if !ok || user == "" || !utf8.ValidString(raw) {
		return "", "", false
	}
	if strings.IndexFunc(raw, unicode.IsControl) >= 0 {
		return "", "", false
	}
	return user, pass, true
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// mac is the keyed hash of one user's password that the cache keeps.
func (a *Authenticator) mac(user, pass string) [sha256.Size]byte {
	h := hmac.New(sha256.New, a.macKey[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	h.Write(n[:])
	h.Write([]byte(user))
	h.Write([]byte(pass))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// basic checks Basic credentials against the cache, then the upstream.
// It answers the request itself and returns false when it refuses.
func (a *Authenticator) basic(w http.ResponseWriter, r *http.Request, cred credential) bool {
	sum := a.mac(cred.user, cred.pass)
	if e, ok := a.creds.get(cred.user); ok && hmac.Equal(e.mac[:], sum[:]) && a.now().Sub(e.at) < a.cfg.Cache.D() {
		countBasicCached.Inc()
		return true
	}
	ctx := r.Context()
	ch := a.flights.DoChan(cred.user+"\x00"+string(sum[:]), func() (any, error) {
		return a.verify(ctx, cred, sum)
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		// The client went away (or the request's deadline passed) while
		// the upstream was being asked; the flight goes on for the others.
		observe.WriteError(w, r, http.StatusServiceUnavailable)
		return false
	}
	status, _ := res.Val.(int)
	switch {
	case res.Err != nil:
		countBasicUnavailable.Inc()
		observe.Refuse(w, r, http.StatusServiceUnavailable, Stage, ReasonUnavailable, slog.String("error", observe.Clip(res.Err.Error(), 200)))
		return false
	case status >= 200 && status < 300:
		countBasicPass.Inc()
		return true
	default: // 401, 403
		countBasicRejected.Inc()
		a.failed(r, cred.user)
		a.refuse(w, r, ReasonBadBasic, []string{"Basic " + realm}, slog.Int("upstream_status", status))
		return false
	}
}

// verify asks the upstream once, for every request waiting on the same
// credentials, and updates the cache. The call is not tied to the client
// that happened to start it: others may be waiting on its answer.
func (a *Authenticator) verify(ctx context.Context, cred credential, sum [sha256.Size]byte) (int, error) {
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.VerifyTimeout.D())
	defer cancel()
	status, err := a.deps.Verify(vctx, basicHeader(cred.user, cred.pass))
	switch {
	case err != nil:
		verifyError.Inc()
		return 0, err
	case status >= 200 && status < 300:
		verifyOk.Inc()
		a.creds.put(cred.user, credEntry{mac: sum, at: a.now()})
		return status, nil
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		verifyRejected.Inc()
		// Whatever was cached for this user goes: the account may have
		// been locked or its password changed.
		a.creds.remove(cred.user)
		return status, nil
	default:
		verifyError.Inc()
		return 0, fmt.Errorf("verify_url answered %d", status)
	}
}

// checkToken verifies a JWT and returns the user name it names.
func (a *Authenticator) checkToken(token string) (string, error) {
	claims := jwt.MapClaims{}
	if _, err := a.parser.ParseWithClaims(token, claims, a.keys.keyfunc); err != nil {
		return "", err
	}
	user, _ := claims[a.cfg.UsernameClaim].(string)
	return clipUser(user), nil
}

// remember records a successful authentication of the client address, for
// recent_auth_window.
func (a *Authenticator) remember(r *http.Request, user string) {
	if a.recent == nil {
		return
	}
	if c := clientOf(r); c.IsValid() {
		a.recent.put(c.String(), recentEntry{at: a.now(), user: user})
	}
}

func (a *Authenticator) recentlyAuthenticated(r *http.Request, info *reqinfo.Info) bool {
	if a.recent == nil {
		return false
	}
	c := clientOf(r)
	if !c.IsValid() {
		return false
	}
	e, ok := a.recent.get(c.String())
	if !ok || a.now().Sub(e.at) >= a.cfg.WebSocket.RecentAuthWindow.D() {
		return false
	}
	info.Username = e.user
	return true
}

// challenges returns the WWW-Authenticate values of a refusal for missing
// (invalid=false) or malformed credentials.
func (a *Authenticator) challenges(invalid bool) []string {
	var out []string
	if a.cfg.usesBasic() {
		out = append(out, "Basic "+realm)
	}
	if a.cfg.usesJWT() {
		if invalid {
			out = append(out, `Bearer error="invalid_token"`)
		} else {
			out = append(out, "Bearer "+realm)
		}
	}
	return out
}

func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, reason string, challenges []string, attrs ...slog.Attr) {
	if r.Header.Get("X-Requested-With") == "XMLHttpRequest" {
		// A script asking on its own behalf handles the 401 itself; a Basic
		// challenge would make the browser pop up its own login dialog
		// over the application's.
		challenges = nil
	}
	for _, c := range challenges {
		w.Header().Add("WWW-Authenticate", c)
	}
	observe.Refuse(w, r, http.StatusUnauthorized, Stage, reason, attrs...)
}

func (a *Authenticator) failed(r *http.Request, user string) {
	if a.deps.OnFailure != nil {
		a.deps.OnFailure(r, user)
	}
}

func clipUser(s string) string { return observe.Clip(s, maxUsernameLen) }

// Set shares authenticators between the routes of a site whose effective
// configs are equal, so that they share one credential cache and one key
// refresh loop. It belongs to one config load: Close it when the load is
// replaced.
type Set struct {
	mu sync.Mutex
	m  map[string]*Authenticator
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{m: map[string]*Authenticator{}} }

// Get returns the authenticator of site for the effective config cfg,
// creating it with deps on first use.
func (s *Set) Get(site string, cfg Config, deps Deps) (*Authenticator, error) {
	cfg = Defaults().Merge(&cfg)
	key := site + "\x00" + cfg.fingerprint()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.m[key]; ok {
		return a, nil
	}
	a, err := New(cfg, deps)
	if err != nil {
		return nil, err
	}
	s.m[key] = a
	return a, nil
}

// Close closes every authenticator of the set.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, a := range s.m {
		a.Close()
		delete(s.m, k)
	}
}
