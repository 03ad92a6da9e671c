package cache

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// DefaultDiskMaxObject is cache_disk_max_object when the config leaves it
// out (and cache_disk_size/4 allows it).
const DefaultDiskMaxObject = 256 << 20

// DiskMaxObject is cache_disk_max_object by default for a disk budget:
// DefaultDiskMaxObject, at most a quarter of the budget.
func DiskMaxObject(budget int64) int64 { return min(DefaultDiskMaxObject, budget/4) }

// diskErrorLogEvery bounds how often one store logs a disk write error; the
// metric counts every one.
const diskErrorLogEvery = time.Minute

// DiskConfig is the optional disk tier of a store: bodies larger than the
// memory tier's largest object, up to MaxObject, are kept in files under
// SiteDir(Dir, site) within Budget bytes. A zero Budget or a nil Dir is
// no disk tier.
type DiskConfig struct {
	Dir       *Dir  // cache_dir
	Budget    int64 // the site's cache_disk_size
	MaxObject int64 // the site's cache_disk_max_object; 0: DefaultDiskMaxObject, at most Budget/4
}

// MaxMemoryObject is the largest body the memory tier of a store with the
// given budget (cache_size) keeps: budget/8, at most 8 MiB.
func MaxMemoryObject(budget int64) int64 { return min(max(budget, 0)/8, maxObjectCeiling) }

// SiteDir is the directory of one site's disk tier under cacheDir.
func SiteDir(cacheDir, site string) string { return filepath.Join(cacheDir, siteDirName(site)) }

// siteDirName is the hex SHA-256 prefix of the configured host, never a
// value from a request.
func siteDirName(site string) string {
	sum := sha256.Sum256([]byte(site))
	return hex.EncodeToString(sum[:16])
}

// diskTier is a store's disk tier. Its LRU list and counters are guarded
// by Store.mu like the memory tier's. File names are relative to cache_dir
// and every operation goes through its os.Root.
type diskTier struct {
	dir       *Dir
	name      string // the site directory, relative to cache_dir
	budget    int64
	maxObject int64
	reserved  atomic.Int64 // bytes claimed by bodies being written, at most budget

	lru    list.List   // of *entry with a body file; front is the most recently used
	bytes  int64       // file bytes held
	closed atomic.Bool // Close ran: nothing more is written

	lastErrLog atomic.Int64 // unix nanoseconds of the last logged write error
}

// newDiskTier returns the disk tier of site, or nil when cfg enables none.
// The site directory is emptied as soon as cache_dir is open: files left by
// an earlier process are not trusted (nothing records what they hold), so
// they are deleted, not used.
func newDiskTier(site string, cfg DiskConfig, memMax int64) *diskTier {
	if cfg.Dir == nil || cfg.Budget <= 0 {
		return nil
	}
	maxObj := cfg.MaxObject
	if maxObj <= 0 {
		maxObj = DiskMaxObject(cfg.Budget)
	}
	maxObj = min(maxObj, cfg.Budget/4)
	if maxObj <= memMax {
		return nil // nothing would ever go to disk
	}
	d := &diskTier{dir: cfg.Dir, name: siteDirName(site), budget: cfg.Budget, maxObject: maxObj}
	cfg.Dir.whenOpen(func(root *os.Root) { d.empty(root, site) })
	return d
}

// empty replaces the site directory by a new, empty one. Through the
// root: a link in its place is removed, never followed.
func (d *diskTier) empty(root *os.Root, site string) {
	err := root.RemoveAll(d.name)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		err = root.Mkdir(d.name, 0o700)
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		observe.Default().Event(slog.LevelWarn, "cache: cannot empty the disk tier's directory",
			slog.String("site", site), slog.String("dir", SiteDir(d.dir.Path(), site)), slog.String("error", err.Error()))
	}
}

// create opens a new temporary body file in the site directory: a random
// name, O_EXCL, mode 0600. It returns the file and its name relative to
// cache_dir.
func (d *diskTier) create() (*os.File, string, error) {
	root, err := d.dir.root()
	if err != nil {
		return nil, "", err
	}
	if err := root.Mkdir(d.name, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, "", err
	}
	name := d.name + "/" + randomName() + ".tmp"
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	return f, name, err
}

