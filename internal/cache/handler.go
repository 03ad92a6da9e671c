package cache

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// Cache-Status field values (RFC 9211) that do not depend on the request,
// built once. Their slices have len == cap, so a later Add reallocates.
var (
	csHit           = []string{"rampart; hit"}
	csHitSWR        = []string{"rampart; hit; detail=stale-while-revalidate"}
	csHitSIE        = []string{"rampart; hit; detail=stale-if-error"}
	csMethod        = []string{"rampart; fwd=method"}
	csCredentials   = []string{"rampart; fwd=bypass; detail=credentials"}
	csUpgrade       = []string{"rampart; fwd=bypass; detail=upgrade"}
	csUncacheable   = []string{"rampart; fwd=miss; detail=uncacheable"}
	csGone          = []string{"rampart; fwd=miss; detail=evicted"}
	csUnreadable    = []string{"rampart; fwd=miss; detail=disk-error"}
	defaultVaryHint = []string{"Accept-Encoding"}
)

// cacheStatus builds a forwarded Cache-Status value:
// "rampart; fwd=stale; fwd-status=304; stored; collapsed; detail=...".
func cacheStatus(fwd string, fwdStatus int, stored, collapsed bool, detail string) []string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString("rampart; fwd=")
	b.WriteString(fwd)
	if fwdStatus != 0 {
		b.WriteString("; fwd-status=")
		b.WriteString(strconv.Itoa(fwdStatus))
	}
	if stored {
		b.WriteString("; stored")
	}
	if collapsed {
		b.WriteString("; collapsed")
	}
	if detail != "" {
		b.WriteString("; detail=")
		b.WriteString(detail)
	}
	return []string{b.String()}
}

// Handler returns the cache stage of one route in front of next, the proxy
// to the route's upstream. With cfg.Enabled false, or a store without
// budget, it returns next itself.
func (s *Store) Handler(cfg RouteConfig, next http.Handler) http.Handler {
	if !cfg.Enabled || s.budget <= 0 {
		return next
	}
	return &handler{s: s, cfg: cfg.normalized(), next: next}
}

type handler struct {
	s    *Store
	cfg  RouteConfig
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	info := reqinfo.Of(r)
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		h.unsafeMethod(w, r, info)
		return
	case len(r.Header["Upgrade"]) > 0:
		h.bypass(w, r, info, csUpgrade)
		return
	case !h.cfg.Public && (len(r.Header["Authorization"]) > 0 || len(r.Header["Cookie"]) > 0):
		h.bypass(w, r, info, csCredentials)
		return
	}
	// Request Cache-Control and Pragma are deliberately not read: a shared
	// cache that let "no-cache" or "max-age=0" force an upstream fetch would
	// give every client a free lever to bypass it. See the README.

	k := s.keyOf(r, info)
	now := s.now()
	lk := s.lookup(k, r.Header, now, h.cfg.MaxAge.D())
	switch {
	case lk.pass:
		info.CacheState = "miss"
		s.n.misses.Add(1)
		s.m.miss.Inc()
		w.Header()["Cache-Status"] = csUncacheable
		h.next.ServeHTTP(w, r)
	case lk.entry == nil:
		h.miss(w, r, info, k, lk)
	default:
		h.cached(w, r, info, k, lk.entry, now)
	}
}

// keyOf is the URL part of the cache key: the site, the canonical path the
// router matched and the query with its parameters sorted.
func (s *Store) keyOf(r *http.Request, info *reqinfo.Info) resKey {
	site, path := info.Site, info.Path
	if site == "" {
		site = s.site
	}
	if path == "" {
		path = r.URL.Path
	}
	return resKey{site: site, path: path, query: normalizeQuery(r.URL.RawQuery)}
}

