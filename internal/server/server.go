// Package server runs rampart: it binds the listeners, serves the current
// pipeline, reloads it on SIGHUP (a config that fails to load or build never
// replaces the running one) and drains on SIGTERM.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"github.com/rampart-proxy/rampart/internal/admin"
	"github.com/rampart-proxy/rampart/internal/bruteforce"
	"github.com/rampart-proxy/rampart/internal/cache"
	"github.com/rampart-proxy/rampart/internal/clientip"
	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/connguard"
	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/pipeline"
	"github.com/rampart-proxy/rampart/internal/protoguard"
	"github.com/rampart-proxy/rampart/internal/state"
	"github.com/rampart-proxy/rampart/internal/tlspolicy"
	"github.com/rampart-proxy/rampart/internal/waf"
)

// Server is a running rampart.
type Server struct {
	// Load re-reads the config for a reload; nil means reloads keep the
	// config given to Start (as `rampart demo` does).
	Load func() (*config.Config, error)

	pipe      atomic.Pointer[pipeline.Pipeline]
	shared    *pipeline.Shared
	conns     *connguard.Guard
	tlsConf   atomic.Pointer[tls.Config]
	listeners []*protoguard.Listener
	http      *http.Server
	admin     *http.Server
	adminLn   net.Listener
	logs      []io.Closer
	reloadMu  sync.Mutex
	done      chan struct{}
}

// OpenCacheDir opens cache_dir for the caches' disk tiers (checking that
// it belongs to the user the process runs as and is closed to others) and
// empties the site directories in it. Call it after the privilege drop
// and before Serve; without cache_dir it does nothing.
func (s *Server) OpenCacheDir() error {
	if s.shared.CacheDir == nil {
		return nil
	}
	return s.shared.CacheDir.Open()
}

// New builds everything from cfg and binds the listeners; Serve starts them.
func New(ctx context.Context, cfg *config.Config) (*Server, error) {
	s := &Server{done: make(chan struct{})}
	if err := s.setLogs(cfg); err != nil {
		return nil, err
	}
	store, err := state.Open(cfg.State)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	s.shared = &pipeline.Shared{Store: store}
	if cfg.CacheDir != "" {
		// Named now, opened by OpenCacheDir after the privilege drop.
		s.shared.CacheDir = cache.NewDir(cfg.CacheDir)
	}
	if err := s.apply(ctx, cfg); err != nil {
		_ = store.Close()
		return nil, err
	}
	// Stage 1 sits under TLS: a refused connection costs no handshake. A
	// trusted proxy carries many clients, so it meets only the total cap.
	// Both the cap and the PROXY protocol listener ask the resolver of the
	// pipeline in effect, so a reload that changes trusted_proxies applies
	// to them too.
	resolver := func() *clientip.Resolver { return s.pipe.Load().Resolver() }
	s.conns = connguard.New(cfg.Limits.Connections)
	s.conns.SetSharedPeer(func(peer netip.Addr) bool { return resolver().SharedPeer(peer) })
	gate := func(peer netip.AddrPort) bool { return s.conns.AllowHandshake(peer.Addr()) }
	lim := limitsOf(cfg)
	for _, addr := range cfg.ListenAddrs() {
		ln, err := listenTCP(addr)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		guarded := s.conns.Listener(clientip.ListenerFollowing(ln, resolver))
		s.listeners = append(s.listeners, protoguard.NewListener(guarded, lim, s.tlsConf.Load, gate))
	}
	s.http = &http.Server{
		Handler:                      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.pipe.Load().ServeHTTP(w, r) }),
		ReadHeaderTimeout:            cfg.Limits.ReadHeaderTimeout.D(),
		IdleTimeout:                  cfg.Limits.IdleTimeout.D(),
		MaxHeaderBytes:               int(cfg.Limits.MaxHeaderBytes) + 4096, // the guard's limit is the one that bites
		ConnContext:                  protoguard.ConnContext,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     log.New(io.Discard, "", 0),
		TLSNextProto:                 map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	if cfg.Admin.Listen != "off" {
		ln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("admin listen %s: %w", cfg.Admin.Listen, err)
		}
		// The admin listener is bounded like the public one: its timeouts
		// come from limits, and at most adminConns connections are served
		// at once (more wait to be accepted).
		s.adminLn = netutil.LimitListener(ln, adminConns)
		l := cfg.Limits
		s.admin = &http.Server{Handler: admin.Handler(map[string]http.Handler{
			"/cache/": s.shared.Caches.Handler(),
			"/bans":   bruteforce.AdminHandler(store),
			"/bans/":  bruteforce.AdminHandler(store),
		}),
			ReadHeaderTimeout: l.ReadHeaderTimeout.D(),
			ReadTimeout:       l.ReadHeaderTimeout.D() + l.BodyReadTimeout.D(),
			WriteTimeout:      l.SendTimeout.D(),
			IdleTimeout:       l.IdleTimeout.D(),
			MaxHeaderBytes:    int(l.MaxHeaderBytes),
			ErrorLog:          log.New(io.Discard, "", 0),
		}
	}
	return s, nil
}

