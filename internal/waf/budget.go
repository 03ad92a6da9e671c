package waf

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// The bodies the WAF holds in memory to inspect them — request bodies, and
// response bodies when response_inspection is on — are bounded together,
// not only one by one: body_limit (1 MiB) times every connection the caps
// allow (20,000) would be 20 GiB. limits.body_buffer_total is the
// process-wide budget; bytes are counted as they arrive (a large declared
// Content-Length reserves nothing, so a client must send what it holds),
// and given back when the WAF is done with them. A request body that would
// go over the budget is refused with 503 and the connection closed; a
// response body is replaced by a 503 (block mode) or sent inspected only
// as far as it was held (detect mode).

// DefaultBufferBudget is limits.body_buffer_total when it is not set.
const DefaultBufferBudget = 256 << 20

var (
	bufferBudget atomic.Int64 // bytes; set by SetBufferBudget
	bufferUsed   atomic.Int64
)

func init() { bufferBudget.Store(DefaultBufferBudget) }

// SetBufferBudget sets the process-wide budget of buffered body bytes; a
// reload may change it (bodies already held stay counted).
func SetBufferBudget(n int64) { bufferBudget.Store(n) }

var _ = promauto.With(observe.Registry).NewGaugeFunc(prometheus.GaugeOpts{
	Name: "rampart_waf_body_bytes_buffered",
	Help: "Request and response body bytes the WAF holds in memory for inspection now (bounded by limits.body_buffer_total).",
}, func() float64 { return float64(bufferUsed.Load()) })

var errBudget = errors.New("waf: body buffer budget (limits.body_buffer_total) exhausted")

// budgetReader counts what it reads against the budget.
type budgetReader struct {
	r io.Reader
	bufferClaim
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 && !b.claim(n) {
		return 0, errBudget
	}
	return n, err
}

// bufferClaim is what one buffer holds of the budget.
type bufferClaim struct{ held int64 }

// claim counts n more bytes, or reports false, counting nothing, when they
// would take the buffers over the budget.
func (c *bufferClaim) claim(n int) bool {
	if bufferUsed.Add(int64(n)) > bufferBudget.Load() {
		bufferUsed.Add(-int64(n))
		return false
	}
	c.held += int64(n)
	return true
}

// release gives back everything counted.
func (c *bufferClaim) release() {
	bufferUsed.Add(-c.held)
	c.held = 0
}
