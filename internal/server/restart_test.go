package server

import (
	"slices"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/internal/config"
)

const restartBase = `listen: "127.0.0.1:8443"
admin: {listen: "127.0.0.1:9901"}
tls: {cert: c.pem, key: k.pem}
sites:
  - host: app.example.com
    upstream: {targets: ["http://127.0.0.1:9001"]}
    routes:
      - prefix: /
`

func TestRestartOnlyChanges(t *testing.T) {
	parse := func(doc string) *config.Config {
		t.Helper()
		c, err := config.Parse("rampart.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := parse(restartBase)
	for _, tt := range []struct {
		name, prefix string
		want         []string
	}{
		{"nothing that needs a restart", "limits: {max_body: 1MiB, body_min_rate: 2KiB}\ntrusted_proxies: [10.0.0.1/32]\n", nil},
		{"listeners", "listeners: [\"127.0.0.1:8443\", \"[::1]:8443\"]\n", []string{"listen"}},
		{"logs and user", "log: {access: /var/log/a.log}\nuser: rampart\n", []string{"log.access", "user"}},
		{"net/http's bounds", "limits: {read_header_timeout: 5s, idle_timeout: 30s}\n", []string{"limits.read_header_timeout", "limits.idle_timeout"}},
		{"admin bounds", "limits: {send_timeout: 5s}\n", []string{"limits.send_timeout (admin listener)"}},
		{"state", "state: {store: redis, redis: {address: \"127.0.0.1:6379\"}}\n", []string{"state"}},
		{"cache_dir", "cache_dir: /var/cache/rampart\n", []string{"cache_dir"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			next := parse(tt.prefix + restartBase)
			if got := RestartOnlyChanges(base, next); !slices.Equal(got, tt.want) {
				t.Errorf("RestartOnlyChanges = %q, want %q", got, tt.want)
			}
		})
	}
	// A site's cache keeps the sizes it was made with; a site without a
	// cache has none to keep.
	cached := strings.Replace(restartBase, "      - prefix: /\n", "      - prefix: /\n        cache: {enabled: true}\n", 1)
	disk := "cache_dir: /var/cache/rampart\n"
	resized := disk + strings.Replace(cached, "    routes:", "    cache_size: 128MiB\n    cache_disk_size: 1GiB\n    routes:", 1)
	if got, want := RestartOnlyChanges(parse(disk+cached), parse(resized)), []string{"sites[0].cache_size", "sites[0].cache_disk_size", "sites[0].cache_disk_max_object"}; !slices.Equal(got, want) {
		t.Errorf("cache sizes: RestartOnlyChanges = %q, want %q", got, want)
	}
	uncached := disk + strings.Replace(restartBase, "    routes:", "    cache_size: 128MiB\n    cache_disk_size: 1GiB\n    routes:", 1)
	if got := RestartOnlyChanges(parse(disk+restartBase), parse(uncached)); got != nil {
		t.Errorf("cache sizes of a site without a cache: RestartOnlyChanges = %q, want none", got)
	}

	// Without an admin listener its bounds are not named.
	noAdmin := strings.Replace(restartBase, `admin: {listen: "127.0.0.1:9901"}`, `admin: {listen: "off"}`, 1)
	if got := RestartOnlyChanges(parse(noAdmin), parse("limits: {send_timeout: 5s}\n"+noAdmin)); got != nil {
		t.Errorf("admin off: RestartOnlyChanges = %q, want none", got)
	}
}
