package state

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// DefaultMaxEntries is the default bound on each table of the memory store.
const DefaultMaxEntries = 100_000

// MemoryOptions tune the memory store. The zero value is usable.
type MemoryOptions struct {
	// MaxEntries bounds each of the three tables (buckets, counters,
	// bans). Zero means DefaultMaxEntries.
	MaxEntries int
	// SweepInterval is how often dead entries are collected. Zero means
	// 30s; a negative value disables the collector (entries then only go
	// when they are evicted or looked up after they died).
	SweepInterval time.Duration
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Memory is the in-process Store. Its tables are bounded (see
// MemoryOptions.MaxEntries): when one is full, the least recently used
// entry makes room. Losing a bucket or a counter that way only forgets
// some history of a client that has been quiet longer than all the others;
// bans are evicted only after the non-manual ones among the oldest.
type Memory struct {
	clock   func() time.Time // set by tests; nil means the process clock
	base    time.Time        // wall and monotonic reading at creation
	buckets *table[bucket]
	windows *table[window]
	bans    *table[Ban]

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last refill
}

type window struct {
	count int
}

var _ Store = (*Memory)(nil)

// nowNano returns the time in unix nanoseconds. It reads only the
// monotonic clock, which costs half of time.Now on virtual machines.
func (m *Memory) nowNano() int64 {
	if m.clock != nil {
		return m.clock().UnixNano()
	}
	return m.base.UnixNano() + int64(time.Since(m.base))
}

// NewMemory returns a memory store. Close stops its collector.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = 30 * time.Second
	}
	m := &Memory{
		clock:   o.Now,
		base:    time.Now(),
		buckets: newTable[bucket](o.MaxEntries),
		windows: newTable[window](o.MaxEntries),
		bans:    newTable[Ban](o.MaxEntries),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if o.SweepInterval > 0 {
		go m.collect(o.SweepInterval)
	} else {
		close(m.done)
	}
	return m
}

func (m *Memory) collect(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.Sweep()
		case <-m.stop:
			return
		}
	}
}

// Sweep removes every dead entry now, instead of waiting for the collector.
func (m *Memory) Sweep() {
	now := m.nowNano()
	m.buckets.sweep(now)
	m.windows.sweep(now)
	m.bans.sweep(now)
}

// Len returns how many entries each table holds.
func (m *Memory) Len() (buckets, counters, bans int) {
	return m.buckets.len(), m.windows.len(), m.bans.len()
}

// Allow implements Store.
func (m *Memory) Allow(_ context.Context, key string, rate float64, burst int) (bool, time.Duration, error) {
	if !(rate > 0) || burst < 1 || math.IsInf(rate, 0) {
		return false, 0, fmt.Errorf("state: invalid token bucket rate %v burst %d", rate, burst)
	}
	now := m.nowNano()
	h := m.buckets.hash(key)
	s := m.buckets.shardOf(h)
	s.mu.Lock()
	n := s.get(h)
	if n == nil || (n.exp != 0 && n.exp <= now) {
		// A bucket that has refilled completely is the same as no bucket.
		if n == nil {
			n = s.insert(h, nil)
		}
		n.val = bucket{tokens: float64(burst), last: now}
	}
	b := &n.val
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+float64(elapsed)*rate/1e9)
		b.last = now
	}
	ok := b.tokens >= 1
	var wait time.Duration
	if ok {
		b.tokens--
	} else {
		wait = time.Duration(math.Ceil((1 - b.tokens) / rate * 1e9))
	}
	n.exp = now + int64(math.Ceil((float64(burst)-b.tokens)/rate*1e9))
	if n.exp <= now {
		n.exp = now + 1
	}
	s.mu.Unlock()
	return ok, wait, nil
}

// Hit implements Store.
func (m *Memory) Hit(_ context.Context, key string, win time.Duration) (int, error) {
	if win <= 0 {
		return 0, fmt.Errorf("state: invalid window %v", win)
	}
	now := m.nowNano()
	h := m.windows.hash(key)
	s := m.windows.shardOf(h)
	s.mu.Lock()
	n := s.get(h)
	if n == nil {
		n = s.insert(h, nil)
	}
	if n.exp == 0 || n.exp <= now {
		n.val.count = 0
		n.exp = now + int64(win)
	}
	n.val.count++
	c := n.val.count
	s.mu.Unlock()
	return c, nil
}

// Reset implements Store.
func (m *Memory) Reset(_ context.Context, key string) error {
	m.buckets.remove(key)
	m.windows.remove(key)
	return nil
}

func notManual(b *Ban) bool { return !b.Manual }

// Ban implements Store.
func (m *Memory) Ban(_ context.Context, b Ban) error {
	if b.Key == "" {
		return fmt.Errorf("state: ban without a key")
	}
	h := m.bans.hash(b.Key)
	s := m.bans.shardOf(h)
	s.mu.Lock()
	n := s.get(h)
	if n == nil {
		n = s.insert(h, notManual)
	}
	n.val = b
	n.exp = 0
	if !b.Until.IsZero() {
		n.exp = b.Until.UnixNano()
	}
	s.mu.Unlock()
	return nil
}

// Banned implements Store.
func (m *Memory) Banned(_ context.Context, key string) (Ban, bool, error) {
	now := m.nowNano()
	h := m.bans.hash(key)
	s := m.bans.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(h)
	if i == nilNode {
		return Ban{}, false, nil
	}
	n := &s.nodes[i]
	if n.val.Key != key {
		return Ban{}, false, nil
	}
	if n.exp != 0 && n.exp <= now {
		s.remove(i)
		return Ban{}, false, nil
	}
	s.moveToFront(i)
	return n.val, true, nil
}

// Unban implements Store.
func (m *Memory) Unban(_ context.Context, key string) (bool, error) {
	now := m.nowNano()
	h := m.bans.hash(key)
	s := m.bans.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(h)
	if i == nilNode || s.nodes[i].val.Key != key {
		return false, nil
	}
	alive := s.nodes[i].exp == 0 || s.nodes[i].exp > now
	s.remove(i)
	return alive, nil
}

// Bans implements Store.
func (m *Memory) Bans(context.Context) ([]Ban, error) {
	var out []Ban
	m.bans.each(m.nowNano(), func(b *Ban) { out = append(out, *b) })
	sortBans(out)
	return out, nil
}

// sortBans orders bans soonest to end first, permanent ones last.
func sortBans(bs []Ban) {
	sort.SliceStable(bs, func(i, j int) bool {
		a, b := bs[i].Until, bs[j].Until
		switch {
		case a.IsZero() != b.IsZero():
			return b.IsZero()
		case !a.Equal(b):
			return a.Before(b)
		}
		return bs[i].Key < bs[j].Key
	})
}

// Close stops the collector.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}
