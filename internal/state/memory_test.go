package state

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestMemory(t testing.TB, max int, c *clock) *Memory {
	m := NewMemory(MemoryOptions{MaxEntries: max, SweepInterval: -1, Now: c.Now})
	t.Cleanup(func() { m.Close() })
	return m
}

func TestMemory_TokenBucket(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []struct {
			advance time.Duration
			ok      bool
			retry   time.Duration
		}
	}{
		{
			name: "a full bucket allows burst requests then refuses with the time to the next token",
			rate: 10, burst: 3,
			steps: []struct {
				advance time.Duration
				ok      bool
				retry   time.Duration
			}{{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, false, 100 * time.Millisecond}},
		},
		{
			name: "tokens come back at the configured rate",
			rate: 2, burst: 1,
			steps: []struct {
				advance time.Duration
				ok      bool
				retry   time.Duration
			}{{0, true, 0}, {0, false, 500 * time.Millisecond}, {250 * time.Millisecond, false, 250 * time.Millisecond}, {250 * time.Millisecond, true, 0}},
		},
		{
			name: "a long pause refills no more than the burst",
			rate: 100, burst: 2,
			steps: []struct {
				advance time.Duration
				ok      bool
				retry   time.Duration
			}{{0, true, 0}, {0, true, 0}, {time.Hour, true, 0}, {0, true, 0}, {0, false, 10 * time.Millisecond}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			m := newTestMemory(t, 1000, c)
			for i, s := range tt.steps {
				c.Advance(s.advance)
				ok, retry, err := m.Allow(ctx, "k", tt.rate, tt.burst)
				if err != nil {
					t.Fatal(err)
				}
				if ok != s.ok || retry != s.retry {
					t.Fatalf("step %d: got ok=%v retry=%v, want ok=%v retry=%v", i, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestMemory_RejectsInvalidBucketParameters(t *testing.T) {
	m := newTestMemory(t, 10, newClock())
	for _, p := range []struct {
		rate  float64
		burst int
	}{{0, 1}, {-1, 1}, {1, 0}} {
		if _, _, err := m.Allow(context.Background(), "k", p.rate, p.burst); err == nil {
			t.Errorf("rate %v burst %d: want an error", p.rate, p.burst)
		}
	}
}

func TestMemory_Hit(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := newTestMemory(t, 100, c)
	tests := []struct {
		name    string
		advance time.Duration
		key     string
		want    int
	}{
		{"the first event opens a window", 0, "a", 1},
		{"events inside the window add up", 10 * time.Second, "a", 2},
		{"keys count separately", 0, "b", 1},
		{"still inside the window", 19 * time.Second, "a", 3},
		{"the window closes window after its first event", time.Second, "a", 1},
		{"the new window counts again", time.Second, "a", 2},
	}
	for _, tt := range tests {
		c.Advance(tt.advance)
		n, err := m.Hit(ctx, tt.key, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if n != tt.want {
			t.Fatalf("%s: got %d, want %d", tt.name, n, tt.want)
		}
	}
	if err := m.Reset(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Hit(ctx, "a", 30*time.Second); n != 1 {
		t.Fatalf("after Reset: got %d, want 1", n)
	}
}

func TestMemory_Bans(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := newTestMemory(t, 100, c)
	now := c.Now()
	must(t, m.Ban(ctx, Ban{Key: "ip:192.0.2.1", Reason: "brute-force", Until: now.Add(time.Minute)}))
	must(t, m.Ban(ctx, Ban{Key: "ip:192.0.2.2", Reason: "manual", Until: now.Add(10 * time.Second), Manual: true}))
	must(t, m.Ban(ctx, Ban{Key: "user:a:bob", Reason: "forever"}))

	t.Run("a ban is seen with its reason", func(t *testing.T) {
		b, ok, err := m.Banned(ctx, "ip:192.0.2.1")
		if err != nil || !ok || b.Reason != "brute-force" {
			t.Fatalf("got %+v %v %v", b, ok, err)
		}
	})
	t.Run("an unknown key is not banned", func(t *testing.T) {
		if _, ok, _ := m.Banned(ctx, "ip:192.0.2.9"); ok {
			t.Fatal("banned")
		}
	})
	t.Run("bans are listed soonest to end first and permanent last", func(t *testing.T) {
		bs, _ := m.Bans(ctx)
		if len(bs) != 3 || bs[0].Key != "ip:192.0.2.2" || bs[1].Key != "ip:192.0.2.1" || bs[2].Key != "user:a:bob" {
			t.Fatalf("got %+v", bs)
		}
	})
	t.Run("a ban ends at its Until", func(t *testing.T) {
		c.Advance(10 * time.Second)
		if _, ok, _ := m.Banned(ctx, "ip:192.0.2.2"); ok {
			t.Fatal("still banned")
		}
		if bs, _ := m.Bans(ctx); len(bs) != 2 {
			t.Fatalf("got %+v", bs)
		}
	})
	t.Run("unban lifts a ban once", func(t *testing.T) {
		if ok, _ := m.Unban(ctx, "ip:192.0.2.1"); !ok {
			t.Fatal("unban reported no ban")
		}
		if ok, _ := m.Unban(ctx, "ip:192.0.2.1"); ok {
			t.Fatal("second unban reported a ban")
		}
		if _, ok, _ := m.Banned(ctx, "ip:192.0.2.1"); ok {
			t.Fatal("still banned")
		}
	})
	t.Run("a permanent ban outlasts any time", func(t *testing.T) {
		c.Advance(24 * 365 * time.Hour)
		if _, ok, _ := m.Banned(ctx, "user:a:bob"); !ok {
			t.Fatal("permanent ban ended")
		}
	})
}

func TestMemory_SweepCollectsDeadEntries(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := newTestMemory(t, 1000, c)
	for i := range 100 {
		k := strconv.Itoa(i)
		_, _, _ = m.Allow(ctx, k, 10, 5)
		_, _ = m.Hit(ctx, k, time.Second)
		must(t, m.Ban(ctx, Ban{Key: k, Until: c.Now().Add(time.Second)}))
	}
	must(t, m.Ban(ctx, Ban{Key: "forever"}))
	if b, w, bn := m.Len(); b != 100 || w != 100 || bn != 101 {
		t.Fatalf("before sweep: %d %d %d", b, w, bn)
	}
	c.Advance(2 * time.Second)
	m.Sweep()
	if b, w, bn := m.Len(); b != 0 || w != 0 || bn != 1 {
		t.Fatalf("after sweep: %d %d %d, want 0 0 1", b, w, bn)
	}
}

func TestMemory_EvictionKeepsManualBans(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := newTestMemory(t, 10, c)
	must(t, m.Ban(ctx, Ban{Key: "manual", Manual: true}))
	for i := range 1000 {
		must(t, m.Ban(ctx, Ban{Key: "auto" + strconv.Itoa(i)}))
	}
	if _, ok, _ := m.Banned(ctx, "manual"); !ok {
		t.Fatal("a flood of automatic bans evicted the manual one")
	}
	if _, _, n := m.Len(); n != 10 {
		t.Fatalf("ban table holds %d, want 10", n)
	}
}

// TestMemory_FloodOfDistinctKeysStaysBounded is the memory-exhaustion
// guarantee: however many distinct clients appear, each table holds at most
// MaxEntries entries and the heap stays flat.
func TestMemory_FloodOfDistinctKeysStaysBounded(t *testing.T) {
	const maxEntries = 100_000
	n := 10_000_000
	switch {
	case raceEnabled: // the race detector makes each call ~10x slower
		n = 1_000_000
	case testing.Short():
		n = 2_000_000
	}
	ctx := context.Background()
	m := NewMemory(MemoryOptions{MaxEntries: maxEntries, SweepInterval: -1})
	defer m.Close()

	var before, after runtime.MemStats
	// Warm up to the cap so that the measurement is of the flood, not of
	// the tables reaching their working size.
	buf := make([]byte, 0, 32)
	key := func(i int) string {
		buf = strconv.AppendInt(append(buf[:0], "rl:default:"...), int64(i), 10)
		return unsafe.String(&buf[0], len(buf))
	}
	start := time.Now()
	for i := range maxEntries {
		_, _, _ = m.Allow(ctx, key(i), 45, 50)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := maxEntries; i < n; i++ {
		_, _, _ = m.Allow(ctx, key(i), 45, 50)
		if i%500_000 == 0 {
			if b, _, _ := m.Len(); b > maxEntries {
				t.Fatalf("after %d keys the bucket table holds %d > %d", i, b, maxEntries)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b, _, _ := m.Len()
	if b > maxEntries {
		t.Fatalf("bucket table holds %d > %d", b, maxEntries)
	}
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d distinct keys in %v; table %d entries; heap %d MiB -> %d MiB",
		n, time.Since(start).Round(time.Millisecond), b, before.HeapAlloc>>20, after.HeapAlloc>>20)
	if growth > 8<<20 {
		t.Fatalf("heap grew by %d bytes during the flood; want it flat", growth)
	}
	if after.HeapAlloc > 64<<20 {
		t.Fatalf("heap is %d bytes with %d entries; want < 64 MiB", after.HeapAlloc, b)
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var a = mustAddr(tt.in)
			if got := ClientKey(a); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkMemory_Allow(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{SweepInterval: -1})
	defer m.Close()
	_, _, _ = m.Allow(ctx, "rl:default:203.0.113.7", 1e9, 1<<30)
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = m.Allow(ctx, "rl:default:203.0.113.7", 1e9, 1<<30)
	}
}

func BenchmarkMemory_AllowParallel(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{SweepInterval: -1})
	defer m.Close()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "rl:default:10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _, _ = m.Allow(ctx, keys[i&1023], 1e9, 1<<30)
			i++
		}
	})
}

func BenchmarkMemory_Hit(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{SweepInterval: -1})
	defer m.Close()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = m.Hit(ctx, "bf:ip:203.0.113.7", time.Hour)
	}
}

func BenchmarkMemory_Banned(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{SweepInterval: -1})
	defer m.Close()
	_ = m.Ban(ctx, Ban{Key: "ip:203.0.113.7", Until: time.Now().Add(time.Hour)})
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = m.Banned(ctx, "ip:203.0.113.7")
		_, _, _ = m.Banned(ctx, "ip:203.0.113.8")
	}
}

// BenchmarkMemory_BytesPerClient reports the heap cost of one tracked
// client in the bucket table (B/client), measured over 100k clients.
func BenchmarkMemory_BytesPerClient(b *testing.B) {
	const clients = 100_000
	ctx := context.Background()
	keys := make([]string, clients)
	for i := range keys {
		keys[i] = "rl:default:" + strconv.Itoa(i)
	}
	var perClient float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := NewMemory(MemoryOptions{MaxEntries: clients, SweepInterval: -1})
		for _, k := range keys {
			_, _, _ = m.Allow(ctx, k, 45, 50)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perClient = float64(after.HeapAlloc-before.HeapAlloc) / clients
		runtime.KeepAlive(m)
		m.Close()
	}
	b.ReportMetric(perClient, "B/client")
}

// BenchmarkMemory_AllowNewKeys is the flood path: every call is a client
// never seen before, in a table already at its cap, so each one evicts.
func BenchmarkMemory_AllowNewKeys(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{MaxEntries: DefaultMaxEntries, SweepInterval: -1})
	defer m.Close()
	buf := make([]byte, 0, 32)
	key := func(i int) string {
		buf = strconv.AppendInt(append(buf[:0], "rl:default:"...), int64(i), 10)
		return unsafe.String(&buf[0], len(buf))
	}
	for i := range DefaultMaxEntries {
		_, _, _ = m.Allow(ctx, key(i), 45, 50)
	}
	i := DefaultMaxEntries
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = m.Allow(ctx, key(i), 45, 50)
		i++
	}
}
