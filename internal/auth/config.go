package auth

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-proxy/rampart/internal/units"
)

// Kind names how a site or route authenticates its clients.
type Kind string

// The kinds.
const (
	KindOff    Kind = "off"            // no authentication at rampart
	KindBasic  Kind = "basic_upstream" // HTTP Basic, verified by the site's own upstream
	KindJWT    Kind = "jwt"            // Bearer JWT, verified against the identity provider's keys
	KindEither Kind = "either"         // Basic or Bearer, each verified as above
)

// Defaults of the keys that Defaults fills.
const (
	DefaultCache         = 15 * time.Minute
	DefaultMaxEntries    = 10_000
	DefaultVerifyTimeout = 10 * time.Second
	DefaultRefresh       = 5 * time.Minute
	DefaultLeeway        = 30 * time.Second
	DefaultUsernameClaim = "sub"
	DefaultMaxClients    = 10_000
)

// Bounds checked by Validate.
const (
	maxCacheTTL     = 24 * time.Hour
	maxEntriesLimit = 10_000_000
	maxLeeway       = 5 * time.Minute
	maxRecentWindow = 7 * 24 * time.Hour
	maxRefresh      = 24 * time.Hour
)

// minRefresh is the shortest key refresh interval Validate accepts. Tests
// lower it.
var minRefresh = 10 * time.Second

// Config is the auth: block of a site or of a route. A zero field means
// "not set here": Merge lets a route inherit it from its site, and Defaults
// fills what neither sets. The block may also be the bare word off
// (`auth: off`), which is Config{Kind: KindOff}.
type Config struct {
	// Kind is basic_upstream, jwt, either or off. Unset everywhere means off.
	Kind Kind `yaml:"kind"`

	// VerifyURL is the path on the site's own upstream that answers 200
	// to valid Basic credentials and 401 or 403 to others
	// (/finesse/api/UserAuth).
	VerifyURL string `yaml:"verify_url"`
	// VerifyTimeout bounds one call to VerifyURL.
	VerifyTimeout units.Duration `yaml:"verify_timeout"`
	// Cache is how long verified Basic credentials are accepted without
	// asking the upstream again.
	Cache units.Duration `yaml:"cache"`
	// MaxEntries bounds the credential cache (least recently used first out).
	MaxEntries int `yaml:"max_entries"`

	// KeysURL is where the identity provider publishes its signing keys,
	// as a JWKS document or PEM. Exactly one of KeysURL and KeysFile.
	KeysURL string `yaml:"keys_url"`
	// KeysFile is a JWKS or PEM file, relative to the config file.
	KeysFile string `yaml:"keys_file"`
	// Refresh is how often the keys are fetched (or the file re-read).
	Refresh units.Duration `yaml:"refresh"`
	// Issuer must equal the token's iss claim.
	Issuer string `yaml:"issuer"`
	// Audience: the token's aud claim must contain one of these.
	Audience Strings `yaml:"audience"`
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway units.Duration `yaml:"leeway"`
	// Cookie, when set, names a cookie that may carry the token when the
	// request has no Authorization header (for example access_token).
	Cookie string `yaml:"cookie"`
	// UsernameClaim is the claim logged as the user name (default sub).
	UsernameClaim string `yaml:"username_claim"`
	// AllowCORSPreflight lets CORS preflights (OPTIONS with Origin and
	// Access-Control-Request-Method) through without credentials, as
	// browsers never send credentials on them. Default false.
	AllowCORSPreflight *bool `yaml:"allow_cors_preflight"`

	// WebSocket says how WebSocket upgrades may authenticate besides the
	// Authorization header.
	WebSocket WebSocketConfig `yaml:"websocket"`
}

// WebSocketConfig is the websocket: block of auth.
type WebSocketConfig struct {
	// ProtocolCredentials accepts credentials carried as an entry of
	// Sec-WebSocket-Protocol (see README.md for the scheme). Default true.
	ProtocolCredentials *bool `yaml:"protocol_credentials"`
	// RecentAuthWindow, when set, lets an upgrade without credentials
	// through if the same client address authenticated within this long.
	// Default 0: off.
	RecentAuthWindow units.Duration `yaml:"recent_auth_window"`
	// MaxClients bounds the table of recently authenticated addresses.
	MaxClients int `yaml:"max_clients"`
}

// Strings is a list of strings that YAML may also write as one scalar.
type Strings []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Strings) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = Strings{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	return lineError(n, "expected a string or a list of strings")
}

// UnmarshalYAML implements yaml.Unmarshaler: it accepts the bare word off,
// and otherwise a mapping whose keys are all known (the decoder's strict
// mode does not reach into a custom unmarshaler, so it is checked here).
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if strings.TrimSpace(n.Value) == string(KindOff) {
			*c = Config{Kind: KindOff}
			return nil
		}
		return lineError(n, fmt.Sprintf("auth: expected off or a mapping such as {kind: basic_upstream, verify_url: /finesse/api/UserAuth}, not %q", n.Value))
	}
	if n.Kind != yaml.MappingNode {
		return lineError(n, "auth: expected off or a mapping")
	}
	if err := checkKeys(n, reflect.TypeFor[Config](), "auth"); err != nil {
		return err
	}
	type plain Config
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = Config(p)
	return nil
}

