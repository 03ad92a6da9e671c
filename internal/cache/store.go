package cache

import (
	"container/list"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	// maxObjectCeiling is the largest body stored whatever the budget;
	// bigger objects (and those over budget/8) are passed through.
	maxObjectCeiling = 8 << 20
	// entryOverhead is counted against the budget for every entry on top of
	// its body and header bytes: the entry and resource structs, the map
	// slots, the list element and the key strings' headers.
	entryOverhead = 384
	// fieldOverhead is counted per header field value (the slice and string
	// headers around the bytes themselves).
	fieldOverhead = 32
	// maxVariants bounds the variants kept per URL; the oldest goes first.
	maxVariants = 16
	// errorBackoff is how long after a failed revalidation requests within
	// stale_if_error are served the stale copy without waiting for another
	// attempt, so that a down upstream does not make every client wait.
	errorBackoff = 5 * time.Second
	// defaultFetchTimeout bounds a fetch the cache makes on its own behalf,
	// detached from the client that triggered it.
	defaultFetchTimeout = 30 * time.Second
	// maxFetches bounds the fetches a store runs at once. A fetch is
	// detached from its clients (it outlives them to fill the cache), so
	// without a bound, clients asking for many different URLs and leaving
	// could start any number of them; over the bound a request is passed
	// through uncached, tied to its own client.
	maxFetches = 64
	// capturePrealloc bounds what a fetch reserves up front for a body
	// from its Content-Length; the rest grows as bytes arrive.
	capturePrealloc = 64 << 10
)

// Store is the cache of one site: a map of entries kept within a byte
// budget by least-recently-used eviction. One Store serves all cached routes
// of its site; it is safe for concurrent use.
type Store struct {
	site      string
	budget    int64
	maxObject int64
	disk      *diskTier // nil: no disk tier

	now          func() time.Time
	fetchTimeout time.Duration

	flight   singleflight.Group
	fetching atomic.Int32 // fetches running, at most maxFetches
	m        storeMetrics
	n        counters

	mu        sync.Mutex
	resources map[resKey]*resource
	lru       list.List // of *entry; front is the most recently used
	bytes     int64
	entries   int    // stored responses
	markers   int    // hit-for-pass markers
	gen       uint64 // bumped by every purge; a fetch started before one does not store
}

type counters struct {
	hits, misses, stale, bypass     atomic.Uint64
	staleServed, evictions          atomic.Uint64
	reval304, reval200, revalErrors atomic.Uint64
	diskEvictions, diskErrors       atomic.Uint64
}

// resKey identifies a URL: the site, the canonical path and the normalised
// query. A struct of strings, so looking it up allocates nothing.
type resKey struct{ site, path, query string }

func (k resKey) String() string {
	if k.query == "" {
		return k.site + k.path
	}
	return k.site + k.path + "?" + k.query
}

// resource is everything stored for one URL: its variants, selected by the
// request fields the response's Vary names, and possibly a hit-for-pass
// marker saying the URL answered with something that must not be stored.
type resource struct {
	key      resKey
	vary     []string
	variants map[string]*entry
	marker   *entry
}

// entry is one stored response. Everything but the bookkeeping fields
// guarded by Store.mu and the two atomics is immutable once the entry is
// built, so a hit serves it without holding the lock and without copying:
// a 304 refresh builds a new entry that shares the body.
type entry struct {
	key     resKey
	variant string
	vary    []string

	status       int
	header       http.Header // prebuilt for serving; every slice has len == cap
	body         []byte
	file         *bodyFile // the body file when the body is on disk (body is then nil)
	etag         string
	lastModified time.Time // zero when the response had none

	stored         time.Time     // when it was fetched or last validated
	initialAge     time.Duration // the Age the upstream reported then
	lifetime       time.Duration
	mustRevalidate bool // never served stale
	ephemeral      bool // a response passed on without being stored
	marker         bool // hit-for-pass: no content, only "do not cache this URL for lifetime"
	size           int64

	revalidating atomic.Bool  // a background revalidation is in flight
	retryAfter   atomic.Int64 // unix nanoseconds; set after a failed revalidation

	// guarded by Store.mu
	res      *resource
	elem     *list.Element // nil once removed
	diskElem *list.Element // in the disk tier's LRU while the entry holds a body file
}

func (e *entry) age(now time.Time) time.Duration {
	return e.initialAge + max(now.Sub(e.stored), 0)
}

// NewStore returns the store of site with a budget in bytes (the site's
// cache_size). A budget of 0 or less stores nothing: Handler then passes
// every request on.
func NewStore(site string, budget int64) *Store {
	return NewDiskStore(site, budget, DiskConfig{})
}

// NewDiskStore is NewStore with a disk tier for the bodies too large for
// memory (see DiskConfig). The site's directory under disk.Dir is emptied
// now: the disk tier starts empty with every new store.
func NewDiskStore(site string, budget int64, disk DiskConfig) *Store {
	budget = max(budget, 0)
	s := &Store{
		site:         site,
		budget:       budget,
		maxObject:    MaxMemoryObject(budget),
		now:          time.Now,
		fetchTimeout: defaultFetchTimeout,
		m:            newStoreMetrics(site),
		resources:    make(map[resKey]*resource),
	}
	if budget > 0 {
		s.disk = newDiskTier(site, disk, s.maxObject)
	}
	return s
}

