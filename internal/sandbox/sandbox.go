// Package sandbox confines a running rampart: it drops root privileges to
// an unprivileged user and restricts the process with Landlock to the files
// and TCP ports its config names, so that a compromised proxy can read
// neither the host's secrets nor reach any internal address beyond its
// upstreams.
//
// The order at start is fixed: load the config, read the private keys,
// bind the listeners (server.New does both), DropPrivileges, then Apply.
// Both steps are irreversible for the whole process.
package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"

	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/observe"
)

// Options are the sandbox settings that are not derived from the config.
type Options struct {
	// Disabled turns the Landlock sandbox off (config key `sandbox: off`).
	Disabled bool
	// CacheDir is a directory the process may read and write (a disk
	// cache), if one is configured.
	CacheDir string
	// ReadOnly and ReadWrite are extra paths (files or directories).
	ReadOnly  []string
	ReadWrite []string
}

// Access rights. Nothing is ever executable: a proxy runs no programs.
const (
	readRights  = landlock.AccessFSSet(llsys.AccessFSReadFile | llsys.AccessFSReadDir)
	writeRights = landlock.AccessFSSet(llsys.AccessFSReadFile | llsys.AccessFSReadDir |
		llsys.AccessFSWriteFile | llsys.AccessFSMakeReg | llsys.AccessFSTruncate)
	// tempRights adds removal: spooled bodies are deleted when done.
	tempRights = writeRights | landlock.AccessFSSet(llsys.AccessFSRemoveFile)
	// cacheRights add making and removing directories: the cache's disk
	// tier creates its site directories, renames complete body files in
	// them (within one directory: no Refer right needed) and empties them
	// at start.
	cacheRights = tempRights | landlock.AccessFSSet(llsys.AccessFSMakeDir|llsys.AccessFSRemoveDir)
	fileRead    = landlock.AccessFSSet(llsys.AccessFSReadFile)
	fileWrite   = landlock.AccessFSSet(llsys.AccessFSReadFile | llsys.AccessFSWriteFile | llsys.AccessFSTruncate)
)

// SystemReadOnly are read for name resolution, system trust roots and time
// zones. Paths missing on the host are skipped.
var SystemReadOnly = []string{
	"/etc/hosts",
	"/etc/resolv.conf",
	"/etc/nsswitch.conf",
	"/etc/ssl/certs",
	"/usr/share/zoneinfo",
}

// Plan is what the sandbox allows, derived from a config. It is computed
// without touching the file system, so `rampart deploy` can use it for a
// config that lives on another host.
type Plan struct {
	// ReadOnly are directories (and, where the directory is a shared system
	// directory such as /etc, single files) that are read but never written:
	// the config and every certificate, key, CA and rules file it names.
	// Directories rather than files, so that a file replaced by rename
	// (certbot, an editor, a config-management tool) is still readable on
	// reload.
	ReadOnly []Path
	// ReadWrite are the log file directories and the cache directory.
	ReadWrite []Path
	// Temp is os.TempDir() ($TMPDIR, default /tmp), read-write: the WAF
	// spools large request bodies and multipart uploads there and checks
	// that it is writable whenever it is built, on every reload. Under
	// systemd, PrivateTmp=yes makes it private to the service.
	Temp string
	// BindPorts are the TCP ports of the listeners and the admin listener.
	BindPorts []uint16
	// ConnectPorts are the TCP ports of the upstream targets and the state
	// store.
	ConnectPorts []uint16
	// ConnectHosts are the hosts of the upstream targets and the state store,
	// as written in the config.
	ConnectHosts []string
	// ConnectUDP are the UDP ports datagrams go to (syslog over UDP).
	ConnectUDP []uint16
	// DNS is true when a connect host is a name rather than an address.
	DNS bool
	// Warnings name the files allowed alone because their directory is
	// shared (such as /etc): one replaced by rename is not readable until
	// a restart.
	Warnings []string
}

