package connguard

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// softTable holds per-client state that may be forgotten: handshake token
// buckets and when a client's refusal was last logged. Forgetting a bucket
// only refills it, so the table evicts instead of refusing.
//
// It is an approximate LRU in two generations: entries live in cur; when
// cur holds half the capacity it becomes prev and a fresh cur starts; a hit
// in prev moves the entry back to cur. The table never holds more than its
// capacity, evicts in O(1) amortised, and a client active within the last
// half-capacity of distinct clients is never forgotten.
type softTable struct {
	mu        sync.Mutex
	cur, prev map[netip.Addr]*softEntry
	half      int
}

type softEntry struct {
	lim     *rate.Limiter
	lastLog time.Time
}

func (t *softTable) init(capacity int) {
	t.half = max(1, capacity/2)
	t.cur = make(map[netip.Addr]*softEntry)
	t.prev = nil
}

// resize changes the capacity; the table shrinks by rotation as clients
// arrive.
func (t *softTable) resize(capacity int) {
	t.mu.Lock()
	t.half = max(1, capacity/2)
	t.mu.Unlock()
}

// entry returns key's entry, creating it; called with t.mu held.
func (t *softTable) entry(key netip.Addr) *softEntry {
	if e, ok := t.cur[key]; ok {
		return e
	}
	e, ok := t.prev[key]
	if ok {
		delete(t.prev, key)
	} else {
		e = &softEntry{}
	}
	t.cur[key] = e
	if len(t.cur) >= t.half {
		t.prev = t.cur
		t.cur = make(map[netip.Addr]*softEntry, len(t.prev))
	}
	return e
}

// limiter returns key's token bucket, creating it full.
func (t *softTable) limiter(key netip.Addr, limit rate.Limit, burst int) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(key)
	if e.lim == nil {
		e.lim = rate.NewLimiter(limit, burst)
	}
	return e.lim
}

// shouldLog reports whether a refusal of key is to be logged now, and if
// so records it.
func (t *softTable) shouldLog(key netip.Addr, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(key)
	if !e.lastLog.IsZero() && now.Sub(e.lastLog) < LogInterval {
		return false
	}
	e.lastLog = now
	return true
}

// setRate gives every bucket a new rate and burst.
func (t *softTable) setRate(limit rate.Limit, burst int, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range []map[netip.Addr]*softEntry{t.cur, t.prev} {
		for _, e := range m {
			if e.lim != nil {
				e.lim.SetLimitAt(now, limit)
				e.lim.SetBurstAt(now, burst)
			}
		}
	}
}

// len returns the number of entries.
func (t *softTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur) + len(t.prev)
}
