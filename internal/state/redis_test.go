package state

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/internal/state/statetest"
)

func newTestRedis(t *testing.T, addr string) *Redis {
	t.Helper()
	r := NewRedis(RedisOptions{Address: addr, Timeout: 100 * time.Millisecond})
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedis_TwoInstancesShareState(t *testing.T) {
	srv := statetest.StartRedis(t)
	a, b := newTestRedis(t, srv.Addr), newTestRedis(t, srv.Addr)
	ctx := context.Background()

	t.Run("a limit exhausted through one instance is exhausted for the other", func(t *testing.T) {
		for i := range 3 {
			ok, _, err := a.Allow(ctx, "rl:login:192.0.2.1", 1, 3)
			if err != nil || !ok {
				t.Fatalf("request %d through A: ok=%v err=%v", i+1, ok, err)
			}
		}
		ok, retry, err := b.Allow(ctx, "rl:login:192.0.2.1", 1, 3)
		if err != nil || ok {
			t.Fatalf("through B: ok=%v err=%v, want refused", ok, err)
		}
		if retry <= 0 || retry > time.Second {
			t.Fatalf("retry after %v, want (0, 1s]", retry)
		}
		if ok, _, _ := b.Allow(ctx, "rl:login:192.0.2.2", 1, 3); !ok {
			t.Fatal("another client was refused")
		}
	})
	t.Run("a bucket refills at the rate", func(t *testing.T) {
		for {
			if ok, _, _ := a.Allow(ctx, "rl:fast:192.0.2.1", 20, 1); !ok {
				break
			}
		}
		time.Sleep(60 * time.Millisecond)
		if ok, _, _ := b.Allow(ctx, "rl:fast:192.0.2.1", 20, 1); !ok {
			t.Fatal("no token after 60ms at 20/s")
		}
	})
	t.Run("counts add up across instances", func(t *testing.T) {
		for i, s := range []Store{a, b, a, b} {
			n, err := s.Hit(ctx, "bf:ip:192.0.2.1", time.Minute)
			if err != nil || n != i+1 {
				t.Fatalf("hit %d: n=%d err=%v", i+1, n, err)
			}
		}
		must(t, b.Reset(ctx, "bf:ip:192.0.2.1"))
		if n, _ := a.Hit(ctx, "bf:ip:192.0.2.1", time.Minute); n != 1 {
			t.Fatalf("after reset: %d", n)
		}
	})
	t.Run("a ban through one instance is seen by the other", func(t *testing.T) {
		until := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		must(t, a.Ban(ctx, Ban{Key: "ip:192.0.2.1", Reason: "brute-force", Until: until}))
		must(t, a.Ban(ctx, Ban{Key: "user:x:bob", Reason: "manual", Manual: true}))
		got, ok, err := b.Banned(ctx, "ip:192.0.2.1")
		if err != nil || !ok || got.Reason != "brute-force" || !got.Until.Equal(until) {
			t.Fatalf("got %+v %v %v", got, ok, err)
		}
		list, err := b.Bans(ctx)
		if err != nil || len(list) != 2 || list[0].Key != "ip:192.0.2.1" || list[1].Key != "user:x:bob" || !list[1].Manual {
			t.Fatalf("list %+v %v", list, err)
		}
		if ok, _ := b.Unban(ctx, "ip:192.0.2.1"); !ok {
			t.Fatal("unban found nothing")
		}
		if _, ok, _ := a.Banned(ctx, "ip:192.0.2.1"); ok {
			t.Fatal("lifted ban still seen")
		}
		if ok, _ := b.Unban(ctx, "ip:192.0.2.1"); ok {
			t.Fatal("second unban found a ban")
		}
	})
}

func TestRedis_KeysExpire(t *testing.T) {
	srv := statetest.StartRedis(t)
	s := newTestRedis(t, srv.Addr)
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	ctx := context.Background()

	_, _, _ = s.Allow(ctx, "rl:default:192.0.2.1", 45, 50)
	_, _ = s.Hit(ctx, "bf:ip:192.0.2.1", 200*time.Millisecond)
	must(t, s.Ban(ctx, Ban{Key: "ip:192.0.2.1", Until: time.Now().Add(300 * time.Millisecond)}))
	must(t, s.Ban(ctx, Ban{Key: "ip:192.0.2.2", Until: time.Now().Add(-time.Second)}))

	for _, k := range []string{"rampart:tb:rl:default:192.0.2.1", "rampart:hit:bf:ip:192.0.2.1", "rampart:ban:ip:192.0.2.1"} {
		ttl, err := raw.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 2*time.Second {
			t.Errorf("%s: ttl %v err %v, want a short positive TTL", k, ttl, err)
		}
	}
	if n, _ := raw.Exists(ctx, "rampart:ban:ip:192.0.2.2").Result(); n != 0 {
		t.Error("a ban that had already ended was stored")
	}
	time.Sleep(350 * time.Millisecond)
	if n, _ := s.Hit(ctx, "bf:ip:192.0.2.1", 200*time.Millisecond); n != 1 {
		t.Errorf("count after the window: %d, want 1", n)
	}
	if _, ok, _ := s.Banned(ctx, "ip:192.0.2.1"); ok {
		t.Error("ban outlived its end")
	}
	if list, _ := s.Bans(ctx); len(list) != 0 {
		t.Errorf("ended bans listed: %+v", list)
	}
	if n, _ := raw.ZCard(ctx, "rampart:bans").Result(); n != 0 {
		t.Errorf("ban index keeps %d ended entries", n)
	}
}

func gauge(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := storeUp.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFailover_LocalPolicyServesThroughAnOutageAndRecovers(t *testing.T) {
	srv := statetest.StartRedis(t)
	f := NewFailover(NewRedis(RedisOptions{Address: srv.Addr}), FailoverOptions{
		Policy: PolicyLocal, Name: "redis " + srv.Addr, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Local: NewMemory(MemoryOptions{SweepInterval: -1}),
	})
	defer f.Close()
	other := newTestRedis(t, srv.Addr)
	ctx := context.Background()

	if ok, _, err := f.Allow(ctx, "rl:default:192.0.2.1", 45, 50); !ok || err != nil {
		t.Fatalf("with redis up: ok=%v err=%v", ok, err)
	}
	if !f.Up() || gauge(t) != 1 {
		t.Fatal("not up at start")
	}

	srv.Stop()
	start := time.Now()
	ok, _, err := f.Allow(ctx, "rl:default:192.0.2.1", 45, 50)
	if !ok || err != nil {
		t.Fatalf("first request after redis died: ok=%v err=%v, want served locally", ok, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the request that found redis dead took %v", d)
	}
	if f.Up() || gauge(t) != 0 {
		t.Fatal("still marked up after a failure")
	}
	start = time.Now()
	for range 100 {
		if ok, _, err := f.Allow(ctx, "rl:other:192.0.2.1", 1000, 1000); !ok || err != nil {
			t.Fatalf("while down: ok=%v err=%v", ok, err)
		}
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("100 requests while redis is down took %v; they must not wait on it", d)
	}
	must(t, f.Ban(ctx, Ban{Key: "ip:192.0.2.66", Reason: "brute-force", Until: time.Now().Add(time.Hour)}))
	if _, ok, err := f.Banned(ctx, "ip:192.0.2.66"); !ok || err != nil {
		t.Fatalf("local ban not seen: %v %v", ok, err)
	}

	srv.Start()
	waitFor(t, "recovery", f.Up)
	if gauge(t) != 1 {
		t.Fatal("gauge not back to 1")
	}
	if _, ok, err := other.Banned(ctx, "ip:192.0.2.66"); !ok || err != nil {
		t.Fatalf("ban recorded during the outage was not copied to redis: %v %v", ok, err)
	}
	for range 3 {
		_, _ = f.Hit(ctx, "bf:ip:192.0.2.1", time.Minute)
	}
	if n, _ := other.Hit(ctx, "bf:ip:192.0.2.1", time.Minute); n != 4 {
		t.Fatalf("after recovery the count in redis is %d, want 4", n)
	}
}

func TestFailover_DenyPolicyReportsUnavailable(t *testing.T) {
	srv := statetest.StartRedis(t)
	f := NewFailover(NewRedis(RedisOptions{Address: srv.Addr}), FailoverOptions{
		Policy: PolicyDeny, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	defer f.Close()
	ctx := context.Background()
	srv.Stop()
	checks := []struct {
		name string
		call func() error
	}{
		{"Allow", func() error { _, _, err := f.Allow(ctx, "k", 1, 1); return err }},
		{"Hit", func() error { _, err := f.Hit(ctx, "k", time.Second); return err }},
		{"Banned", func() error { _, _, err := f.Banned(ctx, "ip:192.0.2.1"); return err }},
		{"Ban", func() error { return f.Ban(ctx, Ban{Key: "ip:192.0.2.1"}) }},
		{"Bans", func() error { _, err := f.Bans(ctx); return err }},
	}
	for _, c := range checks {
		if err := c.call(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s while redis is down: err=%v, want ErrUnavailable", c.name, err)
		}
	}
	srv.Start()
	waitFor(t, "recovery", f.Up)
	if _, _, err := f.Allow(ctx, "k", 1, 1); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestFailover_UnreachableAtStartDoesNotStall(t *testing.T) {
	// A port nobody listens on: connection refused at once.
	srv := statetest.StartRedis(t)
	srv.Stop()
	s, err := Open(Config{Store: "redis", Redis: RedisConfig{Address: srv.Addr}, OnStoreFailure: PolicyLocal})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	for range 100 {
		if ok, _, err := s.Allow(context.Background(), "k", 100, 100); !ok || err != nil {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("100 requests took %v with redis down from the start", d)
	}
}

func TestRedis_CallerCancellationIsNotAnOutage(t *testing.T) {
	srv := statetest.StartRedis(t)
	f := NewFailover(NewRedis(RedisOptions{Address: srv.Addr}), FailoverOptions{})
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.Allow(ctx, "k", 1, 1); err == nil {
		t.Fatal("a cancelled call succeeded")
	}
	if !f.Up() {
		t.Fatal("a caller giving up marked redis down")
	}
}

// BenchmarkRedis_Allow is one token-bucket script call over loopback.
func BenchmarkRedis_Allow(b *testing.B) {
	srv := statetest.StartRedis(b)
	r := NewRedis(RedisOptions{Address: srv.Addr})
	defer r.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Allow(ctx, "rl:default:192.0.2.1", 1e6, 1e6); err != nil {
			b.Fatal(err)
		}
	}
}