// adminConns caps the admin listener's connections served at once.
const adminConns = 32

func limitsOf(cfg *config.Config) protoguard.Limits {
	l := cfg.Limits
	return protoguard.Limits{
		MaxHeaderBytes:   int(l.MaxHeaderBytes),
		MaxURILength:     int(l.MaxURILength),
		HandshakeTimeout: cfg.TLS.HandshakeTimeout.D(),
		BodyReadTimeout:  l.BodyReadTimeout.D(),
		BodyMinRate:      l.MinBodyRate(),
		SendTimeout:      l.SendTimeout.D(),
	}
}

func (s *Server) setLogs(cfg *config.Config) error {
	var ws [2]io.Writer
	for i, dest := range []string{cfg.Log.Access, cfg.Log.Security} {
		w, err := observe.OpenLog(dest)
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		bw := observe.NewBufferedWriter(w, 200*time.Millisecond)
		s.logs = append(s.logs, bw)
		ws[i] = bw
	}
	observe.SetDefault(observe.New(ws[0], ws[1]))
	return nil
}

// apply builds the TLS config and pipeline for cfg and swaps them in.
func (s *Server) apply(ctx context.Context, cfg *config.Config) error {
	tc, err := tlspolicy.Build(cfg)
	if err != nil {
		return err
	}
	if prev := s.pipe.Load(); prev != nil && prev.Config.ClientIP.ProxyProtocol != cfg.ClientIP.ProxyProtocol {
		// The listeners speak the PROXY protocol or not from their start;
		// a config that says otherwise would have them disagree with
		// stage 6 about who the client is.
		return fmt.Errorf("%s: client_ip.proxy_protocol changed from %v to %v: that takes a restart (rampart serve), not a reload", cfg.File, prev.Config.ClientIP.ProxyProtocol, cfg.ClientIP.ProxyProtocol)
	}
	p, err := pipeline.Build(ctx, cfg, s.shared)
	if err != nil {
		return err
	}
	s.tlsConf.Store(tc)
	waf.SetBufferBudget(int64(cfg.Limits.BodyBufferTotal))
	old := s.pipe.Swap(p)
	observe.Metrics.ConfigInfo.Reset()
	observe.Metrics.ConfigInfo.WithLabelValues(cfg.SHA256).Set(1)
	for _, l := range s.listeners {
		l.SetLimits(limitsOf(cfg))
	}
	if s.conns != nil {
		s.conns.Update(cfg.Limits.Connections)
	}
	if old != nil {
		// In-flight requests hold the old pipeline; idle upstream
		// connections are all it owns that must be let go.
		old.Close()
	}
	return nil
}

// Reload re-reads the config and, if it loads and builds, replaces the
// running one. On error the running config stays and the error is logged.
// The keys RestartOnlyChanges lists take effect on restart only; a reload
// that changes them logs a warning naming them.
func (s *Server) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.Load == nil {
		return errors.New("reload: no config file to re-read")
	}
	cfg, err := s.Load()
	var restartOnly []string
	if err == nil {
		restartOnly = RestartOnlyChanges(s.Config(), cfg)
		err = s.apply(ctx, cfg)
	}
	if err != nil {
		observe.Metrics.ConfigReloads.WithLabelValues("error").Inc()
		observe.Default().Event(slog.LevelError, "reload failed; the running config stays in effect", slog.String("error", err.Error()))
		return err
	}
	observe.Metrics.ConfigReloads.WithLabelValues("ok").Inc()
	observe.Default().Event(slog.LevelInfo, "config reloaded", slog.String("sha256", cfg.SHA256))
	if len(restartOnly) > 0 {
		observe.Default().Event(slog.LevelWarn, "config reloaded, but these changes take effect only when rampart is restarted",
			slog.Any("keys", restartOnly))
	}
	return nil
}

