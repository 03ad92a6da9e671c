package state

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/units"
)

// Config is the `state:` section of the config file.
type Config struct {
	// Store is "memory" (the default) or "redis".
	Store string `yaml:"store"`
	// Redis is used when Store is "redis".
	Redis RedisConfig `yaml:"redis"`
	// OnStoreFailure is "local" (the default) or "deny"; see Policy.
	OnStoreFailure Policy `yaml:"on_store_failure"`
	// MaxEntries bounds each table of the memory store, including the
	// local fallback of a Redis store. Zero means DefaultMaxEntries.
	MaxEntries int `yaml:"max_entries"`
}

// RedisConfig is the `state.redis:` section.
type RedisConfig struct {
	Address      string         `yaml:"address"`       // host:port, default 127.0.0.1:6379
	PasswordFile string         `yaml:"password_file"` // file holding the password; empty for none
	DB           int            `yaml:"db"`            // database number, 0-15 on a default Redis
	Timeout      units.Duration `yaml:"timeout"`       // per command; default 100ms
}

const (
	defaultRedisAddress = "127.0.0.1:6379"
	defaultRedisTimeout = 100 * time.Millisecond
	maxRedisTimeout     = 2 * time.Second
	maxMaxEntries       = 10_000_000
)

// WithDefaults returns c with every unset field given its default.
func (c Config) WithDefaults() Config {
	if c.Store == "" {
		c.Store = "memory"
	}
	if c.OnStoreFailure == "" {
		c.OnStoreFailure = PolicyLocal
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.Redis.Address == "" {
		c.Redis.Address = defaultRedisAddress
	}
	if c.Redis.Timeout == 0 {
		c.Redis.Timeout = units.Duration(defaultRedisTimeout)
	}
	return c
}

// Validate reports every problem in c, with unset fields taken as their
// defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	switch c.Store {
	case "memory", "redis":
	default:
		errs = append(errs, fmt.Errorf("state.store: %q is not a store; use memory or redis", c.Store))
	}
	switch c.OnStoreFailure {
	case PolicyLocal, PolicyDeny:
	default:
		errs = append(errs, fmt.Errorf("state.on_store_failure: %q is not a policy; use local or deny", c.OnStoreFailure))
	}
	if c.MaxEntries < 0 || c.MaxEntries > maxMaxEntries {
		errs = append(errs, fmt.Errorf("state.max_entries: %d is out of range 1..%d", c.MaxEntries, maxMaxEntries))
	}
	if c.Store == "redis" {
		if _, port, err := net.SplitHostPort(c.Redis.Address); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("state.redis.address: %q is not host:port", c.Redis.Address))
		}
		if c.Redis.DB < 0 {
			errs = append(errs, fmt.Errorf("state.redis.db: %d is negative", c.Redis.DB))
		}
		if t := c.Redis.Timeout.D(); t <= 0 || t > maxRedisTimeout {
			errs = append(errs, fmt.Errorf("state.redis.timeout: %v is out of range (0, %v]; a slow store stalls every request", t, maxRedisTimeout))
		}
		if c.Redis.PasswordFile != "" {
			if _, err := os.Stat(c.Redis.PasswordFile); err != nil {
				errs = append(errs, fmt.Errorf("state.redis.password_file: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Open validates c and returns the store it describes. For Redis it
// returns a Failover around it; Redis being unreachable at start is not an
// error (the failure policy applies until it answers), so that the proxy
// comes up either way.
func Open(c Config) (Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	local := NewMemory(MemoryOptions{MaxEntries: c.MaxEntries})
	if c.Store == "memory" {
		storeUp.Set(1)
		return local, nil
	}
	var password string
	if c.Redis.PasswordFile != "" {
		b, err := os.ReadFile(c.Redis.PasswordFile)
		if err != nil {
			local.Close()
			return nil, fmt.Errorf("state.redis.password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	r := NewRedis(RedisOptions{
		Address: c.Redis.Address, Password: password, DB: c.Redis.DB, Timeout: c.Redis.Timeout.D(),
	})
	f := NewFailover(r, FailoverOptions{Policy: c.OnStoreFailure, Name: "redis " + c.Redis.Address, Local: local})
	ctx, cancel := context.WithTimeout(context.Background(), 3*c.Redis.Timeout.D())
	defer cancel()
	if err := r.Ping(ctx); err != nil {
		f.failed(context.Background(), err)
	}
	return f, nil
}
