// Package deploy generates the host artefacts that confine rampart to
// exactly what one config needs: a hardened systemd unit, an nftables
// ruleset for the DMZ host and an SELinux policy module. Each is derived
// from the config, so the listener, admin, upstream and state-store ports,
// the certificate directories and the log directories in them match it.
//
// `rampart deploy systemd|nftables -c FILE` prints them; `rampart deploy
// selinux -c FILE -o DIR` writes the module's files.
package deploy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/sandbox"
)

// Options are the deployment facts a config does not hold.
type Options struct {
	// ConfigPath is where the config lives on the target host; relative
	// paths in it are resolved against its directory. Default: the config
	// file's own absolute path.
	ConfigPath string
	// Binary is the installed program. Default /usr/local/bin/rampart.
	Binary string
	// User and Group run the service. Default rampart.
	User, Group string
	// MemoryMax caps the service's memory (systemd syntax). Default 1G.
	MemoryMax string
	// LimitNOFILE is the open-file limit. Default: twice the total
	// connection cap plus 4096 (a client and an upstream socket each).
	LimitNOFILE int
	// Clients are the networks clients connect from (e.g. a load
	// balancer's). Empty: anywhere, as for a DMZ host facing the internet.
	Clients []netip.Prefix
	// AllowIn and AllowOut are extra firewall openings for the host
	// itself, such as SSH from a management network or NTP to a time
	// server: "tcp/22@10.0.9.0/24", "udp/123@10.0.0.1".
	AllowIn, AllowOut []Opening
	// Resolve turns an upstream or state-store host name into addresses.
	// Default: the system resolver, which reads /etc/hosts first (pin the
	// names there: the nftables ruleset blocks DNS).
	Resolve func(host string) ([]netip.Addr, error)
}

// Opening is one extra firewall opening: protocol, port and the network on
// the other side.
type Opening struct {
	Proto string // tcp or udp
	Port  uint16
	Net   netip.Prefix
}

// ParseOpening reads "tcp/22@10.0.9.0/24" (a bare address means a /32 or
// /128).
func ParseOpening(s string) (Opening, error) {
	bad := fmt.Errorf("%q: write proto/port@network, e.g. tcp/22@10.0.9.0/24", s)
	pp, network, ok := strings.Cut(s, "@")
	if !ok {
		return Opening{}, bad
	}
	proto, port, ok := strings.Cut(pp, "/")
	if !ok || (proto != "tcp" && proto != "udp") {
		return Opening{}, bad
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return Opening{}, bad
	}
	pfx, err := parsePrefix(network)
	if err != nil {
		return Opening{}, bad
	}
	return Opening{Proto: proto, Port: uint16(n), Net: pfx}, nil
}

func (o Opening) String() string { return fmt.Sprintf("%s/%d@%s", o.Proto, o.Port, o.Net) }

// parsePrefix reads a CIDR or a bare address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePrefixes reads a comma-separated list of CIDRs or addresses.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := parsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or network: %v", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// endpoint is one TCP address rampart binds or connects to.
type endpoint struct {
	Name  string       // as written in the config
	Addrs []netip.Addr // empty for a wildcard listener
	Port  uint16
	Any4  bool // wildcard listener on every IPv4 address
	Any6  bool // wildcard listener on every address, IPv6 and IPv4
	UDP   bool // a datagram destination (syslog over UDP), not TCP
	Why   string
}

func (e endpoint) loopback() bool {
	if e.Any4 || e.Any6 || len(e.Addrs) == 0 {
		return false
	}
	for _, a := range e.Addrs {
		if !a.IsLoopback() {
			return false
		}
	}
	return true
}

// host is everything the artefacts need to know, derived from one config.
type host struct {
	cfg        *config.Config
	opts       Options
	configPath string
	plan       *sandbox.Plan
	listeners  []endpoint
	admin      *endpoint
	// upstreams are every destination rampart connects to: the upstream
	// targets, the identity providers' key URLs, syslog, the state store.
	upstreams []endpoint
}

func (o Options) withDefaults() Options {
	if o.Binary == "" {
		o.Binary = "/usr/local/bin/rampart"
	}
	if o.User == "" {
		o.User = "rampart"
	}
	if o.Group == "" {
		o.Group = o.User
	}
	if o.MemoryMax == "" {
		o.MemoryMax = "1G"
	}
	if o.Resolve == nil {
		o.Resolve = func(h string) ([]netip.Addr, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return net.DefaultResolver.LookupNetIP(ctx, "ip", h)
		}
	}
	return o
}

