package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// Policy says what a failover store does while its shared store is down.
type Policy string

const (
	// PolicyLocal keeps answering from a local memory store: limits and
	// bans then hold per proxy instead of across the group.
	PolicyLocal Policy = "local"
	// PolicyDeny returns ErrUnavailable, so that callers refuse requests.
	PolicyDeny Policy = "deny"
)

// Pinger is a Store that can tell whether it is reachable.
type Pinger interface {
	Store
	Ping(ctx context.Context) error
}

// Failover puts a shared store first and a policy behind it. While the
// shared store answers, every call goes to it. The first call that fails
// with ErrUnavailable marks it down (logged once, rampart_state_store_up
// set to 0); from then on calls do not wait on it at all but are answered
// according to the policy, while a background loop pings it with a
// growing backoff. When it answers again, bans recorded locally during the
// outage are copied to it, and calls go back to it (logged once, gauge 1).
type Failover struct {
	primary Pinger
	local   *Memory
	policy  Policy
	name    string

	up      atomic.Bool
	lastErr atomic.Pointer[error]
	down    chan struct{}

	minBackoff, maxBackoff time.Duration

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ Store = (*Failover)(nil)

// FailoverOptions configure NewFailover.
type FailoverOptions struct {
	Policy Policy // PolicyLocal when empty
	Name   string // names the shared store in logs, e.g. the Redis address
	// Local is the store used under PolicyLocal; nil means a fresh memory
	// store with default options.
	Local *Memory
	// MinBackoff and MaxBackoff bound the wait between pings while the
	// shared store is down; zero means 100ms and 2s.
	MinBackoff, MaxBackoff time.Duration
}

// NewFailover wraps primary, which is assumed up until a call fails.
func NewFailover(primary Pinger, o FailoverOptions) *Failover {
	if o.Policy == "" {
		o.Policy = PolicyLocal
	}
	if o.Local == nil {
		o.Local = NewMemory(MemoryOptions{})
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(2*time.Second, o.MinBackoff)
	}
	f := &Failover{
		primary: primary, local: o.Local, policy: o.Policy, name: o.Name,
		down:       make(chan struct{}, 1),
		minBackoff: o.MinBackoff, maxBackoff: o.MaxBackoff,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	f.up.Store(true)
	storeUp.Set(1)
	go f.watch()
	return f
}

// Up reports whether the shared store is in use.
func (f *Failover) Up() bool { return f.up.Load() }

// failed reports whether err means the shared store is unusable, and if so
// marks it down. An error caused by the caller giving up is not the
// store's fault.
func (f *Failover) failed(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || !errors.Is(err, ErrUnavailable) {
		return false
	}
	f.lastErr.Store(&err)
	if f.up.CompareAndSwap(true, false) {
		storeUp.Set(0)
		storeTransitions.WithLabelValues("down").Inc()
		observe.Default().Event(slog.LevelError, "state store unavailable",
			slog.String("store", f.name), slog.String("policy", string(f.policy)),
			slog.String("error", err.Error()))
		select {
		case f.down <- struct{}{}:
		default:
		}
	}
	return true
}

// unavailable is the error returned under PolicyDeny.
func (f *Failover) unavailable() error {
	if p := f.lastErr.Load(); p != nil {
		return fmt.Errorf("state: %s down (policy deny): %w", f.name, *p)
	}
	return fmt.Errorf("state: %s down (policy deny): %w", f.name, ErrUnavailable)
}

func (f *Failover) watch() {
	defer close(f.done)
	for {
		select {
		case <-f.down:
		case <-f.stop:
			return
		}
		wait := f.minBackoff
		for {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-f.stop:
				t.Stop()
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := f.primary.Ping(ctx)
			if err == nil {
				f.restore(ctx)
			}
			cancel()
			if err == nil {
				break
			}
			wait = min(2*wait, f.maxBackoff)
		}
	}
}

// restore copies the bans recorded locally during the outage to the shared
// store and switches back to it.
func (f *Failover) restore(ctx context.Context) {
	copied := 0
	if f.policy == PolicyLocal {
		bans, _ := f.local.Bans(ctx)
		for _, b := range bans {
			if f.primary.Ban(ctx, b) == nil {
				_, _ = f.local.Unban(ctx, b.Key)
				copied++
			}
		}
	}
	f.up.Store(true)
	storeUp.Set(1)
	storeTransitions.WithLabelValues("up").Inc()
	observe.Default().Event(slog.LevelInfo, "state store recovered",
		slog.String("store", f.name), slog.Int("bans_copied", copied))
}

// Allow implements Store.
func (f *Failover) Allow(ctx context.Context, key string, rate float64, burst int) (bool, time.Duration, error) {
	if f.up.Load() {
		ok, wait, err := f.primary.Allow(ctx, key, rate, burst)
		if !f.failed(ctx, err) {
			return ok, wait, err
		}
	}
	if f.policy == PolicyDeny {
		return false, 0, f.unavailable()
	}
	return f.local.Allow(ctx, key, rate, burst)
}

// Hit implements Store.
func (f *Failover) Hit(ctx context.Context, key string, window time.Duration) (int, error) {
	if f.up.Load() {
		n, err := f.primary.Hit(ctx, key, window)
		if !f.failed(ctx, err) {
			return n, err
		}
	}
	if f.policy == PolicyDeny {
		return 0, f.unavailable()
	}
	return f.local.Hit(ctx, key, window)
}

// Reset implements Store.
func (f *Failover) Reset(ctx context.Context, key string) error {
	_ = f.local.Reset(ctx, key)
	if f.up.Load() {
		if err := f.primary.Reset(ctx, key); !f.failed(ctx, err) {
			return err
		}
	}
	if f.policy == PolicyDeny {
		return f.unavailable()
	}
	return nil
}

// Ban implements Store.
func (f *Failover) Ban(ctx context.Context, b Ban) error {
	if f.up.Load() {
		if err := f.primary.Ban(ctx, b); !f.failed(ctx, err) {
			return err
		}
	}
	if f.policy == PolicyDeny {
		return f.unavailable()
	}
	return f.local.Ban(ctx, b)
}

// Banned implements Store.
func (f *Failover) Banned(ctx context.Context, key string) (Ban, bool, error) {
	if f.up.Load() {
		b, ok, err := f.primary.Banned(ctx, key)
		if !f.failed(ctx, err) {
			return b, ok, err
		}
	}
	if f.policy == PolicyDeny {
		return Ban{}, false, f.unavailable()
	}
	return f.local.Banned(ctx, key)
}

// Unban implements Store. It lifts the ban locally too, so that a ban
// recorded during an outage does not come back.
func (f *Failover) Unban(ctx context.Context, key string) (bool, error) {
	local, _ := f.local.Unban(ctx, key)
	if f.up.Load() {
		ok, err := f.primary.Unban(ctx, key)
		if !f.failed(ctx, err) {
			return ok || local, err
		}
	}
	if f.policy == PolicyDeny {
		return local, f.unavailable()
	}
	return local, nil
}

// Bans implements Store.
func (f *Failover) Bans(ctx context.Context) ([]Ban, error) {
	if f.up.Load() {
		bs, err := f.primary.Bans(ctx)
		if !f.failed(ctx, err) {
			return bs, err
		}
	}
	if f.policy == PolicyDeny {
		return nil, f.unavailable()
	}
	return f.local.Bans(ctx)
}

// Close stops the background loop and closes both stores.
func (f *Failover) Close() error {
	f.closeOnce.Do(func() { close(f.stop) })
	<-f.done
	return errors.Join(f.primary.Close(), f.local.Close())
}
