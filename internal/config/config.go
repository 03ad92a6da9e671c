// Package config reads rampart's one config file: strictly (unknown keys,
// wrong types and contradictions are errors naming file, line and key),
// fills in secure defaults, and reports every loosening of them as a warning.
//
// The reference of every key, with examples, is README.md at the top of the
// repository; the keys of a stage are documented in that stage's package.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-proxy/rampart/internal/connguard"
	"github.com/rampart-proxy/rampart/internal/units"
)

// Config is the whole file.
type Config struct {
	Listen    string   `yaml:"listen"`
	Listeners []string `yaml:"listeners"`
	Admin     Admin    `yaml:"admin"`
	TLS       TLS      `yaml:"tls"`
	Limits    Limits   `yaml:"limits"`
	Log       Log      `yaml:"log"`
	Sites     []Site   `yaml:"sites"`
	Stages    `yaml:",inline"`

	// Host hardening (internal/sandbox): the user and group to switch to
	// after the listeners are bound when started as root, and the Landlock
	// self-sandbox (on unless "off").
	User    string `yaml:"user"`
	Group   string `yaml:"group"`
	Sandbox string `yaml:"sandbox"`

	// File is the path the config was read from; relative paths in it
	// (certificates, rules files) are resolved against its directory.
	File string `yaml:"-"`
	// SHA256 is the fingerprint of the file's bytes.
	SHA256 string `yaml:"-"`

	pos positions
}

// Admin is the listener for health, metrics and operator APIs.
type Admin struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:9901; "off" disables
}

// TLS is the policy of the public listeners.
type TLS struct {
	Cert           string   `yaml:"cert"`
	Key            string   `yaml:"key"`
	Versions       []string `yaml:"versions"`        // "1.2", "1.3"; default both
	Ciphers        []string `yaml:"ciphers"`         // TLS 1.2 suites by Go name; default ECDHE+AEAD
	ClientCA       string   `yaml:"client_ca"`       // PEM bundle for client certificates
	ClientAuth     string   `yaml:"client_auth"`     // none | request | require
	SessionTickets bool     `yaml:"session_tickets"` // default false
	// HandshakeTimeout bounds the TLS handshake of one connection.
	HandshakeTimeout units.Duration `yaml:"handshake_timeout"`

	// InMemory, when set, replaces Cert/Key (used by `rampart demo`).
	InMemory *CertPEM `yaml:"-"`
}

// CertPEM is a certificate chain and key held in memory.
type CertPEM struct{ Cert, Key []byte }

// Limits bounds what one client may send.
type Limits struct {
	MaxHeaderBytes    units.ByteSize `yaml:"max_header_bytes"`    // request line + headers; default 8KiB
	MaxURILength      units.ByteSize `yaml:"max_uri_length"`      // request-target; default 4KiB
	MaxBody           units.ByteSize `yaml:"max_body"`            // default 15MiB; per site and route override
	ReadHeaderTimeout units.Duration `yaml:"read_header_timeout"` // default 10s
	IdleTimeout       units.Duration `yaml:"idle_timeout"`        // keepalive; default 20s
	BodyReadTimeout   units.Duration `yaml:"body_read_timeout"`   // longest pause between body bytes; default 10s
	// BodyMinRate is the average a request body must keep, in bytes per
	// second of waiting for it, once its first body_read_timeout of
	// waiting is used (a slow-POST guard); default 1KiB, 0 switches it off.
	BodyMinRate *units.ByteSize `yaml:"body_min_rate"`
	// BodyBufferTotal bounds the request-body bytes held in memory for WAF
	// inspection by all requests together; default 256MiB.
	BodyBufferTotal units.ByteSize `yaml:"body_buffer_total"`
	SendTimeout     units.Duration `yaml:"send_timeout"`  // longest wait for one write to the client; default 10s
	DrainTimeout    units.Duration `yaml:"drain_timeout"` // graceful stop deadline; default 15s
	// Connections are the caps of stage 1 (connections_per_client,
	// connections_total, handshakes_per_client, max_clients).
	Connections connguard.Config `yaml:",inline"`
}

// Log says where the two logs go: "stdout", "stderr", "off" or a file path.
type Log struct {
	Access   string `yaml:"access"`   // default stdout
	Security string `yaml:"security"` // default stderr
}

// Site is one public host name and what it exposes.
type Site struct {
	Host       string         `yaml:"host"`
	Aliases    []string       `yaml:"aliases"`
	Ports      []int          `yaml:"ports"` // listener ports this site answers on; default all
	TLS        *SiteTLS       `yaml:"tls"`   // certificate for this host, chosen by SNI
	Upstream   Upstream       `yaml:"upstream"`
	DenyStatus int            `yaml:"deny_status"` // unmatched paths; default 404
	Deny       []Deny         `yaml:"deny"`
	Routes     []Route        `yaml:"routes"`
	Headers    Headers        `yaml:"headers"`
	MaxBody    units.ByteSize `yaml:"max_body"`
	SiteStages `yaml:",inline"`
}