// Site returns the configured host the store belongs to.
func (s *Store) Site() string { return s.site }

type lookupResult struct {
	entry *entry
	pass  bool     // a hit-for-pass marker is in force
	fwd   string   // why a miss is forwarded: uri-miss, vary-miss or miss
	vary  []string // Vary of the stored variants, when there are any
}

// lookup finds the variant of k that the request header h selects. An
// entry last validated more than maxAge ago is dropped.
func (s *Store) lookup(k resKey, h http.Header, now time.Time, maxAge time.Duration) lookupResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.resources[k]
	if res == nil {
		return lookupResult{fwd: "uri-miss"}
	}
	if m := res.marker; m != nil {
		if now.Sub(m.stored) < m.lifetime {
			s.lru.MoveToFront(m.elem)
			return lookupResult{pass: true}
		}
		s.removeLocked(m)
	}
	if len(res.variants) == 0 {
		return lookupResult{fwd: "uri-miss"}
	}
	e := res.variants[variantKey(res.vary, h)]
	switch {
	case e == nil:
		return lookupResult{fwd: "vary-miss", vary: res.vary}
	case now.Sub(e.stored) >= maxAge:
		s.removeLocked(e)
		return lookupResult{fwd: "miss", vary: res.vary}
	}
	s.lru.MoveToFront(e.elem)
	if e.diskElem != nil {
		s.disk.lru.MoveToFront(e.diskElem)
	}
	return lookupResult{entry: e}
}

// generation returns the purge generation, taken before a fetch starts.
func (s *Store) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// insert stores e (a response or a marker) under its key unless a purge
// happened since gen, replacing what the URL held for the same variant, and
// evicts from the cold end until the budget holds.
func (s *Store) insert(e *entry, gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || e.size > s.budget {
		return false
	}
	if e.file != nil && (s.disk == nil || s.disk.closed.Load() || e.fileSize() > s.disk.budget) {
		return false
	}
	res := s.resources[e.key]
	if res == nil {
		res = &resource{key: e.key, variants: make(map[string]*entry)}
	}
	if m := res.marker; m != nil {
		s.removeLocked(m)
	}
	if e.marker || !slices.Equal(res.vary, e.vary) {
		for _, old := range res.variants {
			s.removeLocked(old)
		}
		res.vary = e.vary
	}
	if old := res.variants[e.variant]; old != nil {
		s.removeLocked(old)
	}
	if len(res.variants) >= maxVariants {
		var oldest *entry
		for _, v := range res.variants {
			if oldest == nil || v.stored.Before(oldest.stored) {
				oldest = v
			}
		}
		s.removeLocked(oldest)
	}
	s.resources[e.key] = res
	e.res = res
	if e.marker {
		res.marker = e
		s.markers++
	} else {
		res.variants[e.variant] = e
		s.entries++
	}
	e.elem = s.lru.PushFront(e)
	s.bytes += e.size
	if e.file != nil {
		d := s.disk
		e.diskElem = d.lru.PushFront(e)
		d.bytes += e.fileSize()
		s.evictDiskLocked(e)
	}
	s.evictLocked(e)
	return true
}

// evictLocked removes entries from the cold end until the budget holds,
// sparing keep, and publishes the byte count.
func (s *Store) evictLocked(keep *entry) {
	for s.bytes > s.budget {
		back := s.lru.Back()
		if back == nil || back == keep.elem {
			break
		}
		s.removeLocked(back.Value.(*entry))
		s.n.evictions.Add(1)
		s.m.evictions.Inc()
	}
	s.publishLocked()
}

// publishLocked sets the byte gauges.
func (s *Store) publishLocked() {
	s.m.bytes.Set(float64(s.bytes))
	if s.disk != nil {
		s.m.diskBytes.Set(float64(s.disk.bytes))
	}
}

// replace swaps a refreshed entry in for old, if old is still stored and no
// purge happened since gen.
func (s *Store) replace(old, e *entry, gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || old.elem == nil {
		return false
	}
	res := old.res
	res.variants[old.variant] = e
	e.res, e.elem = res, old.elem
	e.elem.Value = e
	old.elem = nil
	s.lru.MoveToFront(e.elem)
	if old.diskElem != nil {
		// A 304 refresh: the new entry takes over the body file as it is.
		e.diskElem, old.diskElem = old.diskElem, nil
		e.diskElem.Value = e
		s.disk.lru.MoveToFront(e.diskElem)
	}
	s.bytes += e.size - old.size
	s.evictLocked(e)
	return true
}

// remove drops e if it is still stored.
func (s *Store) remove(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(e)
	s.publishLocked()
}

