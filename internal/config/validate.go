package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/units"
	"github.com/rampart-proxy/rampart/internal/waf"
)

// Secure defaults. A config that names only a host, a certificate and an
// upstream gets all of them.
const (
	DefaultListen       = "127.0.0.1:8443"
	DefaultAdmin        = "127.0.0.1:9901"
	DefaultHSTS         = "max-age=31536000; includeSubDomains"
	DefaultFrameOptions = "SAMEORIGIN"
	DefaultReferrer     = "strict-origin-when-cross-origin"
)

func strp(s string) *string { return &s }

func (c *Config) applyDefaults() {
	c.applyStageDefaults()
	if c.Listen == "" && len(c.Listeners) == 0 {
		c.Listen = DefaultListen
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdmin
	}
	if len(c.TLS.Versions) == 0 {
		c.TLS.Versions = []string{"1.2", "1.3"}
	}
	if c.TLS.ClientAuth == "" {
		c.TLS.ClientAuth = "none"
	}
	setDur(&c.TLS.HandshakeTimeout, 10*time.Second)
	l := &c.Limits
	setSize(&l.MaxHeaderBytes, 8<<10)
	setSize(&l.MaxURILength, 4<<10)
	setSize(&l.MaxBody, 15<<20)
	setDur(&l.ReadHeaderTimeout, 10*time.Second)
	setDur(&l.IdleTimeout, 20*time.Second)
	setDur(&l.BodyReadTimeout, 10*time.Second)
	setDur(&l.SendTimeout, 10*time.Second)
	setSize(&l.BodyBufferTotal, waf.DefaultBufferBudget)
	setDur(&l.DrainTimeout, 15*time.Second)
	if c.Log.Access == "" {
		c.Log.Access = "stdout"
	}
	if c.Log.Security == "" {
		c.Log.Security = "stderr"
	}
	for i := range c.Sites {
		s := &c.Sites[i]
		s.Host = strings.ToLower(strings.TrimSuffix(s.Host, "."))
		for j := range s.Aliases {
			s.Aliases[j] = strings.ToLower(strings.TrimSuffix(s.Aliases[j], "."))
		}
		if s.DenyStatus == 0 {
			s.DenyStatus = http.StatusNotFound
		}
		setSize(&s.MaxBody, int64(l.MaxBody))
		u := &s.Upstream
		setDur(&u.ConnectTimeout, 5*time.Second)
		setDur(&u.ResponseHeaderTimeout, 60*time.Second)
		setDur(&u.ReadTimeout, 60*time.Second)
		setDur(&u.SendTimeout, 60*time.Second)
		setDur(&u.FailTimeout, 10*time.Second)
		if u.Keepalive == 0 {
			u.Keepalive = 128
		}
		h := &s.Headers
		if h.HSTS == nil {
			h.HSTS = strp(DefaultHSTS)
		}
		if h.FrameOptions == nil {
			h.FrameOptions = strp(DefaultFrameOptions)
		}
		if h.ReferrerPolicy == nil {
			h.ReferrerPolicy = strp(DefaultReferrer)
		}
		if h.ContentTypeOptions == nil {
			h.ContentTypeOptions = strp("nosniff")
		}
		for j := range s.Deny {
			if s.Deny[j].Status == 0 {
				s.Deny[j].Status = http.StatusForbidden
			}
		}
		for j := range s.Routes {
			r := &s.Routes[j]
			if len(r.Methods) == 0 {
				r.Methods = []string{http.MethodGet, http.MethodHead}
			}
			for k, m := range r.Methods {
				r.Methods[k] = strings.ToUpper(m)
			}
			setSize(&r.MaxBody, int64(s.MaxBody))
		}
	}
}

// DefaultBodyMinRate is limits.body_min_rate when the config does not set
// it: 1 KiB per second (8 kbit/s) after the first body_read_timeout.
const DefaultBodyMinRate = 1 << 10

// MinBodyRate is limits.body_min_rate in bytes per second (0: off).
func (l *Limits) MinBodyRate() int64 {
	if l.BodyMinRate == nil {
		return DefaultBodyMinRate
	}
	return int64(*l.BodyMinRate)
}

func setDur(d *units.Duration, v time.Duration) {
	if *d == 0 {
		*d = units.Duration(v)
	}
}

func setSize(b *units.ByteSize, v int64) {
	if *b == 0 {
		*b = units.ByteSize(v)
	}
}

// validator collects errors with their positions.
type validator struct {
	c    *Config
	errs Errors
}

func (v *validator) errf(path []any, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.c.File, Line: v.c.pos.line(path...), Key: KeyString(path...), Msg: fmt.Sprintf(format, args...)})
}

func p(path ...any) []any { return path }

var tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Z-]+$")

// TLSVersions maps the accepted config values to crypto/tls constants.
// 1.0 and 1.1 are deliberately absent: they are not accepted values.
var TLSVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func (c *Config) validate() Errors {
	v := &validator{c: c}
	for i, a := range c.ListenAddrs() {
		key := p("listen")
		if len(c.Listeners) > 0 {
			key = p("listeners", i)
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			v.errf(key, "%q is not host:port; write e.g. \"0.0.0.0:443\"", a)
		}
	}
	if c.Admin.Listen != "off" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			v.errf(p("admin", "listen"), "%q is not host:port (or \"off\")", c.Admin.Listen)
		}
	}
	c.validateTLS(v)
	switch c.Sandbox {
	case "", "on", "off":
	default:
		v.errf(p("sandbox"), "%q: write on or off", c.Sandbox)
	}
	if c.User == "root" || c.User == "0" || c.Group == "root" || c.Group == "0" {
		v.errf(p("user"), "dropping privileges to root is no drop; name an unprivileged user such as rampart")
	}
	if c.Limits.MaxHeaderBytes < 1024 || c.Limits.MaxHeaderBytes > 1<<20 {
		v.errf(p("limits", "max_header_bytes"), "must be between 1KiB and 1MiB")
	}
	if c.Limits.MaxURILength < 256 || c.Limits.MaxURILength > c.Limits.MaxHeaderBytes {
		v.errf(p("limits", "max_uri_length"), "must be between 256B and max_header_bytes")
	}
	if c.Limits.BodyBufferTotal < 1<<20 {
		v.errf(p("limits", "body_buffer_total"), "must be at least 1MiB (it bounds all bodies the WAF holds at once; the default is 256MiB)")
	}
	if len(c.Sites) == 0 {
		v.errf(p("sites"), "no sites: rampart would refuse everything; add at least one site with host, upstream and routes")
	}
	hosts := map[string]string{}
	for i := range c.Sites {
		c.validateSite(v, i, hosts)
	}
	c.validateStages(v)
	return v.errs
}

func (c *Config) validateTLS(v *validator) {
	t := &c.TLS
	if t.InMemory == nil {
		if t.Cert == "" {
			v.errf(p("tls", "cert"), "missing: name the PEM certificate chain of the public listener")
		}
		if t.Key == "" {
			v.errf(p("tls", "key"), "missing: name the PEM private key of the public listener")
		}
	}
	seen := map[string]bool{}
	for i, ver := range t.Versions {
		if _, ok := TLSVersions[ver]; !ok {
			v.errf(p("tls", "versions", i), "%q is not accepted: use \"1.2\" and/or \"1.3\" (1.0 and 1.1 are broken and never allowed)", ver)
		}
		seen[ver] = true
	}
	for i, name := range t.Ciphers {
		if _, ok := CipherSuites[name]; !ok {
			v.errf(p("tls", "ciphers", i), "%q is not an allowed suite; allowed: ECDHE with AES-GCM or CHACHA20-POLY1305, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", name)
		}
	}
	switch t.ClientAuth {
	case "none", "request", "require":
	default:
		v.errf(p("tls", "client_auth"), "%q: use none, request or require", t.ClientAuth)
	}
	if t.ClientAuth != "none" && t.ClientCA == "" {
		v.errf(p("tls", "client_ca"), "client_auth %s needs client_ca: the PEM bundle that signs client certificates", t.ClientAuth)
	}
}

