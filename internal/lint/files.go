package lint

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
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

// cacheDir reports a cache_dir that serve would refuse: anyone else who
// can write there could replace the bodies rampart serves. A directory not
// made yet is fine (serve makes it, 0700).
func (l *linter) cacheDir() {
	dir := l.cfg.CacheDir
	if dir == "" {
		return
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return
	}
	path := p("cache_dir")
	switch mode := fi.Mode(); {
	case mode&os.ModeSymlink != 0:
		l.add(RuleCacheDir, Error, path, "name the directory itself in cache_dir", "cache_dir "+dir+" is a symbolic link")
	case !mode.IsDir():
		l.add(RuleCacheDir, Error, path, "name a directory, or a path serve may create", "cache_dir "+dir+" is not a directory")
	case mode.Perm()&0o077 != 0:
		l.add(RuleCacheDir, Error, path, "chmod 700 "+dir, "cache_dir "+dir+" has mode "+octal(mode.Perm())+": other users could replace the bodies rampart serves")
	}
	if l.cfg.User == "" {
		return // the user serve runs as is whoever starts it
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	u, err := user.Lookup(l.cfg.User)
	if !ok || err != nil {
		return // an unknown user is reported by serve
	}
	if uid, err := strconv.ParseUint(u.Uid, 10, 32); err == nil && uint64(st.Uid) != uid {
		l.add(RuleCacheDir, Error, path, fmt.Sprintf("chown %s %s", l.cfg.User, dir), fmt.Sprintf("cache_dir %s belongs to uid %d, not to user %s (uid %s), whom serve runs as", dir, st.Uid, l.cfg.User, u.Uid))
	}
}

func octal(m os.FileMode) string {
	const digits = "01234567"
	return string([]byte{digits[m>>6&7], digits[m>>3&7], digits[m&7]})
}