// SiteTLS is a per-site certificate.
type SiteTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Upstream is the internal server pool behind a site.
type Upstream struct {
	Targets               []string       `yaml:"targets"` // http:// or https:// host:port
	TLS                   UpstreamTLS    `yaml:"tls"`
	HostHeader            string         `yaml:"host_header"`             // default: the public Host as the client sent it
	ConnectTimeout        units.Duration `yaml:"connect_timeout"`         // default 5s
	ResponseHeaderTimeout units.Duration `yaml:"response_header_timeout"` // default 60s
	ReadTimeout           units.Duration `yaml:"read_timeout"`            // longest pause between two reads of a response body; default 60s
	SendTimeout           units.Duration `yaml:"send_timeout"`            // longest wait for one write of a request to the upstream; default 60s
	Keepalive             int            `yaml:"keepalive"`               // idle connections kept per target; default 128
	FailTimeout           units.Duration `yaml:"fail_timeout"`            // a target that failed to connect is skipped this long; default 10s
}

// UpstreamTLS is how rampart verifies and authenticates to https targets.
type UpstreamTLS struct {
	CA                 string `yaml:"ca"`          // trust file; default: system roots
	ServerName         string `yaml:"server_name"` // name to verify; default: target host
	Cert               string `yaml:"cert"`        // client certificate for mTLS to the upstream
	Key                string `yaml:"key"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // never in production; `check` warns
}

// Deny refuses a path even when a broader route would allow it.
type Deny struct {
	Exact  string `yaml:"exact"`
	Prefix string `yaml:"prefix"`
	Regex  string `yaml:"regex"`
	Status int    `yaml:"status"` // default 403
}

// Route is one allowed path (or path family) of a site.
type Route struct {
	Exact           string         `yaml:"exact"`
	Prefix          string         `yaml:"prefix"`
	Regex           string         `yaml:"regex"`
	Methods         []string       `yaml:"methods"`   // default [GET, HEAD]
	WebSocket       bool           `yaml:"websocket"` // Upgrade: websocket allowed here, and only here
	MaxBody         units.ByteSize `yaml:"max_body"`
	AllowJSessionID bool           `yaml:"allow_jsessionid"` // accept a trailing ;jsessionid= path parameter
	RouteStages     `yaml:",inline"`
}

// Headers are the response-hardening headers added to every answer.
type Headers struct {
	HSTS               *string           `yaml:"hsts"`            // default "max-age=31536000; includeSubDomains"; "off" disables
	FrameOptions       *string           `yaml:"frame_options"`   // default SAMEORIGIN; "off" disables
	ReferrerPolicy     *string           `yaml:"referrer_policy"` // default strict-origin-when-cross-origin; "off" disables
	ContentTypeOptions *string           `yaml:"content_type_options"`
	Set                map[string]string `yaml:"set"`    // extra headers, e.g. Content-Security-Policy
	Remove             []string          `yaml:"remove"` // upstream headers to drop besides Server and X-Powered-By
}

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read config: %w", path, err)
	}
	return Parse(path, data)
}

// Parse is Load on bytes already read; file is used in error messages and
// to resolve relative paths.
func Parse(file string, data []byte) (*Config, error) { return parse(file, data, nil) }

// ParseWithCert is Parse for a config whose listener certificate is held in
// memory instead of named by tls.cert and tls.key.
func ParseWithCert(file string, data []byte, cert *CertPEM) (*Config, error) {
	return parse(file, data, cert)
}

func parse(file string, data []byte, mem *CertPEM) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, decodeErrors(file, err, nil)
	}
	if root.Kind == 0 {
		return nil, Errors{{File: file, Msg: "the file is empty; see examples/rampart.yaml for a starting point"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	cfg := &Config{}
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeErrors(file, err, &root)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Errors{{File: file, Line: extra.Line, Msg: "more than one YAML document; a config file holds exactly one"}}
	case !errors.Is(err, io.EOF):
		// Whatever follows the document must not be ignored, broken or not.
		return nil, decodeErrors(file, err, nil)
	}
	sum := sha256.Sum256(data)
	cfg.File = file
	cfg.SHA256 = hex.EncodeToString(sum[:])
	cfg.pos = positions{root: &root}
	cfg.TLS.InMemory = mem
	cfg.applyDefaults()
	if errs := cfg.validate(); len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// Path resolves a path written in the config against the config's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// ListenAddrs returns every public listener address.
func (c *Config) ListenAddrs() []string {
	if len(c.Listeners) > 0 {
		return c.Listeners
	}
	return []string{c.Listen}
}