// cached answers from a stored entry: a hit while fresh; once stale, the
// stale copy while one request revalidates in the background, or the
// result of the (single, shared) revalidation.
func (h *handler) cached(w http.ResponseWriter, r *http.Request, info *reqinfo.Info, k resKey, e *entry, now time.Time) {
	s := h.s
	age := e.age(now)
	if age < e.lifetime {
		if err := s.serve(w, r, e, csHit, now); err != nil {
			if !errors.Is(err, errFileGone) {
				info.CacheState = "miss"
				s.n.misses.Add(1)
				s.m.miss.Inc()
				h.unreadable(w, r)
				return
			}
			// The body file went (evicted or purged) between the lookup
			// and now: a miss after all.
			s.remove(e)
			h.miss(w, r, info, k, lookupResult{fwd: "miss"})
			return
		}
		info.CacheState = "hit"
		s.n.hits.Add(1)
		s.m.hit.Inc()
		return
	}

	info.CacheState = "stale"
	s.n.stale.Add(1)
	s.m.stale.Inc()
	staleness := age - e.lifetime
	swr, sie := h.cfg.StaleWhileRevalidate.D(), h.cfg.StaleIfError.D()
	if !e.mustRevalidate {
		backingOff := now.UnixNano() < e.retryAfter.Load()
		switch {
		case staleness <= swr:
			if !backingOff {
				h.revalidateInBackground(r, k, e)
			}
			h.serveStale(w, r, e, csHitSWR, now)
			return
		case backingOff && staleness <= sie:
			h.serveStale(w, r, e, csHitSIE, now)
			return
		}
	}

	req := fetchRequest(r, e) // built here: fn may run after this handler returned
	res, leader := h.do(r, "r"+k.String()+"\x00"+e.variant, func() *result {
		return h.fetch(req, k, e, r)
	})
	if res == nil {
		return // the client went away while waiting
	}
	if res.upstream != "" {
		info.Upstream = res.upstream
	}
	switch {
	case res.reused && res.usableBy(r):
		h.answer(w, r, res.entry, csHit, s.now())
	case res.failed && !e.mustRevalidate && staleness <= sie:
		h.serveStale(w, r, e, cacheStatus("stale", res.fwdStatus, false, !leader, "stale-if-error"), s.now())
	case res.pass != "":
		w.Header()["Cache-Status"] = cacheStatus("stale", 0, false, false, res.pass)
		h.next.ServeHTTP(w, r)
	case res.entry == nil:
		w.Header()["Cache-Status"] = cacheStatus("stale", res.fwdStatus, false, !leader, "")
		observe.WriteError(w, r, http.StatusBadGateway)
	case !leader && !res.usableBy(r):
		w.Header()["Cache-Status"] = cacheStatus("stale", 0, false, false, "")
		h.next.ServeHTTP(w, r)
	default:
		h.answer(w, r, res.entry, cacheStatus("stale", res.fwdStatus, res.stored && leader, !leader, ""), s.now())
	}
}

// miss fetches the response once for all concurrent requests of the same
// URL and variant, stores it when it may and answers from it.
func (h *handler) miss(w http.ResponseWriter, r *http.Request, info *reqinfo.Info, k resKey, lk lookupResult) {
	s := h.s
	info.CacheState = "miss"
	s.n.misses.Add(1)
	s.m.miss.Inc()

	// Until a response says what it varies on, requests are collapsed by
	// the one field static resources usually vary on; a collapsed request
	// whose variant turns out different fetches on its own (usableBy).
	hint := lk.vary
	if hint == nil {
		hint = defaultVaryHint
	}
	req := fetchRequest(r, nil)
	res, leader := h.do(r, "m"+k.String()+"\x00"+variantKey(hint, r.Header), func() *result {
		return h.fetch(req, k, nil, r)
	})
	if res == nil {
		return
	}
	if res.upstream != "" {
		info.Upstream = res.upstream
	}
	switch {
	case res.reused && res.usableBy(r):
		h.answer(w, r, res.entry, csHit, s.now())
	case res.pass != "":
		w.Header()["Cache-Status"] = cacheStatus(lk.fwd, 0, false, false, res.pass)
		h.next.ServeHTTP(w, r)
	case res.entry == nil:
		w.Header()["Cache-Status"] = cacheStatus(lk.fwd, res.fwdStatus, false, !leader, "")
		observe.WriteError(w, r, http.StatusBadGateway)
	case !leader && !res.usableBy(r):
		w.Header()["Cache-Status"] = cacheStatus(lk.fwd, 0, false, false, "")
		h.next.ServeHTTP(w, r)
	default:
		fwdStatus := 0
		if res.failed {
			fwdStatus = res.fwdStatus
		}
		h.answer(w, r, res.entry, cacheStatus(lk.fwd, fwdStatus, res.stored && leader, !leader, ""), s.now())
	}
}

// do runs fn once for all requests that share key and waits for its result,
// or for the client to go away. leader reports whether r's own fn ran.
// The fetch itself is detached from every client and bounded by the
// store's fetch timeout.
func (h *handler) do(r *http.Request, key string, fn func() *result) (res *result, leader bool) {
	ch := h.s.flight.DoChan(key, func() (any, error) { return fn(), nil })
	select {
	case v := <-ch:
		res = v.Val.(*result)
		return res, res.leader == r
	case <-r.Context().Done():
		return nil, false
	}
}

// revalidateInBackground starts one conditional request for e unless one is
// already in flight. Requests that arrive after the stale-while-revalidate
// window join the same flight and wait for it.
func (h *handler) revalidateInBackground(r *http.Request, k resKey, e *entry) {
	if !e.revalidating.CompareAndSwap(false, true) {
		return
	}
	req := fetchRequest(r, e)
	ch := h.s.flight.DoChan("r"+k.String()+"\x00"+e.variant, func() (any, error) {
		return h.fetch(req, k, e, nil), nil
	})
	go func() {
		<-ch
		e.revalidating.Store(false)
	}()
}

func (h *handler) serveStale(w http.ResponseWriter, r *http.Request, e *entry, status []string, now time.Time) {
	if err := h.s.serve(w, r, e, status, now); err != nil {
		h.gone(w, r, e, err)
		return
	}
	h.s.n.staleServed.Add(1)
	h.s.m.staleServed.Inc()
}

