package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/internal/observe"
	"github.com/rampart-proxy/rampart/internal/reqinfo"
)

// capture is the ResponseWriter handed to next for the fetches the cache
// makes itself. It keeps at most limit body bytes in memory. A body that
// grows past that goes to a temporary file of the disk tier instead, if
// the store has one and the response may be stored, up to the disk tier's
// largest object. Past the cap the write fails, the proxy aborts the copy,
// and the response is passed through uncached instead.
type capture struct {
	header   http.Header
	status   int
	body     []byte
	limit    int64
	tooLarge bool

	// The disk tier: nil, or the store's when the body may go there.
	disk     *diskTier
	storable func(status int, h http.Header) bool
	spill    *spill // the body's temporary file once it went to disk
	length   int64  // the declared Content-Length, -1 when there is none
	diskErr  error  // writing the temporary file failed
	diskOp   string // what failed: create, write
	diskBusy bool   // the bodies being written hold the disk budget
}

var errTooLarge = errors.New("cache: response larger than the largest cacheable object")

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(code int) {
	if c.status != 0 || code < 200 { // informational answers are not the response
		return
	}
	c.status = code
	c.length = -1
	if c.disk != nil && (c.storable == nil || !c.storable(code, c.header)) {
		c.disk = nil // a response that will not be stored never goes to disk
	}
	if n, err := strconv.ParseInt(c.header.Get("Content-Length"), 10, 64); err == nil {
		c.length = n
		switch {
		case n > c.limit && c.disk != nil && n <= c.disk.maxObject:
			c.startSpill()
		case n > c.limit:
			c.tooLarge = true
		case n > 0:
			// A declared length is a promise, not bytes: reserve at most
			// capturePrealloc for it.
			c.body = make([]byte, 0, min(n, capturePrealloc))
		}
	}
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	switch {
	case c.tooLarge || c.diskErr != nil || c.diskBusy:
		return 0, errTooLarge
	case c.spill == nil && int64(len(c.body)+len(p)) <= c.limit:
		c.body = append(c.body, p...)
		return len(p), nil
	case c.spill == nil && c.disk != nil && int64(len(c.body)+len(p)) <= c.disk.maxObject:
		if !c.startSpill() {
			return 0, errTooLarge
		}
	case c.spill == nil:
		c.tooLarge, c.body = true, nil
		return 0, errTooLarge
	}
	sp := c.spill
	if sp.n+int64(len(p)) > c.disk.maxObject {
		// Counted as the bytes arrive: the file never grows past the cap.
		sp.discard()
		c.spill, c.tooLarge = nil, true
		return 0, errTooLarge
	}
	n, err := sp.f.Write(p)
	sp.n += int64(n)
	if err != nil {
		c.failSpill("write", err)
		return n, err
	}
	return n, nil
}

// startSpill moves the body to a new temporary file, with the bytes held
// so far. The file's bytes are claimed from the disk budget first (the
// declared length, or the largest object when none is declared): bodies
// being written never hold more than the budget together, however many
// fetches run.
func (c *capture) startSpill() bool {
	if c.disk.closed.Load() {
		c.tooLarge = true
		return false
	}
	claim := c.disk.maxObject
	if c.length >= 0 {
		claim = c.length
	}
	if !c.disk.reserve(claim) {
		c.diskBusy = true
		return false
	}
	sp := &spill{d: c.disk, reserved: claim}
	var err error
	if sp.f, sp.name, err = c.disk.create(); err != nil {
		sp.release()
		c.diskErr, c.diskOp = err, "create"
		return false
	}
	c.spill = sp
	if len(c.body) > 0 {
		n, err := sp.f.Write(c.body)
		sp.n = int64(n)
		if err != nil {
			c.failSpill("write", err)
			return false
		}
	}
	c.body = nil
	return true
}

func (c *capture) failSpill(op string, err error) {
	c.spill.discard()
	c.spill, c.body = nil, nil
	c.diskErr, c.diskOp = err, op
}