func (s *Store) removeLocked(e *entry) {
	if e.elem == nil {
		return
	}
	s.lru.Remove(e.elem)
	e.elem = nil
	s.bytes -= e.size
	s.unlinkLocked(e)
	res := e.res
	if e.marker {
		if res.marker == e {
			res.marker = nil
		}
		s.markers--
	} else {
		if res.variants[e.variant] == e {
			delete(res.variants, e.variant)
		}
		s.entries--
	}
	if len(res.variants) == 0 && res.marker == nil && s.resources[res.key] == res {
		delete(s.resources, res.key)
	}
}

// removeResourceLocked drops every variant and the marker of res and
// returns how many stored responses went.
func (s *Store) removeResourceLocked(res *resource) int {
	n := len(res.variants)
	for _, e := range res.variants {
		s.removeLocked(e)
	}
	if res.marker != nil {
		s.removeLocked(res.marker)
	}
	return n
}

// invalidate drops everything stored for k; used after an unsafe method
// succeeded on the URL (RFC 9111 §4.4).
func (s *Store) invalidate(k resKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if res := s.resources[k]; res != nil {
		s.removeResourceLocked(res)
		s.publishLocked()
	}
}

// Purge drops the stored responses whose key starts with prefix and returns
// how many went. A prefix starting with "/" is matched against the path and
// query only ("/desktop/js/"); any other against the whole key, site
// included ("finesse.example.com/desktop/"). An empty prefix empties the
// store. Fetches in flight when Purge runs do not store their result.
func (s *Store) Purge(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	n := 0
	for k, res := range s.resources {
		name := k.String()
		if strings.HasPrefix(prefix, "/") {
			name = name[len(k.site):]
		}
		if strings.HasPrefix(name, prefix) {
			n += s.removeResourceLocked(res)
		}
	}
	s.publishLocked()
	return n
}

// PurgeKey drops every variant stored for one URL and reports whether there
// was any. key is the site, path and query ("finesse.example.com/a.js?v=1"),
// or the path and query alone ("/a.js?v=1") for the store's own site; the
// query is normalised as for lookups, so parameter order does not matter.
func (s *Store) PurgeKey(key string) bool { return s.purgeKey(key) > 0 }

// purgeKey is PurgeKey returning how many stored responses went.
func (s *Store) purgeKey(key string) int {
	site, rest := s.site, key
	if !strings.HasPrefix(key, "/") {
		i := strings.IndexByte(key, '/')
		if i < 0 {
			site, rest = key, "/"
		} else {
			site, rest = key[:i], key[i:]
		}
	}
	path, query, _ := strings.Cut(rest, "?")
	k := resKey{site: site, path: path, query: normalizeQuery(query)}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	res := s.resources[k]
	if res == nil {
		return 0
	}
	n := s.removeResourceLocked(res)
	s.publishLocked()
	return n
}

// Stats is a snapshot of a store, as the admin API reports it.
type Stats struct {
	Site      string `json:"site"`
	Entries   int    `json:"entries"`      // stored responses
	Markers   int    `json:"pass_markers"` // URLs remembered as uncacheable
	Bytes     int64  `json:"bytes"`
	Budget    int64  `json:"budget"`
	MaxObject int64  `json:"max_object"`

	Hits               uint64 `json:"hits"`
	Misses             uint64 `json:"misses"`
	Stale              uint64 `json:"stale"`
	Bypass             uint64 `json:"bypass"`
	StaleServed        uint64 `json:"stale_served"`
	Revalidated        uint64 `json:"revalidated_304"`
	Replaced           uint64 `json:"revalidated_200"`
	RevalidationErrors uint64 `json:"revalidation_errors"`
	Evictions          uint64 `json:"evictions"`

	// The disk tier; all zero without one.
	DiskBytes       int64  `json:"disk_bytes"` // body file bytes
	DiskBudget      int64  `json:"disk_budget"`
	DiskObjects     int    `json:"disk_objects"`
	DiskMaxObject   int64  `json:"disk_max_object"`
	DiskEvictions   uint64 `json:"disk_evictions"`
	DiskWriteErrors uint64 `json:"disk_write_errors"`
}

// Stats returns a snapshot of the store.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Site: s.site, Entries: s.entries, Markers: s.markers,
		Bytes: s.bytes, Budget: s.budget, MaxObject: s.maxObject,
	}
	if d := s.disk; d != nil {
		st.DiskBytes, st.DiskBudget, st.DiskObjects, st.DiskMaxObject = d.bytes, d.budget, d.lru.Len(), d.maxObject
	}
	s.mu.Unlock()
	st.Hits = s.n.hits.Load()
	st.Misses = s.n.misses.Load()
	st.Stale = s.n.stale.Load()
	st.Bypass = s.n.bypass.Load()
	st.StaleServed = s.n.staleServed.Load()
	st.Revalidated = s.n.reval304.Load()
	st.Replaced = s.n.reval200.Load()
	st.RevalidationErrors = s.n.revalErrors.Load()
	st.Evictions = s.n.evictions.Load()
	st.DiskEvictions = s.n.diskEvictions.Load()
	st.DiskWriteErrors = s.n.diskErrors.Load()
	return st
}
