package cache

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// Dir is cache_dir: the directory that holds every site's disk tier. It is
// named at start (NewDir, no disk access) and opened once the process runs
// as its own user (Open, after the privilege drop and before the sandbox),
// so that nothing is ever read, written or deleted there with root's
// rights. Every file operation then goes through an os.Root on it: a
// symbolic link cannot lead a create, a rename, a delete or the emptying
// at start outside the directory.
type Dir struct {
	path string

	mu      sync.Mutex              // orders Open, whenOpen and Close
	opened  atomic.Pointer[os.Root] // nil before Open and after Close
	pending []func(*os.Root)        // the disk tiers waiting for Open
}

// NewDir names cache_dir; Open opens it.
func NewDir(path string) *Dir { return &Dir{path: path} }

// Path returns the configured path.
func (d *Dir) Path() string { return d.path }

// Open checks and opens the directory: it must be a real directory (not a
// symbolic link), owned by the user the process runs as, with no rights
// for group or others — anyone else who could write there could replace
// the bodies rampart serves. The disk tiers built before Open empty their
// site directories now.
func (d *Dir) Open() error {
	fi, err := os.Lstat(d.path)
	if err != nil {
		return fmt.Errorf("cache_dir %s: %w (create it, owned by the user rampart runs as, mode 0700)", d.path, err)
	}
	if problem, fix := DirProblem(d.path, fi, os.Geteuid()); problem != "" {
		return fmt.Errorf("%s: %s", problem, fix)
	}
	root, err := os.OpenRoot(d.path)
	if err != nil {
		return fmt.Errorf("cache_dir %s: %w", d.path, err)
	}
	d.mu.Lock()
	if d.opened.Load() != nil {
		d.mu.Unlock()
		_ = root.Close()
		return errors.New("cache_dir: opened twice")
	}
	d.opened.Store(root)
	pending := d.pending
	d.pending = nil
	d.mu.Unlock()
	for _, fn := range pending {
		fn(root)
	}
	return nil
}

// DirProblem says what makes fi, the Lstat of cache_dir at path, unfit
// for a process running as uid, and the fix; "" when nothing does. A uid
// below 0 skips the owner check. Open refuses what it reports, and
// rampart check reports the same (lint rule cache-dir-unsafe).
func DirProblem(path string, fi os.FileInfo, uid int) (problem, fix string) {
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return "cache_dir " + path + " is a symbolic link", "name the directory itself in cache_dir"
	case !fi.IsDir():
		return "cache_dir " + path + " is not a directory", "name a directory, or a path serve may create"
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Sprintf("cache_dir %s has mode %04o: others could replace the bodies rampart serves", path, fi.Mode().Perm()), "chmod 700 " + path
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && uid >= 0 && int(st.Uid) != uid {
		return fmt.Sprintf("cache_dir %s belongs to uid %d, not to the user rampart runs as (uid %d)", path, st.Uid, uid), fmt.Sprintf("chown %d %s", uid, path)
	}
	return "", ""
}

// errNotOpen: cache_dir is not open yet (Dir.Open runs before serving).
var errNotOpen = errors.New("cache_dir is not open")

// root returns the opened directory, or errNotOpen. Lock-free: a disk hit
// asks for it on every answer.
func (d *Dir) root() (*os.Root, error) {
	if r := d.opened.Load(); r != nil {
		return r, nil
	}
	return nil, errNotOpen
}

// whenOpen runs fn with the root now if the directory is open, or at Open.
func (d *Dir) whenOpen(fn func(*os.Root)) {
	d.mu.Lock()
	root := d.opened.Load()
	if root == nil {
		d.pending = append(d.pending, fn)
	}
	d.mu.Unlock()
	if root != nil {
		fn(root)
	}
}

// Close closes the directory; files already open stay readable.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	root := d.opened.Swap(nil)
	if root == nil {
		return nil
	}
	return root.Close()
}