// Path is one allowed path.
type Path struct {
	Path string
	// File is true when only this file, not its directory, is allowed.
	File bool
	// Why names the config key that needs it.
	Why string
	// Cache is true for the cache directory (cache_dir): below it files and
	// directories are also created and deleted.
	Cache bool
}

// Status is the sandbox in effect.
type Status struct {
	// Enabled is true when a Landlock ruleset was enforced.
	Enabled bool
	// ABI is the Landlock ABI version in effect (0: none) and KernelABI the
	// one the kernel offers.
	ABI, KernelABI int
	// FS and Net say whether file system and TCP rules are enforced (Net
	// needs ABI 4, Linux 6.7); Scoped whether abstract UNIX sockets and
	// signals are confined to the process (ABI 6, Linux 6.12).
	FS, Net, Scoped bool
	// Reason says why the sandbox is off or partial.
	Reason string
	Plan   *Plan
}

// Attrs returns the status as log attributes.
func (s Status) Attrs() []slog.Attr {
	a := []slog.Attr{
		slog.Bool("enabled", s.Enabled),
		slog.Int("landlock_abi", s.ABI),
		slog.Int("kernel_abi", s.KernelABI),
		slog.Bool("fs_rules", s.FS),
		slog.Bool("net_rules", s.Net),
		slog.Bool("scoped", s.Scoped),
	}
	if s.Plan != nil {
		a = append(a,
			slog.Any("bind_tcp", s.Plan.BindPorts),
			slog.Any("connect_tcp", s.Plan.ConnectPorts),
		)
		if len(s.Plan.ConnectUDP) > 0 {
			a = append(a, slog.Any("send_udp", s.Plan.ConnectUDP))
		}
	}
	if s.Reason != "" {
		a = append(a, slog.String("reason", s.Reason))
	}
	if s.Plan != nil && len(s.Plan.Warnings) > 0 {
		a = append(a, slog.Any("warnings", s.Plan.Warnings))
	}
	return a
}

