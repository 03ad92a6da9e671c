package lint

import (
	"os"
	"os/user"
	"strconv"

	"github.com/rampart-proxy/rampart/internal/cache"
)

// keyFiles reports private keys that other users of the host can read.
func (l *linter) keyFiles() {
	c := l.cfg
	type keyFile struct {
		path []any
		file string
	}
	var keys []keyFile
	if c.TLS.InMemory == nil && c.TLS.Key != "" {
		keys = append(keys, keyFile{p("tls", "key"), c.TLS.Key})
	}
	for i, s := range c.Sites {
		if s.TLS != nil && s.TLS.Key != "" {
			keys = append(keys, keyFile{p("sites", i, "tls", "key"), s.TLS.Key})
		}
		if s.Upstream.TLS.Key != "" {
			keys = append(keys, keyFile{p("sites", i, "upstream", "tls", "key"), s.Upstream.TLS.Key})
		}
	}
	for _, k := range keys {
		file := c.Path(k.file)
		st, err := os.Stat(file)
		if err != nil {
			continue // missing: reported by the build
		}
		switch mode := st.Mode().Perm(); {
		case mode&0o004 != 0:
			l.add(RuleKeyWorld, Error, k.path, "chmod 600 "+file, "private key "+file+" is world-readable (mode "+octal(mode)+"): every user and service on this host can impersonate the site")
		case mode&0o040 != 0:
			l.add(RuleKeyGroup, Info, k.path, "chmod 600 "+file+" unless the group is rampart's own", "private key "+file+" is readable by its group (mode "+octal(mode)+")")
		}
	}
}

// cacheDir reports a cache_dir that serve would refuse (cache.DirProblem):
// anyone else who can write there could replace the bodies rampart serves.
// A directory not made yet is fine (serve makes it, 0700).
func (l *linter) cacheDir() {
	dir := l.cfg.CacheDir
	if dir == "" {
		return
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return
	}
	uid := -1 // without user:, serve runs as whoever starts it
	if l.cfg.User != "" {
		if u, err := user.Lookup(l.cfg.User); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
		}
	}
	if problem, fix := cache.DirProblem(dir, fi, uid); problem != "" {
		l.add(RuleCacheDir, Error, p("cache_dir"), fix, problem)
	}
}

func octal(m os.FileMode) string {
	const digits = "01234567"
	return string([]byte{digits[m>>6&7], digits[m>>3&7], digits[m&7]})
}
