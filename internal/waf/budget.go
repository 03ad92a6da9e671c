package waf

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// The request bodies the WAF holds in memory to inspect them are bounded
// together, not only one by one: body_limit (1 MiB) times every connection
// the caps allow (20,000) would be 20 GiB. limits.body_buffer_total is the
// process-wide budget; bytes are counted as they arrive (a large declared
// Content-Length reserves nothing, so a client must send what it holds),
// and given back when the WAF's handler returns. A body that would go over
// the budget is refused with 503 and the connection closed.

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
	Help: "Request body bytes the WAF holds in memory for inspection now (bounded by limits.body_buffer_total).",
}, func() float64 { return float64(bufferUsed.Load()) })

var errBudget = errors.New("waf: body buffer budget (limits.body_buffer_total) exhausted")

// budgetReader counts what it reads against the budget.
type budgetReader struct {
	r    io.Reader
	held int64 // bytes counted, given back by release
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if bufferUsed.Add(int64(n)) > bufferBudget.Load() {
			bufferUsed.Add(-int64(n))
			return 0, errBudget
		}
		b.held += int64(n)
	}
	return n, err
}

// release gives back everything counted.
func (b *budgetReader) release() {
	bufferUsed.Add(-b.held)
	b.held = 0
}