func (s Status) String() string {
	if !s.Enabled {
		return "sandbox off: " + s.Reason
	}
	str := fmt.Sprintf("landlock ABI %d (kernel %d), fs rules on, net rules %s", s.ABI, s.KernelABI, onOff(s.Net))
	if s.Reason != "" {
		str += ": " + s.Reason
	}
	return str
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// broad are directories too widely shared to open as a whole: a file
// directly inside one of them is allowed as a single file.
var broad = map[string]bool{
	"/": true, "/etc": true, "/usr": true, "/usr/local": true, "/usr/share": true,
	"/var": true, "/var/lib": true, "/var/log": true, "/var/tmp": true, "/tmp": true,
	"/run": true, "/home": true, "/root": true, "/srv": true, "/opt": true,
	"/proc": true, "/sys": true, "/dev": true, "/bin": true, "/sbin": true, "/lib": true,
	"/etc/ssl": true, "/etc/ssl/certs": true, "/etc/ssl/private": true,
	"/etc/pki": true, "/etc/pki/tls": true, "/etc/pki/tls/certs": true, "/etc/pki/tls/private": true,
}

// NewPlan derives the sandbox's rules from cfg. Relative paths are resolved
// as rampart resolves them (certificates against the config's directory,
// log files against the working directory).
func NewPlan(cfg *config.Config, opts Options) (*Plan, error) {
	p := &Plan{}
	if cfg.File != "" {
		p.addRead(absPath(cfg.File), "config file")
	}
	file := func(path, why string) {
		if path != "" {
			p.addRead(absPath(cfg.Path(path)), why)
		}
	}
	t := cfg.TLS
	if t.InMemory == nil {
		file(t.Cert, "tls.cert")
		file(t.Key, "tls.key")
	}
	file(t.ClientCA, "tls.client_ca")
	for i, s := range cfg.Sites {
		k := fmt.Sprintf("sites[%d]", i)
		if s.TLS != nil {
			file(s.TLS.Cert, k+".tls.cert")
			file(s.TLS.Key, k+".tls.key")
		}
		u := s.Upstream.TLS
		file(u.CA, k+".upstream.tls.ca")
		file(u.Cert, k+".upstream.tls.cert")
		file(u.Key, k+".upstream.tls.key")
		if s.WAF != nil {
			file(s.WAF.RulesFile, k+".waf.rules_file")
		}
		for j, r := range s.Routes {
			if r.WAF != nil {
				file(r.WAF.RulesFile, fmt.Sprintf("%s.routes[%d].waf.rules_file", k, j))
			}
		}
		for j := range s.Routes {
			a := cfg.AuthFor(i, j)
			if !a.Enabled() {
				continue
			}
			rk := fmt.Sprintf("%s.routes[%d].auth", k, j)
			file(a.KeysFile, rk+".keys_file")
			if a.KeysURL != "" {
				hostport, err := urlHostPort(a.KeysURL)
				if err != nil {
					return nil, fmt.Errorf("%s.keys_url: %w", rk, err)
				}
				if err := p.addConnect(hostport, rk+".keys_url"); err != nil {
					return nil, err
				}
			}
		}
		if bf := s.BruteForce; bf != nil && bf.Syslog.Address != "" {
			why := k + ".brute_force.syslog"
			if bf.Syslog.Network == "tcp" {
				if err := p.addConnect(bf.Syslog.Address, why); err != nil {
					return nil, err
				}
			} else if err := p.addUDP(bf.Syslog.Address, why); err != nil {
				return nil, err
			}
		}
		for _, target := range s.Upstream.Targets {
			u, err := url.Parse(target)
			if err != nil {
				return nil, fmt.Errorf("%s.upstream.targets: %q: %v", k, target, err)
			}
			if err := p.addConnect(u.Host, k+".upstream.targets"); err != nil {
				return nil, err
			}
		}
	}
	if cfg.State.Store == "redis" {
		if pw := cfg.State.Redis.PasswordFile; pw != "" {
			// The state package reads it as written (relative to the
			// working directory).
			p.addRead(absPath(pw), "state.redis.password_file")
		}
		if err := p.addConnect(cfg.State.Redis.Address, "state.redis.address"); err != nil {
			return nil, err
		}
	}
	for _, dest := range []string{cfg.Log.Access, cfg.Log.Security} {
		switch dest {
		case "", "stdout", "stderr", "off":
			continue
		}
		p.addWrite(absPath(dest), "log")
	}
	if opts.CacheDir != "" {
		p.ReadWrite = appendPath(p.ReadWrite, Path{Path: absPath(opts.CacheDir), Why: "cache_dir", Cache: true})
	}
	for _, x := range opts.ReadOnly {
		p.ReadOnly = appendPath(p.ReadOnly, Path{Path: absPath(x), Why: "extra read-only path"})
	}
	for _, x := range opts.ReadWrite {
		p.ReadWrite = appendPath(p.ReadWrite, Path{Path: absPath(x), Why: "extra read-write path"})
	}
	p.Temp = absPath(os.TempDir())
	addrs := cfg.ListenAddrs()
	if cfg.Admin.Listen != "off" {
		addrs = append(addrs, cfg.Admin.Listen)
	}
	for _, a := range addrs {
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %v", a, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: port %q is not a number", a, port)
		}
		if n != 0 { // port 0: bound before the sandbox, never bound again
			p.BindPorts = appendPort(p.BindPorts, uint16(n))
		}
	}
	p.ReadOnly = collapse(p.ReadOnly)
	p.ReadWrite = collapse(p.ReadWrite)
	for _, x := range append(slices.Clone(p.ReadOnly), p.ReadWrite...) {
		if x.File {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s (%s) is in the shared directory %s: only this file is allowed, so a copy replaced by rename is not readable until a restart; move it to a directory of its own such as /etc/rampart", x.Path, x.Why, filepath.Dir(x.Path)))
		}
	}
	return p, nil
}

func (p *Plan) addRead(file, why string) {
	p.ReadOnly = appendPath(p.ReadOnly, dirOf(file, why))
}

func (p *Plan) addWrite(file, why string) {
	p.ReadWrite = appendPath(p.ReadWrite, dirOf(file, why))
}

