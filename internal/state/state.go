// Package state holds what rampart must remember between requests: token
// buckets for rate limits, failure counters for brute-force detection, and
// bans. Everything goes through the small Store interface so that one proxy
// can keep its state in memory and a group of proxies behind a load
// balancer can share it in Redis, where a limit exhausted or a ban set
// through one instance holds on all of them.
//
// The memory store is bounded: each of its tables holds at most a
// configured number of entries and evicts the least recently used one when
// full, so a flood of distinct client addresses costs a fixed amount of
// memory, never an unbounded one.
//
// The Redis store is wrapped in a failover store (see Open) that keeps the
// proxy answering when Redis goes away: either from a local memory store
// (on_store_failure: local) or by reporting ErrUnavailable so that callers
// refuse (on_store_failure: deny), and that returns to Redis on its own
// once Redis answers again.
package state

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Store keeps token buckets, window counters and bans. Keys are opaque
// strings chosen by the caller ("rl:default:203.0.113.7"); bans live in
// their own namespace, keyed "ip:<addr>" or "user:<site>:<name>".
// All methods are safe for concurrent use.
type Store interface {
	// Allow takes one token from the bucket key, which refills at rate
	// tokens per second up to burst. When the bucket is empty it reports
	// false and how long until the next token is there.
	Allow(ctx context.Context, key string, rate float64, burst int) (ok bool, retryAfter time.Duration, err error)
	// Hit counts one event for key and returns the number of events in the
	// current window. A window opens at the first event and lasts window;
	// the count starts again from one after it closes.
	Hit(ctx context.Context, key string, window time.Duration) (int, error)
	// Reset forgets the bucket and the counter of key.
	Reset(ctx context.Context, key string) error

	// Ban records b, replacing any ban with the same key.
	Ban(ctx context.Context, b Ban) error
	// Banned returns the ban on key, if one is in force.
	Banned(ctx context.Context, key string) (Ban, bool, error)
	// Unban lifts the ban on key and reports whether there was one.
	Unban(ctx context.Context, key string) (bool, error)
	// Bans lists the bans in force, soonest to end first.
	Bans(ctx context.Context) ([]Ban, error)

	// Close releases the store's resources.
	Close() error
}

// Ban is one ban. A zero Until means the ban lasts until it is lifted.
type Ban struct {
	Key    string    `json:"key"`
	Reason string    `json:"reason"`
	Until  time.Time `json:"until"`
	Manual bool      `json:"manual"`
}

// Active reports whether the ban is in force at now.
func (b Ban) Active(now time.Time) bool {
	return b.Until.IsZero() || now.Before(b.Until)
}

// ErrUnavailable is returned (wrapped) when the shared store cannot be
// reached and the configured policy is to refuse rather than to fall back
// to local state. Callers answer 503.
var ErrUnavailable = errors.New("state store unavailable")

// ClientKey is the form in which a client address enters keys: the
// address itself for IPv4 (and IPv4-mapped IPv6), and the /64 prefix for
// IPv6, because a single IPv6 subscriber usually holds a whole /64 and
// could otherwise sidestep a limit by changing address. The zero Addr
// gives "unknown".
func ClientKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	u := ClientUnit(a)
	if u.Is4() {
		return u.String()
	}
	return netip.PrefixFrom(u, 64).String()
}

// ClientUnit is ClientKey as an address, for tables keyed by netip.Addr
// (the connection and WebSocket caps): the IPv4 address, or the first
// address of the IPv6 /64.
func ClientUnit(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// IPBanKey is the ban key of a client address: "ip:" + ClientKey(a).
func IPBanKey(a netip.Addr) string { return "ip:" + ClientKey(a) }

// UserBanKey is the ban key of a user name on a site: "user:<site>:<name>".
func UserBanKey(site, name string) string { return "user:" + site + ":" + name }