func newHost(cfg *config.Config, opts Options) (*host, error) {
	opts = opts.withDefaults()
	h := &host{opts: opts}
	h.configPath = opts.ConfigPath
	if h.configPath == "" {
		h.configPath = cfg.File
	}
	if !filepath.IsAbs(h.configPath) {
		abs, err := filepath.Abs(h.configPath)
		if err != nil {
			return nil, err
		}
		h.configPath = abs
	}
	// The same config as seen on the target host.
	c := *cfg
	c.File = h.configPath
	h.cfg = &c
	for key, p := range map[string]string{"log.access": c.Log.Access, "log.security": c.Log.Security, "state.redis.password_file": c.State.Redis.PasswordFile} {
		switch p {
		case "", "stdout", "stderr", "off":
			continue
		}
		if key == "state.redis.password_file" && c.State.Store != "redis" {
			continue
		}
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("%s: %q is relative to the working directory; write an absolute path for a service", key, p)
		}
	}
	plan, err := sandbox.NewPlan(h.cfg, sandbox.Options{CacheDir: c.CacheDir})
	if err != nil {
		return nil, err
	}
	h.plan = plan
	for i, a := range c.ListenAddrs() {
		e, err := h.listenEndpoint(a)
		if err != nil {
			return nil, fmt.Errorf("listen[%d]: %w", i, err)
		}
		h.listeners = append(h.listeners, e)
	}
	if c.Admin.Listen != "off" {
		e, err := h.listenEndpoint(c.Admin.Listen)
		if err != nil {
			return nil, fmt.Errorf("admin.listen: %w", err)
		}
		h.admin = &e
	}
	for i, s := range c.Sites {
		for j, t := range s.Upstream.Targets {
			u, err := url.Parse(t)
			if err != nil {
				return nil, fmt.Errorf("sites[%d].upstream.targets[%d]: %v", i, j, err)
			}
			e, err := h.remoteEndpoint(u.Host, fmt.Sprintf("sites[%d] %s upstream", i, s.Host))
			if err != nil {
				return nil, fmt.Errorf("sites[%d].upstream.targets[%d]: %w", i, j, err)
			}
			h.upstreams = append(h.upstreams, e)
		}
		for j := range s.Routes {
			a := c.AuthFor(i, j)
			if !a.Enabled() || a.KeysURL == "" {
				continue
			}
			u, err := url.Parse(a.KeysURL)
			if err != nil {
				return nil, fmt.Errorf("sites[%d].routes[%d].auth.keys_url: %v", i, j, err)
			}
			port := u.Port()
			if port == "" {
				port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
			}
			e, err := h.remoteEndpoint(net.JoinHostPort(u.Hostname(), port), fmt.Sprintf("sites[%d] %s auth keys", i, s.Host))
			if err != nil {
				return nil, fmt.Errorf("sites[%d].routes[%d].auth.keys_url: %w", i, j, err)
			}
			h.addUpstream(e)
		}
		if bf := s.BruteForce; bf != nil && bf.Syslog.Address != "" {
			e, err := h.remoteEndpoint(bf.Syslog.Address, fmt.Sprintf("sites[%d] %s ban notices (syslog)", i, s.Host))
			if err != nil {
				return nil, fmt.Errorf("sites[%d].brute_force.syslog.address: %w", i, err)
			}
			e.UDP = bf.Syslog.Network != "tcp"
			h.addUpstream(e)
		}
	}
	if c.State.Store == "redis" {
		e, err := h.remoteEndpoint(c.State.Redis.Address, "state store (redis)")
		if err != nil {
			return nil, fmt.Errorf("state.redis.address: %w", err)
		}
		h.upstreams = append(h.upstreams, e)
	}
	return h, nil
}

// addUpstream adds a destination unless the same one is there already
// (several routes share one key URL).
func (h *host) addUpstream(e endpoint) {
	for _, x := range h.upstreams {
		if x.Name == e.Name && x.UDP == e.UDP {
			return
		}
	}
	h.upstreams = append(h.upstreams, e)
}

func splitPort(hostport string) (string, uint16, error) {
	hst, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %v", hostport, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port %q is not a number", hostport, port)
	}
	return hst, uint16(n), nil
}

func (h *host) listenEndpoint(addr string) (endpoint, error) {
	hst, port, err := splitPort(addr)
	if err != nil {
		return endpoint{}, err
	}
	if port == 0 {
		return endpoint{}, fmt.Errorf("%q: port 0 picks a random port; a deployed listener needs a fixed one", addr)
	}
	e := endpoint{Name: addr, Port: port}
	switch hst {
	case "", "::":
		e.Any6 = true
	case "0.0.0.0":
		e.Any4 = true
	case "localhost":
		e.Addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	default:
		a, err := h.addrs(hst)
		if err != nil {
			return endpoint{}, err
		}
		e.Addrs = a
	}
	return e, nil
}

func (h *host) remoteEndpoint(hostport, why string) (endpoint, error) {
	hst, port, err := splitPort(hostport)
	if err != nil {
		return endpoint{}, err
	}
	a, err := h.addrs(hst)
	if err != nil {
		return endpoint{}, err
	}
	return endpoint{Name: hostport, Addrs: a, Port: port, Why: why}, nil
}

func (h *host) addrs(name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	as, err := h.opts.Resolve(name)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %q: %v (pin it in /etc/hosts: the firewall blocks DNS)", name, err)
	}
	if len(as) == 0 {
		return nil, fmt.Errorf("%q resolves to no address", name)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if a = a.Unmap(); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out, nil
}

// lowPort reports whether a listener needs CAP_NET_BIND_SERVICE.
func (h *host) lowPort() bool {
	for _, e := range h.listeners {
		if e.Port < 1024 {
			return true
		}
	}
	return h.admin != nil && h.admin.Port < 1024
}

// publicIngress reports whether clients may come from anywhere.
func (h *host) publicIngress() bool {
	if len(h.opts.Clients) > 0 {
		return false
	}
	for _, e := range h.listeners {
		if !e.loopback() {
			return true
		}
	}
	return false
}

func (h *host) listenPorts() []uint16 {
	var ps []uint16
	for _, e := range h.listeners {
		if !slices.Contains(ps, e.Port) {
			ps = append(ps, e.Port)
		}
	}
	slices.Sort(ps)
	return ps
}

func (h *host) header(kind string) string {
	return fmt.Sprintf("# rampart %s for %s\n# Generated by `rampart deploy %s` from this config; regenerate when it\n# changes (listeners, upstreams, certificates, logs).\n# config sha256: %s\n",
		kind, h.configPath, kind, h.cfg.SHA256)
}
