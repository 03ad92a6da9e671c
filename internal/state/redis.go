package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisOptions configure the Redis store.
type RedisOptions struct {
	Address  string        // host:port
	Password string        // empty for none
	DB       int           // database number
	Timeout  time.Duration // dial, read and write timeout; zero means 100ms
	Prefix   string        // key prefix; empty means "rampart:"
}

// Redis is the shared Store: every proxy pointed at the same Redis sees the
// same buckets, counters and bans. Buckets and counters are updated by Lua
// scripts, so concurrent proxies never lose an update, and the bucket
// script reads the Redis clock, so proxies whose clocks drift still agree.
// Every key carries a TTL, so Redis holds only what is still relevant.
//
// Keys (with the default prefix):
//
//	rampart:tb:<key>    token bucket (hash: t = tokens, ts = µs of last refill)
//	rampart:hit:<key>   window counter (integer, TTL = rest of the window)
//	rampart:ban:<key>   ban (JSON, TTL = rest of the ban)
//	rampart:bans        index of bans (sorted set, score = end in ms)
//
// Timeouts are short and commands are never retried: a Redis that does not
// answer must cost a request a few milliseconds, not seconds. Wrap it with
// NewFailover (as Open does) to decide what happens then.
type Redis struct {
	c       *redis.Client
	prefix  string
	timeout time.Duration
}

var _ Store = (*Redis)(nil)

// quietLogger drops go-redis's own log lines: the failover wrapper reports
// each change of the store's health once, as a structured event, instead
// of one unstructured line per failed dial.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietLogger{}) }

// NewRedis returns a Redis store. It does not connect until first used;
// call Ping to check the connection.
func NewRedis(o RedisOptions) *Redis {
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.Prefix == "" {
		o.Prefix = "rampart:"
	}
	c := redis.NewClient(&redis.Options{
		Addr:                     o.Address,
		Password:                 o.Password,
		DB:                       o.DB,
		Protocol:                 2,
		DialTimeout:              o.Timeout,
		DialerRetries:            1,
		ReadTimeout:              o.Timeout,
		WriteTimeout:             o.Timeout,
		PoolTimeout:              o.Timeout,
		ContextTimeoutEnabled:    true,
		MaxRetries:               -1,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	return &Redis{c: c, prefix: o.Prefix, timeout: o.Timeout}
}

// tokenBucket refills the bucket by the time elapsed on the Redis clock and
// takes one token. ARGV: rate (tokens/s), burst. Returns {allowed, wait µs}.
var tokenBucket = redis.NewScript(`
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate / 1000000)
local ok = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
else
  wait = math.ceil((1 - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {ok, wait}
`)

// windowHit counts one event; the first one of a window sets its TTL.
// ARGV: window in ms. Returns the count.
var windowHit = redis.NewScript(`
local c = redis.call('INCR', KEYS[1])
if c == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return c
`)

func (r *Redis) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 3*r.timeout)
}

// redisErr wraps err so that it matches ErrUnavailable: whether Redis did
// not answer or answered with an error (loading, out of memory, wrong
// password), it cannot be relied on for this request.
func redisErr(op string, err error) error {
	return fmt.Errorf("state: redis %s: %w: %w", op, ErrUnavailable, err)
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.c.Ping(ctx).Err(); err != nil {
		return redisErr("ping", err)
	}
	return nil
}

// Allow implements Store.
func (r *Redis) Allow(ctx context.Context, key string, rate float64, burst int) (bool, time.Duration, error) {
	if !(rate > 0) || burst < 1 || math.IsInf(rate, 0) {
		return false, 0, fmt.Errorf("state: invalid token bucket rate %v burst %d", rate, burst)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := tokenBucket.Run(ctx, r.c, []string{r.prefix + "tb:" + key},
		strconv.FormatFloat(rate, 'g', -1, 64), burst).Int64Slice()
	if err != nil {
		return false, 0, redisErr("allow", err)
	}
	if len(res) != 2 {
		return false, 0, redisErr("allow", errors.New("unexpected script result"))
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}

// Hit implements Store.
func (r *Redis) Hit(ctx context.Context, key string, window time.Duration) (int, error) {
	if window <= 0 {
		return 0, fmt.Errorf("state: invalid window %v", window)
	}
	ms := window.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	n, err := windowHit.Run(ctx, r.c, []string{r.prefix + "hit:" + key}, ms).Int()
	if err != nil {
		return 0, redisErr("hit", err)
	}
	return n, nil
}

// Reset implements Store.
func (r *Redis) Reset(ctx context.Context, key string) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.c.Del(ctx, r.prefix+"tb:"+key, r.prefix+"hit:"+key).Err(); err != nil {
		return redisErr("reset", err)
	}
	return nil
}

// Ban implements Store.
func (r *Redis) Ban(ctx context.Context, b Ban) error {
	if b.Key == "" {
		return fmt.Errorf("state: ban without a key")
	}
	if !b.Until.IsZero() && !b.Until.After(time.Now()) {
		return nil // already over
	}
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	score := math.Inf(1)
	if !b.Until.IsZero() {
		score = float64(b.Until.UnixMilli())
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		k := r.prefix + "ban:" + b.Key
		if b.Until.IsZero() {
			p.Set(ctx, k, data, 0)
		} else {
			p.SetArgs(ctx, k, data, redis.SetArgs{ExpireAt: b.Until})
		}
		p.ZAdd(ctx, r.prefix+"bans", redis.Z{Score: score, Member: b.Key})
		return nil
	})
	if err != nil {
		return redisErr("ban", err)
	}
	return nil
}

// Banned implements Store.
func (r *Redis) Banned(ctx context.Context, key string) (Ban, bool, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	data, err := r.c.Get(ctx, r.prefix+"ban:"+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Ban{}, false, nil
	}
	if err != nil {
		return Ban{}, false, redisErr("banned", err)
	}
	var b Ban
	if err := json.Unmarshal(data, &b); err != nil {
		// Something else wrote the key; a ban is what the key says.
		b = Ban{Key: key, Reason: "unreadable"}
	}
	if !b.Active(time.Now()) {
		return Ban{}, false, nil
	}
	return b, true, nil
}

// Unban implements Store.
func (r *Redis) Unban(ctx context.Context, key string) (bool, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	var del *redis.IntCmd
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, r.prefix+"ban:"+key)
		p.ZRem(ctx, r.prefix+"bans", key)
		return nil
	})
	if err != nil {
		return false, redisErr("unban", err)
	}
	return del.Val() > 0, nil
}

// maxListed bounds how many bans Bans returns.
const maxListed = 10_000

// Bans implements Store.
func (r *Redis) Bans(ctx context.Context) ([]Ban, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	idx := r.prefix + "bans"
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := r.c.ZRemRangeByScore(ctx, idx, "-inf", now).Err(); err != nil {
		return nil, redisErr("bans", err)
	}
	keys, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: idx, Start: "(" + now, Stop: "+inf", ByScore: true, Count: maxListed}).Result()
	if err != nil {
		return nil, redisErr("bans", err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + "ban:" + k
	}
	vals, err := r.c.MGet(ctx, full...).Result()
	if err != nil {
		return nil, redisErr("bans", err)
	}
	out := make([]Ban, 0, len(vals))
	var gone []any
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			gone = append(gone, keys[i])
			continue
		}
		var b Ban
		if json.Unmarshal([]byte(s), &b) != nil {
			b = Ban{Key: keys[i], Reason: "unreadable"}
		}
		out = append(out, b)
	}
	if len(gone) > 0 {
		_ = r.c.ZRem(ctx, idx, gone...).Err()
	}
	sortBans(out)
	return out, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }
