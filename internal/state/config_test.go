package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestConfig_DecodesTheDocumentedExample(t *testing.T) {
	src := `
store: redis
redis:
  address: "10.0.0.5:6379"
  password_file: ""
  db: 2
  timeout: 50ms
on_store_failure: deny
max_entries: 200000
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{Store: "redis", Redis: RedisConfig{Address: "10.0.0.5:6379", DB: 2, Timeout: 50_000_000}, OnStoreFailure: PolicyDeny, MaxEntries: 200000}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_Validate(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"an empty section means a memory store", Config{}, ""},
		{"redis with defaults is valid", Config{Store: "redis"}, ""},
		{"redis with a password file is valid", Config{Store: "redis", Redis: RedisConfig{PasswordFile: pw}}, ""},
		{"an unknown store is refused", Config{Store: "memcached"}, "state.store"},
		{"an unknown policy is refused", Config{OnStoreFailure: "retry"}, "state.on_store_failure"},
		{"a negative cap is refused", Config{MaxEntries: -1}, "state.max_entries"},
		{"an address without a port is refused", Config{Store: "redis", Redis: RedisConfig{Address: "localhost"}}, "state.redis.address"},
		{"a timeout over 2s is refused", Config{Store: "redis", Redis: RedisConfig{Timeout: 5_000_000_000}}, "state.redis.timeout"},
		{"a missing password file is refused", Config{Store: "redis", Redis: RedisConfig{PasswordFile: pw + ".missing"}}, "state.redis.password_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
}

func TestOpen_MemoryStore(t *testing.T) {
	s, err := Open(Config{MaxEntries: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*Memory); !ok {
		t.Fatalf("got %T, want *Memory", s)
	}
	if _, err := Open(Config{Store: "bogus"}); err == nil {
		t.Fatal("an invalid config opened")
	}
}