// answer serves e, or passes the request on when e's body file cannot be
// read.
func (h *handler) answer(w http.ResponseWriter, r *http.Request, e *entry, status []string, now time.Time) {
	if err := h.s.serve(w, r, e, status, now); err != nil {
		h.gone(w, r, e, err)
	}
}

// gone passes r through when the body file of e could not be read: deleted
// (evicted, purged or replaced) between the lookup or fetch and the
// answer, in which case the entry goes too, or unreadable for now (out of
// file descriptors), in which case it stays.
func (h *handler) gone(w http.ResponseWriter, r *http.Request, e *entry, err error) {
	if !errors.Is(err, errFileGone) {
		h.unreadable(w, r)
		return
	}
	h.s.remove(e)
	w.Header()["Cache-Status"] = csGone
	h.next.ServeHTTP(w, r)
}

// unreadable passes r through, the entry kept, when its body file could
// not be opened for a reason that may pass (EMFILE, EIO).
func (h *handler) unreadable(w http.ResponseWriter, r *http.Request) {
	w.Header()["Cache-Status"] = csUnreadable
	h.next.ServeHTTP(w, r)
}

// bypass hands the request to next untouched.
func (h *handler) bypass(w http.ResponseWriter, r *http.Request, info *reqinfo.Info, status []string) {
	info.CacheState = "bypass"
	h.s.n.bypass.Add(1)
	h.s.m.bypass.Inc()
	w.Header()["Cache-Status"] = status
	h.next.ServeHTTP(w, r)
}

// unsafeMethod passes a request with another method than GET or HEAD on and,
// when it succeeded, drops what is stored for the URL (RFC 9111 §4.4): a
// POST, PUT or DELETE that changed the resource makes the copy wrong.
func (h *handler) unsafeMethod(w http.ResponseWriter, r *http.Request, info *reqinfo.Info) {
	if r.Method == http.MethodOptions || r.Method == http.MethodTrace {
		h.bypass(w, r, info, csMethod)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	h.bypass(sw, r, info, csMethod)
	if sw.status < 400 {
		h.s.invalidate(h.s.keyOf(r, info))
	}
}

// statusWriter notes the status a response was sent with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serve writes e: its prebuilt header map (the slices are shared, not
// copied), Age and Cache-Status, and the body as stored. A stored 200
// answers the client's own If-None-Match / If-Modified-Since with a 304.
// A body on disk is streamed from its file; when the file cannot be opened
// serve writes nothing and returns the error: errFileGone when it was
// deleted (the entry was evicted or purged since it was looked up) or is
// not the file written for the entry.
func (s *Store) serve(w http.ResponseWriter, r *http.Request, e *entry, status []string, now time.Time) error {
	code := e.status
	notMod := !e.ephemeral && notModified(r, e)
	if notMod {
		code = http.StatusNotModified
	}
	var f *os.File
	if e.file != nil && code != http.StatusNotModified && r.Method != http.MethodHead && e.fileSize() > 0 {
		var err error
		if f, err = s.openBody(e.file); err != nil {
			return err
		}
		defer f.Close()
	}
	h := w.Header()
	for k, v := range e.header {
		h[k] = v
	}
	h["Cache-Status"] = status
	if !e.ephemeral {
		h["Age"] = []string{strconv.FormatInt(int64(e.age(now)/time.Second), 10)}
		if notMod {
			for _, k := range fieldsNotIn304 {
				delete(h, k)
			}
		}
	}
	w.WriteHeader(code)
	switch {
	case f != nil:
		// Opened before the file could be unlinked, it is read to its end
		// whatever happens to the entry meanwhile.
		_, _ = io.CopyN(w, f, e.fileSize())
	case code != http.StatusNotModified && r.Method != http.MethodHead && len(e.body) > 0:
		_, _ = w.Write(e.body)
	}
	return nil
}

// errFileGone: a body file was deleted, or another file is in its place.
var errFileGone = errors.New("cache: body file gone")

// openBody opens a body file and checks that it is the file written for
// the entry (same device, inode and size): a file put in its place by
// someone else is never served.
func (s *Store) openBody(bf *bodyFile) (*os.File, error) {
	f, err := s.disk.open(bf.name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errFileGone
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if !bf.sameBody(fi) {
		_ = f.Close()
		observe.Default().Event(slog.LevelWarn, "cache: a body file was replaced behind rampart's back; the entry is dropped",
			slog.String("site", s.site))
		return nil, errFileGone
	}
	return f, nil
}

// fieldsNotIn304 describe the body a 304 does not carry (RFC 9110 §15.4.5).
var fieldsNotIn304 = []string{"Content-Length", "Content-Type", "Content-Encoding", "Content-Range"}

// notModified evaluates the client's conditional request against a stored
// 200: If-None-Match by weak comparison, else If-Modified-Since.
func notModified(r *http.Request, e *entry) bool {
	if e.status != http.StatusOK {
		return false
	}
	if inm := r.Header["If-None-Match"]; len(inm) > 0 {
		return etagMatch(inm, e.etag)
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" || e.lastModified.IsZero() {
		return false
	}
	t, err := http.ParseTime(ims)
	return err == nil && !e.lastModified.After(t)
}
