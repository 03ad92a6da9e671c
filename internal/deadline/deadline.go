// Package deadline keeps a connection's read or write deadline a timeout
// ahead of its traffic at a fraction of the timer updates: the deadline is
// moved forward only once half of it is used up, so one wait is bounded by
// between timeout/2 and timeout. The send timeouts to clients (protoguard)
// and to upstreams, and the upstream read timeout (proxy), use it.
package deadline

import (
	"sync/atomic"
	"time"
)

// Rolling is the deadline last set by its owner. The zero value has none.
type Rolling struct {
	by atomic.Int64 // Unix ns; 0: none, or someone else's
}

// Next returns the deadline to set before the next read or write, and
// false while the one set last is still good for timeout/2.
func (r *Rolling) Next(timeout time.Duration) (time.Time, bool) {
	now := time.Now()
	if time.Duration(r.by.Load()-now.UnixNano()) >= timeout/2 {
		return time.Time{}, false
	}
	by := now.Add(timeout)
	r.by.Store(by.UnixNano())
	return by, true
}

// Forget makes the next Next set a deadline again (someone else set one,
// or the owner cleared it); it reports whether one of the owner's was set.
func (r *Rolling) Forget() bool { return r.by.Swap(0) != 0 }
