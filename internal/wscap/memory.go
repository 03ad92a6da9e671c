package wscap

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Memory return after a wave of tunnels.
//
// Setting a WebSocket up allocates far more than it keeps: a TLS handshake,
// an HTTP request through the pipeline, an upstream request. The server
// runs with a high GOGC (cmd/rampart/serve.go), so the heap grows to several
// times what is live before a collection, and the runtime hands freed pages
// back to the OS only slowly. A thousand sockets opened at once would keep
// the memory of their set-up long after, and closing them would return
// little.
//
// So when the number of open tunnels has moved by settleMin or more since
// the last time, and then stayed put for settleQuiet (the pumps of the new
// tunnels have parked), the memory is returned at once (debug.FreeOSMemory:
// a collection, then every free page back to the OS). At most once per
// settleEvery; a busy server with a steady churn of sockets rarely sees a
// quiet moment and is left to the normal GC pacing. The cost is two
// collections of a heap that, with only idle tunnels, is small.
var (
	settleMin   int64 = 64
	settleQuiet       = 2 * linger
	settleEvery       = 2 * time.Second
)

var settle struct {
	mu        sync.Mutex
	changed   time.Time // last open or close of a tunnel
	scheduled bool      // a check is pending
	open      int64     // tunnels open at the last return
	returned  time.Time // last return
}

// tunnelsChanged notes that a tunnel opened or closed.
func tunnelsChanged() {
	settle.mu.Lock()
	defer settle.mu.Unlock()
	settle.changed = time.Now()
	if !settle.scheduled {
		settle.scheduled = true
		time.AfterFunc(settleQuiet, settleCheck)
	}
}

func settleCheck() {
	settle.mu.Lock()
	now := time.Now()
	wait := settleQuiet - now.Sub(settle.changed)
	if next := settleEvery - now.Sub(settle.returned); next > wait {
		wait = next
	}
	if wait > 0 {
		time.AfterFunc(wait, settleCheck)
		settle.mu.Unlock()
		return
	}
	settle.scheduled = false
	open := tunnelsOpen.Load()
	delta := open - settle.open
	if delta < 0 {
		delta = -delta
	}
	if delta < settleMin {
		settle.mu.Unlock()
		return
	}
	settle.open = open
	settle.returned = now
	settle.mu.Unlock()
	// Two collections: the first moves what sync.Pools hold (set-up buffers
	// of every connection that just opened) to their victim caches, the
	// second (inside FreeOSMemory) frees them.
	runtime.GC()
	debug.FreeOSMemory()
}