// RestartOnlyChanges lists the keys whose change a reload cannot apply:
// what is bound, opened or dropped once at start (listeners, the admin
// listener and its bounds, logs, the state store, the user, the sandbox,
// the cache directory, and the cache sizes of a site that stays)
// and the limits net/http's servers take at start (header timeout, idle
// timeout, head size). Everything else — sites, routes, TLS certificates
// and policy, the other limits, stages, trusted_proxies — a reload applies.
func RestartOnlyChanges(running, next *config.Config) []string {
	var keys []string
	changed := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	changed("listen", running.ListenAddrs(), next.ListenAddrs())
	changed("admin.listen", running.Admin.Listen, next.Admin.Listen)
	changed("log.access", running.Log.Access, next.Log.Access)
	changed("log.security", running.Log.Security, next.Log.Security)
	changed("state", running.State, next.State)
	changed("user", running.User, next.User)
	changed("group", running.Group, next.Group)
	changed("sandbox", running.Sandbox, next.Sandbox)
	// The caches' disk tier lives where the process started it (and where
	// the sandbox lets it write).
	changed("cache_dir", running.CacheDir, next.CacheDir)
	// A site's cache outlives a reload with the sizes it was made with.
	for i, ns := range next.Sites {
		for _, rs := range running.Sites {
			if rs.Host != ns.Host || !cached(rs) {
				continue
			}
			changed(fmt.Sprintf("sites[%d].cache_size", i), rs.CacheSize, ns.CacheSize)
			changed(fmt.Sprintf("sites[%d].cache_disk_size", i), rs.CacheDiskSize, ns.CacheDiskSize)
			changed(fmt.Sprintf("sites[%d].cache_disk_max_object", i), rs.CacheDiskMaxObject, ns.CacheDiskMaxObject)
		}
	}
	// net/http's servers take these when they start (its header timeout
	// bounds a whole head, its keepalive the idle time, its head limit is
	// the guard's plus 4 KiB); the guard's own checks follow a reload.
	r, n := running.Limits, next.Limits
	changed("limits.read_header_timeout", r.ReadHeaderTimeout, n.ReadHeaderTimeout)
	changed("limits.idle_timeout", r.IdleTimeout, n.IdleTimeout)
	changed("limits.max_header_bytes", r.MaxHeaderBytes, n.MaxHeaderBytes)
	if running.Admin.Listen != "off" {
		// The admin listener's other bounds come from limits too.
		changed("limits.body_read_timeout (admin listener)", r.BodyReadTimeout, n.BodyReadTimeout)
		changed("limits.send_timeout (admin listener)", r.SendTimeout, n.SendTimeout)
	}
	return keys
}

// cached reports whether a site has a cache: a route with the cache on.
func cached(s config.Site) bool {
	for _, r := range s.Routes {
		if r.Cache != nil && r.Cache.Enabled {
			return true
		}
	}
	return false
}

// Config returns the config in effect.
func (s *Server) Config() *config.Config { return s.pipe.Load().Config }

// Addrs returns the bound public listener addresses.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.Addr()
	}
	return out
}

// AdminAddr returns the admin listener's address, or nil.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Serve serves until Shutdown; it returns when all listeners stopped.
func (s *Server) Serve() error {
	var wg sync.WaitGroup
	errs := make(chan error, len(s.listeners)+1)
	for _, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}()
	}
	if s.admin != nil {
		go func() { _ = s.admin.Serve(s.adminLn) }()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Shutdown stops accepting, lets in-flight requests and open WebSockets
// finish until ctx ends, then closes whatever is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if s.admin != nil {
		_ = s.admin.Close()
	}
	// Hijacked connections (WebSockets) are not tracked by net/http.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
wait:
	for s.openConns() > 0 {
		select {
		case <-ctx.Done():
			break wait
		case <-t.C:
		}
	}
	for _, l := range s.listeners {
		l.CloseAll()
	}
	if p := s.pipe.Load(); p != nil {
		p.Close()
	}
	_ = s.shared.Store.Close()
	for _, c := range s.logs {
		_ = c.Close()
	}
	return err
}

func (s *Server) openConns() int {
	n := 0
	for _, l := range s.listeners {
		n += l.Open()
	}
	return n
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		_ = l.Close()
	}
	if s.adminLn != nil {
		_ = s.adminLn.Close()
	}
}