// finishSpill closes the temporary file of a complete body and commits it
// under its final name (relative to cache_dir). A body shorter than its
// declared length (the proxy ended the copy early without saying so) is
// not committed.
func (c *capture) finishSpill() (*bodyFile, error) {
	sp := c.spill
	c.spill = nil
	if c.length >= 0 && sp.n != c.length {
		sp.discard()
		return nil, errIncomplete
	}
	defer sp.release()
	if err := sp.f.Close(); err != nil {
		_ = sp.d.remove(sp.name)
		return nil, err
	}
	final, err := c.disk.commit(sp.name)
	if err != nil {
		_ = sp.d.remove(sp.name)
		return nil, err
	}
	// What the file is once in place (and what every hit checks it still
	// is): a regular file of the bytes written.
	fi, err := c.disk.stat(final)
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() != sp.n) {
		err = errors.New("cache: body file differs from the bytes written")
	}
	if err != nil {
		_ = sp.d.remove(final)
		return nil, err
	}
	return &bodyFile{name: final, info: fi}, nil
}

// discardSpill deletes a temporary file not committed.
func (c *capture) discardSpill() {
	if c.spill != nil {
		c.spill.discard()
		c.spill = nil
	}
}

var errIncomplete = errors.New("cache: body shorter than its Content-Length")

// Flush is a no-op: the proxy flushes streamed responses, and the capture
// holds everything anyway.
func (c *capture) Flush() {}

// requestFieldsNotForwarded are the client's fields the cache keeps out of
// its own fetches: it answers conditional and range requests itself, and
// the client's cache directives do not decide what a shared fetch does.
var requestFieldsNotForwarded = []string{
	"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range",
	"Cache-Control", "Pragma", "Content-Length", "Content-Type", "Transfer-Encoding", "Expect",
}

// fetchRequest builds the request the cache sends upstream on its own
// behalf: a GET of the same URL, detached from the client's cancellation
// (other clients may be waiting for it, and a background revalidation
// outlives the request that started it), with its own copy of the request
// info, and with the validators of cond when it revalidates.
// It is built before the request's handler can return, never after.
func fetchRequest(r *http.Request, cond *entry) *http.Request {
	info := *reqinfo.Of(r)
	out := r.Clone(reqinfo.With(context.WithoutCancel(r.Context()), &info))
	out.Method = http.MethodGet
	out.Body, out.GetBody = http.NoBody, nil
	out.ContentLength, out.TransferEncoding = 0, nil
	for _, k := range requestFieldsNotForwarded {
		delete(out.Header, k)
	}
	if cond != nil {
		if cond.etag != "" {
			out.Header["If-None-Match"] = []string{cond.etag}
		}
		if lm := cond.header["Last-Modified"]; len(lm) > 0 {
			out.Header["If-Modified-Since"] = []string{lm[0]}
		}
	}
	return out
}

// result is the outcome of one fetch, shared by the requests collapsed on it.
type result struct {
	leader    *http.Request // the client request whose fetch this was; nil for a background one
	entry     *entry        // what to serve; nil when nothing usable arrived
	fwdStatus int           // what next answered; 0 when it answered nothing
	stored    bool          // a full response was stored
	failed    bool          // 5xx, transport error or abort
	pass      string        // pass the request through; the Cache-Status detail saying why
	shareable bool          // entry may be given to collapsed requests of the same variant
	reused    bool          // no fetch: a flight that just completed had stored a fresh entry
	upstream  string        // reqinfo Upstream of the fetch
}

// Cache-Status details of the results that pass the request through.
const (
	passTooLarge   = "too-large"  // over the largest object of both tiers
	passBusy       = "busy"       // maxFetches were running
	passDiskError  = "disk-error" // writing the body file failed
	passIncomplete = "incomplete" // a body bound for disk broke off
	passNotStored  = "not-stored" // a body file the store did not take (a purge ran meanwhile)
)

// usableBy reports whether a collapsed request r may be answered with the
// result of another request's fetch.
func (res *result) usableBy(r *http.Request) bool {
	return res.entry != nil && res.shareable && variantKey(res.entry.vary, r.Header) == res.entry.variant
}

