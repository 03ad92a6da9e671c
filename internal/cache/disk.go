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
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// DefaultDiskMaxObject is cache_disk_max_object when the config leaves it
// out (and cache_disk_size/4 allows it).
const DefaultDiskMaxObject = 256 << 20

// diskErrorLogEvery bounds how often one store logs a disk write error; the
// metric counts every one.
const diskErrorLogEvery = time.Minute

// DiskConfig is the optional disk tier of a store: bodies larger than the
// memory tier's largest object, up to MaxObject, are kept in files under
// SiteDir(Dir, site) within Budget bytes. A zero Budget or an empty Dir is
// no disk tier.
type DiskConfig struct {
	Dir       string // cache_dir
	Budget    int64  // the site's cache_disk_size
	MaxObject int64  // the site's cache_disk_max_object; 0: DefaultDiskMaxObject, at most Budget/4
}

// MaxMemoryObject is the largest body the memory tier of a store with the
// given budget (cache_size) keeps: budget/8, at most 8 MiB.
func MaxMemoryObject(budget int64) int64 { return min(max(budget, 0)/8, maxObjectCeiling) }

// SiteDir is the directory of one site's disk tier under cacheDir: the hex
// SHA-256 prefix of the configured host, never a value from a request.
func SiteDir(cacheDir, site string) string {
	sum := sha256.Sum256([]byte(site))
	return filepath.Join(cacheDir, hex.EncodeToString(sum[:16]))
}

// diskTier is a store's disk tier. Its LRU list and counters are guarded
// by Store.mu like the memory tier's.
type diskTier struct {
	dir       string
	budget    int64
	maxObject int64

	lru     list.List // of *entry with a body file; front is the most recently used
	bytes   int64     // file bytes held
	objects int
	closed  atomic.Bool // Close ran: nothing more is written

	lastErrLog atomic.Int64 // unix nanoseconds of the last logged write error
}

// newDiskTier returns the disk tier of site, or nil when cfg enables none.
// The site directory is emptied: files left by an earlier process are not
// trusted (nothing records what they hold), so they are deleted, not used.
func newDiskTier(site string, cfg DiskConfig, memMax int64) *diskTier {
	if cfg.Dir == "" || cfg.Budget <= 0 {
		return nil
	}
	maxObj := cfg.MaxObject
	if maxObj <= 0 {
		maxObj = DefaultDiskMaxObject
	}
	maxObj = min(maxObj, cfg.Budget/4)
	if maxObj <= memMax {
		return nil // nothing would ever go to disk
	}
	d := &diskTier{dir: SiteDir(cfg.Dir, site), budget: cfg.Budget, maxObject: maxObj}
	d.empty(site)
	return d
}

// empty deletes everything in the site directory.
func (d *diskTier) empty(site string) {
	names, err := os.ReadDir(d.dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			observe.Default().Event(slog.LevelWarn, "cache: cannot read the disk tier's directory to empty it",
				slog.String("site", site), slog.String("dir", d.dir), slog.String("error", err.Error()))
		}
		return
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(d.dir, n.Name())); err != nil {
			observe.Default().Event(slog.LevelWarn, "cache: cannot delete a file left in the disk tier's directory",
				slog.String("site", site), slog.String("dir", d.dir), slog.String("error", err.Error()))
		}
	}
}

// create opens a new temporary body file in the site directory (created
// 0700 when missing): a random name, O_EXCL, mode 0600.
func (d *diskTier) create() (*os.File, error) {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(d.dir, randomName()+".tmp"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// commit turns a complete temporary file into a body file under a new
// random name in the same directory.
func (d *diskTier) commit(tmp string) (string, error) {
	final := filepath.Join(d.dir, randomName())
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

func randomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// spill is the body of one fetch on its way to disk.
type spill struct {
	f    *os.File
	path string
	n    int64
}

// discard closes and deletes the temporary file.
func (sp *spill) discard() {
	_ = sp.f.Close()
	_ = os.Remove(sp.path)
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
		slog.String("site", s.site), slog.String("op", op), slog.String("dir", d.dir), slog.String("error", err.Error()))
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
	d.bytes -= e.fileSize
	d.objects--
	if err := os.Remove(e.file); err != nil && !errors.Is(err, os.ErrNotExist) {
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