// dirOf allows the directory of file, or the file alone when its directory
// is a broad, shared one.
func dirOf(file, why string) Path {
	dir := filepath.Dir(file)
	if broad[dir] {
		return Path{Path: file, File: true, Why: why}
	}
	return Path{Path: dir, Why: why}
}

func (p *Plan) addConnect(hostport, why string) error {
	host, port, err := p.destination(hostport, why, "TCP")
	if err != nil {
		return err
	}
	p.ConnectPorts = appendPort(p.ConnectPorts, port)
	if !slices.Contains(p.ConnectHosts, host) {
		p.ConnectHosts = append(p.ConnectHosts, host)
	}
	return nil
}

func (p *Plan) addUDP(hostport, why string) error {
	_, port, err := p.destination(hostport, why, "UDP")
	if err != nil {
		return err
	}
	p.ConnectUDP = appendPort(p.ConnectUDP, port)
	return nil
}

// destination splits a host:port rampart sends to over proto and notes
// whether reaching it needs DNS.
func (p *Plan) destination(hostport, why, proto string) (string, uint16, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %q: %v", why, hostport, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("%s: %q: no %s port", why, hostport, proto)
	}
	if net.ParseIP(host) == nil {
		p.DNS = true
	}
	return host, uint16(n), nil
}

// urlHostPort returns the host:port a URL connects to.
func urlHostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		default:
			return "", fmt.Errorf("%q: no port and no http or https scheme", raw)
		}
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

func appendPort(ps []uint16, n uint16) []uint16 {
	if slices.Contains(ps, n) {
		return ps
	}
	ps = append(ps, n)
	slices.Sort(ps)
	return ps
}

func appendPath(ps []Path, x Path) []Path {
	for i := range ps {
		if ps[i].Path == x.Path {
			if !strings.Contains(ps[i].Why, x.Why) {
				ps[i].Why += ", " + x.Why
			}
			ps[i].File = ps[i].File && x.File
			ps[i].Cache = ps[i].Cache || x.Cache
			return ps
		}
	}
	return append(ps, x)
}