func (c *Config) validateSite(v *validator, i int, hosts map[string]string) {
	s := &c.Sites[i]
	names := append([]string{s.Host}, s.Aliases...)
	for j, h := range names {
		key := p("sites", i, "host")
		if j > 0 {
			key = p("sites", i, "aliases", j-1)
		}
		if !validHostName(h) {
			v.errf(key, "%q is not a host name; write the exact public name, e.g. app.example.com", h)
			continue
		}
		if prev, dup := hosts[h]; dup {
			v.errf(key, "host %q is already used by %s; each public name selects exactly one site", h, prev)
		}
		hosts[h] = KeyString(key...)
	}
	for j, port := range s.Ports {
		found := false
		for _, a := range c.ListenAddrs() {
			found = found || ListenPort(a) == strconv.Itoa(port)
		}
		if !found {
			v.errf(p("sites", i, "ports", j), "port %d is not the port of any listener; add a listener for it or remove it", port)
		}
	}
	if s.TLS != nil && (s.TLS.Cert == "" || s.TLS.Key == "") {
		v.errf(p("sites", i, "tls"), "a site certificate needs both cert and key")
	}
	if len(s.Upstream.Targets) == 0 {
		v.errf(p("sites", i, "upstream", "targets"), "no upstream targets: list at least one, e.g. [\"http://127.0.0.1:9001\"]")
	}
	for j, t := range s.Upstream.Targets {
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || !validPort(u.Port()) || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
			v.errf(p("sites", i, "upstream", "targets", j), "%q: write scheme://host:port, e.g. https://10.0.0.5:8445 (no path, no credentials)", t)
		}
	}
	ut := s.Upstream.TLS
	if (ut.Cert == "") != (ut.Key == "") {
		v.errf(p("sites", i, "upstream", "tls"), "a client certificate for the upstream needs both cert and key")
	}
	if s.DenyStatus < 400 || s.DenyStatus > 599 {
		v.errf(p("sites", i, "deny_status"), "%d is not an error status (400-599)", s.DenyStatus)
	}
	for j, d := range s.Deny {
		if n := countSet(d.Exact, d.Prefix, d.Regex); n != 1 {
			v.errf(p("sites", i, "deny", j), "write exactly one of exact, prefix or regex")
		}
		if d.Status < 400 || d.Status > 599 {
			v.errf(p("sites", i, "deny", j, "status"), "%d is not an error status (400-599)", d.Status)
		}
		checkPattern(v, p("sites", i, "deny", j), d.Exact, d.Prefix, d.Regex)
	}
	if len(s.Routes) == 0 {
		v.errf(p("sites", i, "routes"), "no routes: every path would be refused; list the paths this site exposes")
	}
	for j := range s.Routes {
		r := &s.Routes[j]
		if n := countSet(r.Exact, r.Prefix, r.Regex); n != 1 {
			v.errf(p("sites", i, "routes", j), "write exactly one of exact, prefix or regex")
		}
		checkPattern(v, p("sites", i, "routes", j), r.Exact, r.Prefix, r.Regex)
		for k, m := range r.Methods {
			switch {
			case !tokenRE.MatchString(m):
				v.errf(p("sites", i, "routes", j, "methods", k), "%q is not an HTTP method", m)
			case m == http.MethodTrace || m == "TRACK" || m == http.MethodConnect:
				v.errf(p("sites", i, "routes", j, "methods", k), "%s is never proxied (cross-site tracing, open proxy); remove it", m)
			}
		}
		if r.WebSocket && !contains(r.Methods, http.MethodGet) {
			v.errf(p("sites", i, "routes", j, "methods"), "a websocket route needs GET (the WebSocket handshake is a GET)")
		}
	}
}

func checkPattern(v *validator, base []any, exact, prefix, regex string) {
	switch {
	case exact != "" && !strings.HasPrefix(exact, "/"):
		v.errf(append(base, "exact"), "%q must start with /", exact)
	case prefix != "" && !strings.HasPrefix(prefix, "/"):
		v.errf(append(base, "prefix"), "%q must start with /", prefix)
	case regex != "":
		if _, err := regexp.Compile(regex); err != nil {
			v.errf(append(base, "regex"), "invalid regular expression: %v", err)
		}
	}
}

// validPort accepts a decimal TCP port, 1-65535.
func validPort(port string) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// validHostName accepts DNS names (letters, digits, hyphens, dots) and IP
// literals; no ports, no wildcards.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(strings.Trim(h, "[]")) != nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

// CipherSuites are the TLS 1.2 suites a config may name: ECDHE key exchange
// with an AEAD cipher only. TLS 1.3 suites are all AEAD and not configurable.
var CipherSuites = map[string]uint16{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256":       tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384":       tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256":         tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384":         tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ListenPort returns the port of a listen address as a string.
func ListenPort(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	if _, err := strconv.Atoi(port); err != nil {
		return ""
	}
	return port
}