// checkKeys reports keys of mapping n that are not yaml tags of struct t,
// recursing into struct-valued fields.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
	}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			errs = append(errs, fmt.Sprintf("line %d: field %s not found in %s", k.Line, k.Value, path))
			continue
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && v.Kind == yaml.MappingNode && !reflect.PointerTo(ft).Implements(unmarshalerType) {
			if err := checkKeys(v, ft, path+"."+k.Value); err != nil {
				var te *yaml.TypeError
				if errors.As(err, &te) {
					errs = append(errs, te.Errors...)
				}
			}
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func lineError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}

// Defaults returns the values in effect for keys that neither the site nor
// the route sets. Kind stays unset, which means off.
func Defaults() Config {
	on := true
	return Config{
		VerifyTimeout: units.Duration(DefaultVerifyTimeout),
		Cache:         units.Duration(DefaultCache),
		MaxEntries:    DefaultMaxEntries,
		Refresh:       units.Duration(DefaultRefresh),
		Leeway:        units.Duration(DefaultLeeway),
		UsernameClaim: DefaultUsernameClaim,
		WebSocket: WebSocketConfig{
			ProtocolCredentials: &on,
			MaxClients:          DefaultMaxClients,
		},
	}
}

// Merge returns c with every field that override sets replacing c's. The
// usual use is Defaults().Merge(site).Merge(route). A route that says
// `auth: off` switches authentication off whatever the site says.
func (c Config) Merge(override *Config) Config {
	if override == nil {
		return c
	}
	o := override
	if o.Kind != "" {
		c.Kind = o.Kind
	}
	setS := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setD := func(dst *units.Duration, v units.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	setS(&c.VerifyURL, o.VerifyURL)
	setD(&c.VerifyTimeout, o.VerifyTimeout)
	setD(&c.Cache, o.Cache)
	if o.MaxEntries != 0 {
		c.MaxEntries = o.MaxEntries
	}
	// The two key sources exclude each other: a route naming one replaces
	// whichever the site named.
	if o.KeysURL != "" || o.KeysFile != "" {
		c.KeysURL, c.KeysFile = o.KeysURL, o.KeysFile
	}
	setD(&c.Refresh, o.Refresh)
	setS(&c.Issuer, o.Issuer)
	if o.Audience != nil {
		c.Audience = slices.Clone(o.Audience)
	}
	setD(&c.Leeway, o.Leeway)
	setS(&c.Cookie, o.Cookie)
	setS(&c.UsernameClaim, o.UsernameClaim)
	if o.AllowCORSPreflight != nil {
		v := *o.AllowCORSPreflight
		c.AllowCORSPreflight = &v
	}
	if o.WebSocket.ProtocolCredentials != nil {
		v := *o.WebSocket.ProtocolCredentials
		c.WebSocket.ProtocolCredentials = &v
	}
	setD(&c.WebSocket.RecentAuthWindow, o.WebSocket.RecentAuthWindow)
	if o.WebSocket.MaxClients != 0 {
		c.WebSocket.MaxClients = o.WebSocket.MaxClients
	}
	return c
}

// Enabled reports whether c authenticates anything.
func (c Config) Enabled() bool { return c.Kind != "" && c.Kind != KindOff }

func (c Config) usesBasic() bool { return c.Kind == KindBasic || c.Kind == KindEither }
func (c Config) usesJWT() bool   { return c.Kind == KindJWT || c.Kind == KindEither }

// Validate checks the fields that are set, as written in one block (a
// site's or a route's); unset fields are valid because Merge and Defaults
// fill them. Use ValidateEffective on the merged result.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("auth."+format, a...)) }
	switch c.Kind {
	case "", KindOff, KindBasic, KindJWT, KindEither:
	default:
		bad("kind: %q must be basic_upstream, jwt, either or off", c.Kind)
	}
	if c.VerifyURL != "" {
		if err := validPath(c.VerifyURL); err != nil {
			bad("verify_url: %v", err)
		}
	}
	if d := c.VerifyTimeout.D(); d < 0 || d > time.Minute {
		bad("verify_timeout: %v is out of range (0, 1m]", d)
	}
	if d := c.Cache.D(); d < 0 || d > maxCacheTTL {
		bad("cache: %v is out of range (0, 24h]", d)
	}
	if c.MaxEntries < 0 || c.MaxEntries > maxEntriesLimit {
		bad("max_entries: %d is out of range 1..%d", c.MaxEntries, maxEntriesLimit)
	}
	if c.KeysURL != "" && c.KeysFile != "" {
		bad("keys_url and keys_file: set one, not both")
	}
	if c.KeysURL != "" {
		if u, err := url.Parse(c.KeysURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			bad("keys_url: %q is not an http(s) URL such as https://ids.internal:8553/ids/v1/keys", c.KeysURL)
		}
	}
	if c.KeysFile != "" && strings.ContainsRune(c.KeysFile, 0) {
		bad("keys_file: invalid path")
	}
	if d := c.Refresh.D(); d != 0 && (d < minRefresh || d > maxRefresh) {
		bad("refresh: %v is out of range [%v, 24h]", d, minRefresh)
	}
	if c.Issuer != "" && strings.TrimSpace(c.Issuer) != c.Issuer {
		bad("issuer: %q has leading or trailing space", c.Issuer)
	}
	for _, a := range c.Audience {
		if a == "" || strings.TrimSpace(a) != a {
			bad("audience: %q is empty or has leading or trailing space", a)
		}
	}
	if c.Audience != nil && len(c.Audience) == 0 {
		bad("audience: the list is empty")
	}
	if d := c.Leeway.D(); d < 0 || d > maxLeeway {
		bad("leeway: %v is out of range [0, 5m]", d)
	}
	if c.Cookie != "" && !validToken(c.Cookie) {
		bad("cookie: %q is not a cookie name", c.Cookie)
	}
	if c.UsernameClaim != "" && !validToken(c.UsernameClaim) {
		bad("username_claim: %q is not a claim name", c.UsernameClaim)
	}
	if d := c.WebSocket.RecentAuthWindow.D(); d < 0 || d > maxRecentWindow {
		bad("websocket.recent_auth_window: %v is out of range [0, 168h]", d)
	}
	if c.WebSocket.MaxClients < 0 || c.WebSocket.MaxClients > maxEntriesLimit {
		bad("websocket.max_clients: %d is out of range 1..%d", c.WebSocket.MaxClients, maxEntriesLimit)
	}
	return errors.Join(errs...)
}