// commit turns a complete temporary file into a body file under a new
// random name in the same directory.
func (d *diskTier) commit(tmp string) (string, error) {
	root, err := d.dir.root()
	if err != nil {
		return "", err
	}
	final := d.name + "/" + randomName()
	if err := root.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

// remove deletes a file named relative to cache_dir.
func (d *diskTier) remove(name string) error {
	root, err := d.dir.root()
	if err != nil {
		return err
	}
	return root.Remove(name)
}

// open opens a body file for reading, named relative to cache_dir.
func (d *diskTier) open(name string) (*os.File, error) {
	root, err := d.dir.root()
	if err != nil {
		return nil, err
	}
	return root.Open(name)
}

// reserve claims n bytes of the budget for a body being written; false
// when the bodies being written already hold the whole budget.
func (d *diskTier) reserve(n int64) bool {
	if d.reserved.Add(n) > d.budget {
		d.reserved.Add(-n)
		return false
	}
	return true
}

func randomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// bodyFile is a committed body file: its name relative to cache_dir, and
// what it was once in place (size, device, inode and change time), so that
// a file put in its place, or this one written to, is never served. The
// change time is what an inode number reused by a new file does not
// share, and what no one but root can set.
type bodyFile struct {
	name string
	info os.FileInfo
}

// sameBody reports whether fi is still the file bf describes.
func (bf *bodyFile) sameBody(fi os.FileInfo) bool {
	if !os.SameFile(fi, bf.info) || fi.Size() != bf.info.Size() {
		return false
	}
	a, ok1 := fi.Sys().(*syscall.Stat_t)
	b, ok2 := bf.info.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Ctim == b.Ctim
}

// stat describes a committed body file.
func (d *diskTier) stat(name string) (os.FileInfo, error) {
	root, err := d.dir.root()
	if err != nil {
		return nil, err
	}
	return root.Lstat(name)
}

// fileSize is the size of e's body file, 0 when its body is in memory.
func (e *entry) fileSize() int64 {
	if e.file == nil {
		return 0
	}
	return e.file.info.Size()
}

// spill is the body of one fetch on its way to disk.
type spill struct {
	d        *diskTier
	f        *os.File
	name     string // relative to cache_dir
	n        int64
	reserved int64 // bytes claimed with diskTier.reserve
}

// release gives the spill's claim on the budget back.
func (sp *spill) release() {
	sp.d.reserved.Add(-sp.reserved)
	sp.reserved = 0
}

// discard closes and deletes the temporary file.
func (sp *spill) discard() {
	_ = sp.f.Close()
	_ = sp.d.remove(sp.name)
	sp.release()
}

// diskWriteError counts a failed disk write and logs it, at most once a
// minute per store.
func (s *Store) diskWriteError(op string, err error) {
	s.n.diskErrors.Add(1)
	s.m.diskErrors.Inc()
	d := s.disk
	now := time.Now().UnixNano()
	last := d.lastErrLog.Load()
	if now-last < int64(diskErrorLogEvery) || !d.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	observe.Default().Event(slog.LevelError, "cache: disk tier write failed; the response is passed on uncached",
		slog.String("site", s.site), slog.String("op", op), slog.String("dir", SiteDir(d.dir.Path(), s.site)), slog.String("error", err.Error()))
}

// Close stops the store's disk tier and deletes its files: a config reload
// that drops the site calls it. Requests still holding the store are
// answered as misses (or from memory); a client streaming a body file
// already open finishes it.
func (s *Store) Close() {
	s.mu.Lock()
	if s.disk != nil {
		s.disk.closed.Store(true)
	}
	s.mu.Unlock()
	s.Purge("")
}

// unlinkLocked deletes e's body file and takes it out of the disk tier.
// A client streaming the file keeps its open descriptor: the data stays
// until it closes it.
func (s *Store) unlinkLocked(e *entry) {
	if e.diskElem == nil {
		return
	}
	d := s.disk
	d.lru.Remove(e.diskElem)
	e.diskElem = nil
	d.bytes -= e.fileSize()
	if err := d.remove(e.file.name); err != nil && !errors.Is(err, os.ErrNotExist) {
		observe.Default().Event(slog.LevelWarn, "cache: cannot delete a body file",
			slog.String("site", s.site), slog.String("error", err.Error()))
	}
}

// evictDiskLocked removes entries from the cold end of the disk LRU until
// the disk budget holds, sparing keep.
func (s *Store) evictDiskLocked(keep *entry) {
	d := s.disk
	if d == nil {
		return
	}
	for d.bytes > d.budget {
		back := d.lru.Back()
		if back == nil || back == keep.diskElem {
			break
		}
		s.removeLocked(back.Value.(*entry))
		s.n.diskEvictions.Add(1)
		s.m.diskEvictions.Inc()
	}
	s.m.diskBytes.Set(float64(d.bytes))
}