// fetch sends req to next, captures the answer and updates the store:
// stores a cacheable response, refreshes cond on a 304, marks the URL
// uncacheable when the upstream says so or the object is too large.
func (h *handler) fetch(req *http.Request, k resKey, cond *entry, leader *http.Request) *result {
	s := h.s
	// A request that found the entry missing or stale may reach the flight
	// just after another flight for the same key completed: look again, so
	// that it is answered from that flight's result instead of fetching twice.
	if lk := s.lookup(k, req.Header, s.now(), h.cfg.MaxAge.D()); lk.entry != nil && lk.entry != cond &&
		lk.entry.age(s.now()) < lk.entry.lifetime {
		return &result{leader: leader, entry: lk.entry, reused: true, shareable: true}
	}
	if s.fetching.Add(1) > maxFetches {
		s.fetching.Add(-1)
		return &result{leader: leader, pass: passBusy}
	}
	defer s.fetching.Add(-1)
	gen := s.generation()
	ctx, cancel := context.WithTimeout(req.Context(), s.fetchTimeout)
	defer cancel()
	req = req.WithContext(ctx)

	cw := &capture{header: make(http.Header), limit: s.maxObject}
	if s.disk != nil {
		cw.disk = s.disk
		cw.storable = func(status int, hdr http.Header) bool { return h.policyOf(status, hdr, s.now()).storable }
	}
	defer cw.discardSpill() // a temporary file not committed goes
	answered := h.serveNext(cw, req)
	now := s.now()
	res := &result{leader: leader, fwdStatus: cw.status, upstream: reqinfo.Of(req).Upstream}
	if answered && cw.status == 0 {
		cw.status, res.fwdStatus = http.StatusOK, http.StatusOK // a handler that wrote nothing sent an empty 200
	}

	switch {
	case cw.diskErr != nil:
		s.diskWriteError(cw.diskOp, cw.diskErr)
		res.pass = passDiskError
		s.insert(h.newMarker(k, now), gen)
		h.countRevalidation(cond, http.StatusOK)
	case cw.diskBusy:
		// Transient: no marker, the next request may store it.
		res.pass = passBusy
		h.countRevalidation(cond, 0)
	case cw.tooLarge:
		res.pass = passTooLarge
		s.insert(h.newMarker(k, now), gen)
		h.countRevalidation(cond, http.StatusOK)
	case !answered && cw.spill != nil:
		// A good answer whose body broke off on its way to disk (the
		// upstream cut it, or the fetch timed out): nothing is stored, and
		// the request is passed on to be answered by the upstream itself.
		res.pass = passIncomplete
		h.countRevalidation(cond, 0)
	case !answered || cw.status >= 500:
		res.failed = true
		if answered {
			res.entry, _, res.shareable = h.newEntry(k, req, cw, now, nil)
		}
		h.countRevalidation(cond, 0)
		if cond != nil {
			cond.retryAfter.Store(now.Add(errorBackoff).UnixNano())
		}
	case cond != nil && cw.status == http.StatusNotModified:
		h.countRevalidation(cond, http.StatusNotModified)
		e, storable := h.refreshed(cond, cw.header, now)
		res.entry, res.shareable = e, storable
		switch {
		case storable:
			s.replace(cond, e, gen) // a purge since the fetch began leaves it out
		case cond.file != nil:
			// The 304 made a disk entry unstorable (no-store, private):
			// removing it deletes the body file the answer would have come
			// from, so the request is passed on (a second fetch, for a
			// change of policy that is rare).
			s.remove(cond)
			res.entry, res.pass = nil, passNotStored
		default:
			s.remove(cond)
		}
	default:
		h.countRevalidation(cond, http.StatusOK)
		var file *bodyFile
		if cw.spill != nil {
			var err error
			if file, err = cw.finishSpill(); err != nil {
				res.pass = passIncomplete
				if err != errIncomplete {
					s.diskWriteError("commit", err)
					res.pass = passDiskError
					s.insert(h.newMarker(k, now), gen) // as for a failed create or write
				}
				break
			}
		}
		e, storable, shareable := h.newEntry(k, req, cw, now, file)
		res.entry, res.shareable = e, shareable
		switch {
		case storable:
			res.stored = s.insert(e, gen)
		case !shareable:
			s.insert(h.newMarker(k, now), gen) // the URL answers with something personal or no-store
		case cond != nil:
			s.remove(cond)
		}
		if file != nil && !res.stored {
			// Only a stored body file is ever served: without the store's
			// bookkeeping nothing would delete it. (A purge during the
			// fetch, or a response found not storable when it ended.)
			_ = s.disk.remove(file.name)
			res.entry, res.pass = nil, passNotStored
		}
	}
	return res
}

