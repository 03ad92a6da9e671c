// Package cache is pipeline stage 10: static resources (the Finesse
// desktop's JS and CSS, gadgets, CUIC assets) served from the edge and
// revalidated with the upstream, so that a flood of requests for them costs
// the upstream next to nothing.
//
// It is an RFC 9111 shared cache in memory, one Store per site with a byte
// budget and least-recently-used eviction; optionally the bodies too large
// for memory are kept in files under cache_dir, with a disk budget and LRU
// of their own (disk.go). Only GET and HEAD are served from
// it. A fresh entry is served as it is; a stale one is revalidated by exactly
// one conditional request (If-None-Match / If-Modified-Since) while the other
// clients get the stale copy (stale-while-revalidate) or wait for that one
// request; a 304 refreshes the entry without moving the body. Concurrent
// misses for one URL become one upstream request. When the upstream fails,
// the stale copy is served for stale_if_error. Responses that are private,
// no-store, set a cookie or vary on everything are never stored, and
// requests carrying Authorization or Cookie bypass the cache unless the
// route is marked public.
//
// Client cache directives (Cache-Control: no-cache, max-age=0, Pragma) are
// ignored on purpose: honouring them would let any client force an upstream
// fetch per request. The cache answers conditional requests itself and
// reports what it did in Cache-Status (RFC 9211) and in the access log
// (reqinfo CacheState). README.md documents the configuration and every
// choice.
package cache
