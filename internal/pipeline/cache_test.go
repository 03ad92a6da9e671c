package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/internal/cache"
	"github.com/rampart-proxy/rampart/internal/config"
	"github.com/rampart-proxy/rampart/internal/selfsigned"
	"github.com/rampart-proxy/rampart/internal/state"
)

const cacheConfig = `
listen: "127.0.0.1:0"
admin: {listen: "off"}
cache_dir: CACHEDIR
sites:
  - host: app.test
    upstream: {targets: ["http://127.0.0.1:9"]}
    cache_disk_size: 1GiB
    routes:
      - prefix: /js/
        cache: {enabled: true}
      - prefix: /media/
        cache: {enabled: true}
  - host: other.test
    upstream: {targets: ["http://127.0.0.1:9"]}
    cache_disk_size: 1GiB
    routes:
      - prefix: /
        cache: {enabled: true}
`

func buildWith(t *testing.T, text string, shared *Shared) {
	t.Helper()
	ca, _ := selfsigned.NewCA("cache")
	cert, key, _ := ca.Leaf("app.test")
	cfg, err := config.ParseWithCert("cache.yaml", []byte(text), &config.CertPEM{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(context.Background(), cfg, shared)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
}

func TestBuild_CacheDiskTier(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(cacheConfig, "CACHEDIR", dir, 1)

	// A pipeline built to check a config (no CacheDir in Shared) has no
	// disk tier and touches no directory.
	stray := filepath.Join(cache.SiteDir(dir, "app.test"), "stray")
	if err := os.MkdirAll(filepath.Dir(stray), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	check := &Shared{Store: state.NewMemory(state.MemoryOptions{})}
	buildWith(t, text, check)
	if st := check.Caches.Get("app.test").Stats(); st.DiskBudget != 0 {
		t.Errorf("check pipeline has a disk tier: %+v", st)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("building a pipeline to check the config touched the cache directory: %v", err)
	}

	// The server's: both cached routes of a site share one store, with the
	// disk tier of cache_dir (emptied at start).
	cacheDir := cache.NewDir(dir)
	if err := cacheDir.Open(); err != nil {
		t.Fatal(err)
	}
	shared := &Shared{Store: state.NewMemory(state.MemoryOptions{}), CacheDir: cacheDir}
	buildWith(t, text, shared)
	app := shared.Caches.Get("app.test")
	if st := app.Stats(); st.DiskBudget != 1<<30 || st.DiskMaxObject != 256<<20 {
		t.Errorf("disk tier: %+v", st)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("the site directory was not emptied at start: %v", err)
	}

	// A reload keeps the stores of the sites that stay and drops (closes)
	// the store of a site that went.
	reloaded := text[:strings.Index(text, "  - host: other.test")]
	buildWith(t, reloaded, shared)
	if shared.Caches.Get("app.test") != app {
		t.Error("the reload replaced the store of a site that stays")
	}
	if shared.Caches.Get("other.test") != nil {
		t.Error("the store of a dropped site is still registered")
	}
}