func (h *handler) countRevalidation(cond *entry, status int) {
	if cond == nil {
		return
	}
	s := h.s
	switch status {
	case http.StatusNotModified:
		s.n.reval304.Add(1)
		s.m.reval304.Inc()
	case http.StatusOK:
		s.n.reval200.Add(1)
		s.m.reval200.Inc()
	default:
		s.n.revalErrors.Add(1)
		s.m.revalErr.Inc()
	}
}

// serveNext runs next, turning a panic into "no answer": a fetch runs on a
// goroutine of its own, where a panic would end the process. The proxy
// panics with http.ErrAbortHandler when the capture refuses an oversized
// body; that one is expected and not logged.
func (h *handler) serveNext(w http.ResponseWriter, r *http.Request) (answered bool) {
	defer func() {
		if p := recover(); p != nil {
			answered = false
			if p != http.ErrAbortHandler {
				observe.Default().Event(slog.LevelError, "cache fetch panicked",
					slog.String("site", h.s.site), slog.String("panic", fmt.Sprint(p)))
			}
		}
	}()
	h.next.ServeHTTP(w, r)
	return true
}

// fieldsNotStored are response fields that describe one transfer, one
// request or one hop, never the stored representation.
var fieldsNotStored = map[string]bool{
	"Age": true, "Cache-Status": true, "X-Request-Id": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Te": true, "Trailer": true, "Upgrade": true,
}

// fieldsNotUpdatedBy304 are left as stored when a 304 refreshes an entry
// (RFC 9111 §3.2): they describe the body the 304 did not send, or (for
// Set-Cookie) must never enter a shared entry.
var fieldsNotUpdatedBy304 = map[string]bool{
	"Content-Length": true, "Content-Encoding": true, "Content-Type": true,
	"Content-Range": true, "Set-Cookie": true,
}

// policy is what a response's status and fields say about storing it.
type policy struct {
	d                   directives
	vary                []string
	lifetime            time.Duration
	storable, shareable bool
}

func (h *handler) policyOf(status int, hdr http.Header, now time.Time) policy {
	d := parseCacheControl(hdr["Cache-Control"])
	vary, star := parseVary(hdr["Vary"])
	if len(hdr["Content-Encoding"]) > 0 && !slices.Contains(vary, "Accept-Encoding") {
		// An encoded body depends on Accept-Encoding whether or not the
		// upstream said so.
		vary = append(vary, "Accept-Encoding")
		slices.Sort(vary)
	}
	personal := d.private || len(hdr["Set-Cookie"]) > 0 || star ||
		slices.Contains(vary, "Cookie") || slices.Contains(vary, "Authorization")
	lifetime, explicit := freshness(d, hdr, now, h.cfg.RevalidateAfter.D())
	return policy{
		d:        d,
		vary:     vary,
		lifetime: lifetime,
		storable: !personal && !d.noStore &&
			(cacheableByDefault[status] || explicit && status < 500 && status != http.StatusPartialContent && status != http.StatusNotModified),
		shareable: !personal && (!d.noStore || status >= 500),
	}
}

