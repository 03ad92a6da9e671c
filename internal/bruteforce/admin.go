package bruteforce

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/state"
)

// BanView is a ban as the admin API shows it.
type BanView struct {
	Key       string     `json:"key"`
	Reason    string     `json:"reason"`
	Until     *time.Time `json:"until,omitempty"`     // absent for a ban without end
	Remaining string     `json:"remaining,omitempty"` // e.g. "29m12s"
	Manual    bool       `json:"manual"`
}

// BanRequest is the body of POST /bans. Either Key ("ip:203.0.113.7",
// "user:<site>:<name>") or IP is given.
type BanRequest struct {
	Key      string `json:"key,omitempty"`
	IP       string `json:"ip,omitempty"`
	Duration string `json:"duration"`
	Reason   string `json:"reason,omitempty"`
}

const (
	maxManualBan   = 366 * 24 * time.Hour
	maxAdminBody   = 4 << 10
	maxReasonBytes = 200
)

// AdminHandler serves the ban API on the admin listener:
//
//	GET    /bans         the bans in force, as a JSON array of BanView
//	POST   /bans         set a ban: {"ip":"203.0.113.7","duration":"1h","reason":"..."}
//	                     or {"key":"user:<site>:<name>","duration":"1h"}
//	DELETE /bans/{key}   lift a ban; key is "ip:<addr>", "user:<site>:<name>" or a bare address
//
// It must only be reachable from the admin network.
func AdminHandler(store state.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bans", func(w http.ResponseWriter, r *http.Request) {
		bans, err := store.Bans(r.Context())
		if err != nil {
			writeJSONError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		now := time.Now()
		out := make([]BanView, 0, len(bans))
		for _, b := range bans {
			out = append(out, view(b, now))
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /bans", func(w http.ResponseWriter, r *http.Request) {
		var req BanRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSONError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
			return
		}
		b, err := req.ban(time.Now())
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := store.Ban(r.Context(), b); err != nil {
			writeJSONError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		bansTotal.WithLabelValues("manual").Inc()
		observe.Default().Event(slog.LevelWarn, "manual ban",
			slog.String("ban", b.Key), slog.String("ban_reason", b.Reason), slog.Time("until", b.Until),
			slog.String("admin", r.RemoteAddr))
		writeJSON(w, http.StatusCreated, view(b, time.Now()))
	})
	mux.HandleFunc("DELETE /bans/{key...}", func(w http.ResponseWriter, r *http.Request) {
		key, err := NormalizeKey(r.PathValue("key"))
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		ok, err := store.Unban(r.Context(), key)
		if err != nil {
			writeJSONError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if !ok {
			writeJSONError(w, http.StatusNotFound, "no ban on "+key)
			return
		}
		observe.Default().Event(slog.LevelWarn, "ban lifted", slog.String("ban", key), slog.String("admin", r.RemoteAddr))
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func view(b state.Ban, now time.Time) BanView {
	v := BanView{Key: b.Key, Reason: b.Reason, Manual: b.Manual}
	if !b.Until.IsZero() {
		u := b.Until.UTC()
		v.Until = &u
		v.Remaining = b.Until.Sub(now).Round(time.Second).String()
	}
	return v
}

// ban validates the request and returns the ban it asks for.
func (req BanRequest) ban(now time.Time) (state.Ban, error) {
	var raw string
	switch {
	case req.Key != "" && req.IP != "":
		return state.Ban{}, errors.New(`give "key" or "ip", not both`)
	case req.Key != "":
		raw = req.Key
	case req.IP != "":
		if _, err := netip.ParseAddr(req.IP); err != nil {
			return state.Ban{}, fmt.Errorf("ip %q is not an IP address", req.IP)
		}
		raw = req.IP
	default:
		return state.Ban{}, errors.New(`give "key" (ip:ADDR or user:SITE:NAME) or "ip"`)
	}
	key, err := NormalizeKey(raw)
	if err != nil {
		return state.Ban{}, err
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil || d <= 0 || d > maxManualBan {
		return state.Ban{}, fmt.Errorf("duration %q: give a positive duration up to 8784h, e.g. 30m, 1h, 24h", req.Duration)
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "manual"
	}
	if len(reason) > maxReasonBytes {
		reason = clip(reason[:maxReasonBytes])
	}
	return state.Ban{Key: key, Reason: reason, Until: now.Add(d), Manual: true}, nil
}

// NormalizeKey turns what an operator types into a ban key: a bare address
// or "ip:<addr>" becomes "ip:" + state.ClientKey(addr) (so an IPv6
// address names its /64, as the automatic bans do), "ip:<v6>/64" is kept,
// and "user:<site>:<name>" is case-folded as automatic user bans are.
func NormalizeKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "user:"):
		site, name, ok := strings.Cut(strings.TrimPrefix(s, "user:"), ":")
		if !ok || site == "" || name == "" {
			return "", fmt.Errorf("key %q: a user ban key is user:<site>:<name>", s)
		}
		return state.UserBanKey(strings.ToLower(site), normalizeUser(clip(name))), nil
	case strings.HasPrefix(s, "ip:"):
		s = strings.TrimPrefix(s, "ip:")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return state.IPBanKey(a), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() == 64 {
		return state.IPBanKey(p.Addr()), nil
	}
	return "", fmt.Errorf("key %q: give an IP address, ip:<addr>, ip:<IPv6 /64> or user:<site>:<name>", s)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
