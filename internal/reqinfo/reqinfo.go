// Package reqinfo carries what the pipeline has learned about one request
// (its id, the client, the site and route that selected it) from stage to
// stage and into the logs. It is filled by the stages in pipeline order; a
// stage reads only what earlier stages wrote.
package reqinfo

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// Info is the per-request record. The pipeline allocates one per request.
type Info struct {
	ID    string    // request id, sent to the client and upstream as X-Request-ID
	Start time.Time // when the request head was read

	Peer   netip.AddrPort // TCP peer
	Client netip.Addr     // client identity: the peer, or the address a trusted proxy reported
	Exempt bool           // client is in an exempt range (skips rate limits)

	Site  string // configured host of the site that the Host header selected
	Route string // pattern of the matched route, e.g. "prefix:/api/"
	Path  string // canonical path that was matched and is sent upstream

	TLSVersion string // "1.2" or "1.3"

	Upstream   string // target that served the request
	CacheState string // cache result, when the cache stage ran
	Username   string // user named by credentials, when a stage learned it
	// NoCredentials is set by edge authentication when it challenged a
	// request that carried no credentials at all: a browser's first visit,
	// not a guess, so brute-force detection does not count it.
	NoCredentials bool
}

type ctxKey struct{}

// With returns a context carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the Info of the request, or a fresh empty one when the
// request did not pass through the pipeline (as in a unit test of one stage).
func From(ctx context.Context) *Info {
	if info, ok := ctx.Value(ctxKey{}).(*Info); ok {
		return info
	}
	return &Info{}
}

// Of is From(r.Context()).
func Of(r *http.Request) *Info { return From(r.Context()) }

// idPrefix makes ids unique across processes and restarts; the counter
// makes them unique within one. Ids correlate log lines, they are not
// secrets, so they need not be unpredictable.
var (
	idPrefix  [8]byte
	idCounter atomic.Uint64
)

func init() {
	_, _ = rand.Read(idPrefix[:])
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	idCounter.Store(binary.BigEndian.Uint64(seed[:]))
}

// NewID returns a 128-bit request id in hex: a per-process random prefix
// and a counter. One allocation, no system call.
func NewID() string {
	var b [16]byte
	copy(b[:8], idPrefix[:])
	binary.BigEndian.PutUint64(b[8:], idCounter.Add(1))
	var out [32]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// ClientAddr is the client identity the pipeline resolved, or the TCP peer
// of r when the request did not pass through it (as in a unit test of one
// stage).
func (i *Info) ClientAddr(r *http.Request) netip.Addr {
	if i.Client.IsValid() {
		return i.Client
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}