// newEntry builds the entry for a captured full response and decides what
// may be done with it: store it (storable), or at least hand it to
// collapsed requests (shareable). A body that went to disk is the
// committed file (of size bytes); cw holds none then.
func (h *handler) newEntry(k resKey, req *http.Request, cw *capture, now time.Time, file *bodyFile) (e *entry, storable, shareable bool) {
	hdr := cw.header
	status := cw.status
	pol := h.policyOf(status, hdr, now)
	d := pol.d

	body := cw.body
	if cap(body)-len(body) > len(body)/8 { // grown by appends: give back the slack
		body = slices.Clone(body)
	}
	bodyLen := int64(len(body))
	if file != nil {
		body, bodyLen = nil, file.info.Size()
	}
	e = &entry{
		key:            k,
		vary:           pol.vary,
		variant:        variantKey(pol.vary, req.Header),
		status:         status,
		header:         storedHeader(hdr, nil, status, bodyLen),
		body:           slices.Clip(body),
		file:           file,
		etag:           hdr.Get("ETag"),
		stored:         now,
		initialAge:     ageHeader(hdr),
		lifetime:       pol.lifetime,
		mustRevalidate: d.mustRevalidate || d.proxyRevalidate || d.sMaxAge >= 0 || d.noCache,
	}
	if t, err := http.ParseTime(hdr.Get("Last-Modified")); err == nil {
		e.lastModified = t
	}
	e.size = e.footprint()
	e.ephemeral = !pol.storable
	return e, pol.storable, pol.shareable
}

// refreshed returns old with the fields of a 304 merged in and its age
// reset (RFC 9111 §4.3.4). The body is shared, not copied.
func (h *handler) refreshed(old *entry, hdr304 http.Header, now time.Time) (e *entry, storable bool) {
	merged := storedHeader(hdr304, old.header, old.status, old.bodyLen())
	d := parseCacheControl(merged["Cache-Control"])
	lifetime, _ := freshness(d, merged, now, h.cfg.RevalidateAfter.D())
	e = &entry{
		key:            old.key,
		vary:           old.vary,
		variant:        old.variant,
		status:         old.status,
		header:         merged,
		body:           old.body,
		file:           old.file, // the body file is shared as it is
		etag:           merged.Get("ETag"),
		stored:         now,
		initialAge:     ageHeader(hdr304),
		lifetime:       lifetime,
		mustRevalidate: d.mustRevalidate || d.proxyRevalidate || d.sMaxAge >= 0 || d.noCache,
	}
	if t, err := http.ParseTime(merged.Get("Last-Modified")); err == nil {
		e.lastModified = t
	}
	e.size = e.footprint()
	storable = !d.private && !d.noStore
	e.ephemeral = !storable
	return e, storable
}

// storedHeader builds the immutable header map of an entry: the fields of
// src (a full response, or a 304 merged over base), without the per-hop and
// per-request ones, every value slice clipped so that an Add by a later
// stage reallocates instead of writing into the shared array.
func storedHeader(src, base http.Header, status int, bodyLen int64) http.Header {
	h := make(http.Header, len(src)+len(base)+1)
	for k, v := range base {
		h[k] = v // already clipped
	}
	for k, v := range src {
		if fieldsNotStored[k] || strings.HasPrefix(k, http.TrailerPrefix) || base != nil && fieldsNotUpdatedBy304[k] {
			continue
		}
		h[k] = slices.Clip(slices.Clone(v))
	}
	delete(h, "Content-Length")
	if status != http.StatusNoContent && status != http.StatusNotModified {
		h["Content-Length"] = []string{strconv.FormatInt(bodyLen, 10)}
	}
	return h
}

// bodyLen is the length of the stored body, in memory or on disk.
func (e *entry) bodyLen() int64 {
	if e.file != nil {
		return e.fileSize()
	}
	return int64(len(e.body))
}

// footprint is what the entry counts against the budget: for a body on
// disk, everything but the body (which counts against the disk budget).
func (e *entry) footprint() int64 {
	n := int64(entryOverhead + len(e.body) + len(e.variant) +
		len(e.key.site) + len(e.key.path) + len(e.key.query))
	for k, vs := range e.header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v) + fieldOverhead)
		}
	}
	return n
}

// newMarker is a hit-for-pass marker: for revalidate_after, requests for
// the URL go straight to the upstream without being collapsed or buffered.
func (h *handler) newMarker(k resKey, now time.Time) *entry {
	e := &entry{key: k, marker: true, stored: now, lifetime: h.cfg.RevalidateAfter.D()}
	e.size = e.footprint()
	return e
}