// collapse drops paths lying under another directory of the list and sorts.
// The cache directory stays: it has rights of its own.
func collapse(ps []Path) []Path {
	var out []Path
	for _, x := range ps {
		covered := false
		if x.Cache {
			out = append(out, x)
			continue
		}
		for _, y := range ps {
			if !y.File && y.Path != x.Path && within(x.Path, y.Path) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b Path) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// ABI is the Landlock ABI version of the running kernel, 0 without Landlock.
func ABI() int {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}

// maxABI is the highest ABI go-landlock v0.11 knows.
const maxABI = 11

// Apply restricts the whole process, irreversibly, to what cfg needs. On a
// kernel without Landlock it returns a Status that says so and no error; a
// kernel with an older ABI gets the subset it supports (TCP rules need ABI
// 4). With opts.Disabled it does nothing. The status is logged on the
// security log.
func Apply(cfg *config.Config, opts Options) (Status, error) {
	st, err := apply(cfg, opts)
	if err != nil {
		observe.Default().Event(slog.LevelError, "sandbox failed", slog.String("error", err.Error()))
		return st, err
	}
	observe.Default().Event(slog.LevelInfo, "sandbox", st.Attrs()...)
	return st, nil
}

func apply(cfg *config.Config, opts Options) (Status, error) {
	st := Status{KernelABI: ABI()}
	if opts.Disabled {
		st.Reason = "disabled by the config (sandbox: off)"
		return st, nil
	}
	plan, err := NewPlan(cfg, opts)
	if err != nil {
		return st, err
	}
	st.Plan = plan
	if st.KernelABI == 0 {
		st.Reason = "the kernel has no Landlock (needs Linux 5.13+ with lsm=landlock)"
		return st, nil
	}
	rules, err := plan.rules()
	if err != nil {
		return st, err
	}
	if err := landlock.V11.BestEffort().Restrict(rules...); err != nil {
		return st, fmt.Errorf("landlock: %w", err)
	}
	st.Enabled = true
	st.ABI = min(st.KernelABI, maxABI)
	st.FS = true
	st.Net = st.ABI >= 4
	st.Scoped = st.ABI >= 6
	if !st.Net {
		st.Reason = fmt.Sprintf("the kernel's Landlock ABI %d cannot restrict TCP (needs 4, Linux 6.7); rely on the firewall", st.KernelABI)
	}
	return st, nil
}

// rules turns the plan into Landlock rules. Symbolic links are followed
// (Landlock checks the file finally opened): a certificate named through a
// link (certbot's live/ → archive/) allows both directories.
func (p *Plan) rules() ([]landlock.Rule, error) {
	var rules []landlock.Rule
	add := func(x Path, dirRights, fRights landlock.AccessFSSet) error {
		paths := []string{x.Path}
		if x.File {
			if real, err := filepath.EvalSymlinks(x.Path); err == nil && real != x.Path {
				paths = append(paths, real)
			}
		} else if !x.Cache {
			// A directory of links: allow where each entry points too.
			// Not for the cache directory: a link placed there must not
			// extend the rights to delete and create files elsewhere.
			paths = append(paths, linkTargets(x.Path)...)
		}
		for _, path := range paths {
			fi, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("%s (%s): %w", path, x.Why, err)
			}
			if fi.IsDir() {
				rules = append(rules, landlock.PathAccess(dirRights, path))
			} else {
				rules = append(rules, landlock.PathAccess(fRights, path))
			}
		}
		return nil
	}
	for _, x := range p.ReadOnly {
		if err := add(x, readRights, fileRead); err != nil {
			return nil, err
		}
	}
	for _, x := range p.ReadWrite {
		rights := writeRights
		if x.Cache {
			rights = cacheRights
		}
		if err := add(x, rights, fileWrite); err != nil {
			return nil, err
		}
	}
	if p.Temp != "" {
		if err := add(Path{Path: p.Temp, Why: "temp dir"}, tempRights, fileWrite); err != nil {
			return nil, err
		}
	}
	for _, s := range SystemReadOnly {
		fi, err := os.Stat(s)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r := fileRead
		if fi.IsDir() {
			r = readRights
		}
		rules = append(rules, landlock.PathAccess(r, s))
		if fi.IsDir() {
			// /etc/ssl/certs holds links into /usr/share/ca-certificates.
			for _, t := range linkTargets(s) {
				if !within(t, s) {
					rules = append(rules, landlock.PathAccess(readRights, t))
				}
			}
		}
	}
	// The process's own /proc entry: the Prometheus process collector
	// reads its limits, open files and CPU time.
	if self, err := filepath.EvalSymlinks("/proc/self"); err == nil {
		rules = append(rules, landlock.PathAccess(readRights, self))
	}
	for _, port := range p.BindPorts {
		rules = append(rules, landlock.BindTCP(port))
	}
	for _, port := range p.ConnectPorts {
		rules = append(rules, landlock.ConnectTCP(port))
	}
	// UDP rules exist from ABI 10 on. A datagram socket is bound to an
	// ephemeral port implicitly, hence BindUDP(0) whenever one is sent.
	if p.DNS || len(p.ConnectUDP) > 0 {
		rules = append(rules, landlock.BindUDP(0))
	}
	if p.DNS {
		// A name not pinned in /etc/hosts is resolved over UDP; TCP port
		// 53 stays closed.
		rules = append(rules, landlock.ConnectSendUDP(53))
	}
	for _, port := range p.ConnectUDP {
		rules = append(rules, landlock.ConnectSendUDP(port))
	}
	return rules, nil
}

// linkTargets returns the distinct directories that the symbolic links
// directly inside dir point into (outside dir), for links to files.
func linkTargets(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		fi, err := os.Stat(real)
		if err != nil {
			continue
		}
		d := real
		if !fi.IsDir() {
			d = filepath.Dir(real)
		}
		if within(d, dir) || broad[d] || slices.Contains(out, d) {
			continue
		}
		out = append(out, d)
	}
	return out
}
