// Package bruteforce is pipeline stage 7: it refuses banned clients and
// user names before anything else is done for them, and bans those that
// fail to log in too often.
//
// A failure is an upstream answer with one of the configured statuses
// (401 by default) on a counted route. Failures are counted per client
// address and, when the site says where to find it, per user name. The
// Nth failure within the window bans the client address (on every site
// sharing the store) or the user name (on this site, from any address) for
// the ban duration; from then on each request is refused with ban_status
// before it reaches the upstream. Clients in the exempt ranges are banned
// like everyone else: exemption is from rate limits only.
//
// State lives in a state.Store, so with Redis a ban set through one proxy
// holds on all. Bans are listed, set and lifted through AdminHandler and
// the `rampart bans` command (RunCLI).
package bruteforce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
	"github.com/rampart-proxy/rampart/internal/state"
)

// Stage is the stage name of ban refusals and ban events.
const Stage = "ban"

// Guard enforces one site's brute-force policy.
type Guard struct {
	site     string
	cfg      Config
	store    state.Store
	failures map[int]bool
	routes   []string
	syslog   *syslogSender
	now      func() time.Time
}

// New returns the guard for site (its configured host), with cfg's unset
// fields given their defaults.
func New(site string, cfg Config, store state.Store) (*Guard, error) {
	if store == nil {
		return nil, errors.New("bruteforce: no state store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	g := &Guard{
		site: strings.ToLower(site), cfg: cfg, store: store,
		failures: make(map[int]bool, len(cfg.Statuses)),
		routes:   cfg.Routes,
		now:      time.Now,
	}
	for _, s := range cfg.Statuses {
		g.failures[s] = true
	}
	if cfg.Syslog.Address != "" {
		g.syslog = newSyslogSender(cfg.Syslog)
	}
	return g, nil
}

// Handler checks bans, then passes the request to next and counts its
// answer.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := reqinfo.Of(r)
		client := info.ClientAddr(r)
		ctx := r.Context()
		if g.refuseIfBanned(ctx, w, r, state.IPBanKey(client)) {
			return
		}
		counted := g.counts(r, info)
		name := g.username(r, counted)
		var userKey string
		if name != "" {
			info.Username = name
			userKey = normalizeUser(name)
			if g.refuseIfBanned(ctx, w, r, state.UserBanKey(g.site, userKey)) {
				return
			}
		}
		if !counted {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if g.failures[sw.status] && !info.NoCredentials {
			g.fail(context.WithoutCancel(ctx), r, client, userKey)
		}
	})
}

// refuseIfBanned answers r with the ban status if key is banned, or with
// 503 if that cannot be known, and reports whether it answered.
func (g *Guard) refuseIfBanned(ctx context.Context, w http.ResponseWriter, r *http.Request, key string) bool {
	b, banned, err := g.store.Banned(ctx, key)
	if err != nil {
		if ctx.Err() != nil {
			// The client went away while we asked; not a security event.
			observe.WriteError(w, r, http.StatusServiceUnavailable)
			return true
		}
		observe.Refuse(w, r, http.StatusServiceUnavailable, Stage, "store-unavailable", slog.String("error", err.Error()))
		return true
	}
	if !banned {
		return false
	}
	attrs := []slog.Attr{slog.String("ban", b.Key), slog.String("ban_reason", b.Reason)}
	if !b.Until.IsZero() {
		attrs = append(attrs, slog.Time("until", b.Until))
	}
	observe.Refuse(w, r, g.cfg.BanStatus, Stage, "banned", attrs...)
	return true
}

// counts reports whether failures on this request's route are counted.
// A configured route matches the route pattern that selected the request
// (exact:/api/login), or the path itself: exactly, or as a prefix when it
// ends in "/".
func (g *Guard) counts(r *http.Request, info *reqinfo.Info) bool {
	if len(g.routes) == 0 {
		return true
	}
	path := info.Path
	if path == "" {
		path = r.URL.Path
	}
	for _, rt := range g.routes {
		if rt == path || rt == info.Route || (strings.HasSuffix(rt, "/") && strings.HasPrefix(path, rt)) {
			return true
		}
	}
	return false
}

// fail counts one failed login and bans what reached the threshold.
func (g *Guard) fail(ctx context.Context, r *http.Request, client netip.Addr, userKey string) {
	failuresTotal.Inc()
	ck := state.ClientKey(client)
	if n, err := g.store.Hit(ctx, "bf:ip:"+ck, g.cfg.Window.D()); err == nil && n >= g.cfg.Failures {
		g.ban(ctx, r, state.IPBanKey(client), "ip", "bf:ip:"+ck, n)
	}
	if userKey != "" {
		counter := "bf:user:" + g.site + ":" + userKey
		if n, err := g.store.Hit(ctx, counter, g.cfg.Window.D()); err == nil && n >= g.cfg.Failures {
			g.ban(ctx, r, state.UserBanKey(g.site, userKey), "user", counter, n)
		}
	}
}

func (g *Guard) ban(ctx context.Context, r *http.Request, key, kind, counter string, failures int) {
	until := g.now().Add(g.cfg.Ban.D())
	if err := g.store.Ban(ctx, state.Ban{Key: key, Reason: "brute-force", Until: until}); err != nil {
		observe.Default().Event(slog.LevelError, "ban not recorded",
			slog.String("ban", key), slog.String("error", err.Error()))
		return
	}
	_ = g.store.Reset(ctx, counter)
	bansTotal.WithLabelValues(kind).Inc()
	observe.Default().Security(r, Stage, "brute-force",
		slog.String("ban", key), slog.String("site", g.site), slog.Int("failures", failures),
		slog.Duration("window", g.cfg.Window.D()), slog.Time("until", until))
	if g.syslog != nil {
		info := reqinfo.Of(r)
		g.syslog.notify("ban", []sdParam{
			{"key", key}, {"kind", kind}, {"reason", "brute-force"}, {"site", g.site},
			{"client", state.ClientKey(info.ClientAddr(r))}, {"failures", strconv.Itoa(failures)},
			{"window", g.cfg.Window.String()}, {"until", until.UTC().Format(time.RFC3339)},
			{"request_id", info.ID},
		}, fmt.Sprintf("banned %s for %s after %d failed logins", key, g.cfg.Ban, failures))
	}
}

// statusWriter records the final status the upstream wrote. It passes
// Flush and Hijack through (and Unwrap for http.ResponseController), so
// streaming responses and protocol upgrades keep working.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