// ValidateEffective checks a merged config (Defaults().Merge(site).Merge(route))
// as New will use it: besides Validate's checks, that each kind has what it
// needs.
func (c Config) ValidateEffective() error {
	errs := []error{c.Validate()}
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("auth."+format, a...)) }
	if !c.Enabled() {
		return errors.Join(errs...)
	}
	if c.usesBasic() {
		if c.VerifyURL == "" {
			bad("verify_url: required with kind %s (for Cisco Finesse: /finesse/api/UserAuth)", c.Kind)
		}
		if c.Cache <= 0 {
			bad("cache: required with kind %s", c.Kind)
		}
		if c.MaxEntries <= 0 {
			bad("max_entries: required with kind %s", c.Kind)
		}
		if c.VerifyTimeout <= 0 {
			bad("verify_timeout: required with kind %s", c.Kind)
		}
	}
	if c.usesJWT() {
		if c.KeysURL == "" && c.KeysFile == "" {
			bad("keys_url or keys_file: required with kind %s", c.Kind)
		}
		if c.Issuer == "" {
			bad("issuer: required with kind %s: tokens of any other issuer must be refused", c.Kind)
		}
		if len(c.Audience) == 0 {
			bad("audience: required with kind %s: tokens minted for another service must be refused", c.Kind)
		}
		if c.Refresh <= 0 {
			bad("refresh: required with kind %s", c.Kind)
		}
		if c.UsernameClaim == "" {
			bad("username_claim: required with kind %s", c.Kind)
		}
	}
	if c.WebSocket.RecentAuthWindow > 0 && c.WebSocket.MaxClients <= 0 {
		bad("websocket.max_clients: required with recent_auth_window")
	}
	return errors.Join(errs...)
}

// keysPath resolves KeysFile against base.
func (c Config) keysPath(base string) string {
	if c.KeysFile == "" || filepath.IsAbs(c.KeysFile) {
		return c.KeysFile
	}
	return filepath.Join(base, c.KeysFile)
}

func (c Config) allowPreflight() bool {
	return c.AllowCORSPreflight != nil && *c.AllowCORSPreflight
}

func (c Config) protocolCredentials() bool {
	return c.WebSocket.ProtocolCredentials == nil || *c.WebSocket.ProtocolCredentials
}

// fingerprint identifies an effective config, for Set.
func (c Config) fingerprint() string {
	return fmt.Sprintf("%s|%s|%s|%s|%d|%s|%s|%s|%s|%q|%s|%s|%s|%t|%t|%s|%d",
		c.Kind, c.VerifyURL, c.VerifyTimeout, c.Cache, c.MaxEntries,
		c.KeysURL, c.KeysFile, c.Refresh, c.Issuer, []string(c.Audience), c.Leeway,
		c.Cookie, c.UsernameClaim, c.allowPreflight(), c.protocolCredentials(), c.WebSocket.RecentAuthWindow, c.WebSocket.MaxClients)
}

// validPath accepts an absolute path with an optional query, without
// scheme, host, fragment or characters that need escaping.
func validPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return fmt.Errorf("%q must be a path on the site's upstream starting with /", p)
	}
	for _, r := range p {
		if r <= ' ' || r >= 0x7f || r == '#' || r == '\\' {
			return fmt.Errorf("%q: only printable ASCII without spaces, # or \\", p)
		}
	}
	u, err := url.ParseRequestURI(p)
	if err != nil || u.Host != "" {
		return fmt.Errorf("%q is not a request path", p)
	}
	return nil
}

// validToken reports whether s is an RFC 9110 token (cookie and claim names).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
