package wscap

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Memory while tunnels open, and its return after a wave of them.
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
//
// While tunnels are being opened, the collector also runs at waveGOGC
// instead of the server's GOGC (only ever lower, never higher; GOGC=off is
// left alone). What a tunnel keeps (its TLS state) is allocated between
// the much larger garbage of its set-up; collecting more often lets the
// next set-ups reuse that garbage's memory, so the kept objects end up
// packed densely instead of scattered over pages that cannot be returned,
// and the heap's peak (and the runtime's bookkeeping, sized by the peak)
// stays lower. The server's GOGC is back when the wave settles, or after
// waveMax: a steady churn of sockets does not keep it lowered.
var (
	settleMin   int64 = 64
	settleQuiet       = 2 * linger
	settleEvery       = 2 * time.Second
	waveGOGC          = 100
	waveMax           = 10 * time.Second
)

var settle struct {
	mu        sync.Mutex
	changed   time.Time // last open or close of a tunnel
	scheduled bool      // a check is pending
	open      int64     // tunnels open at the last return
	returned  time.Time // last return

	wave      bool      // GOGC lowered to waveGOGC
	waveStart time.Time // when GOGC was lowered
	waveDone  bool      // waveMax reached: no new wave before a quiet moment
	gogc      int       // the server's GOGC, restored when the wave ends
}

// tunnelsChanged notes that a tunnel opened or closed.
func tunnelsChanged(opened bool) {
	settle.mu.Lock()
	defer settle.mu.Unlock()
	now := time.Now()
	settle.changed = now
	if opened && !settle.wave && !settle.waveDone {
		if prev := debug.SetGCPercent(waveGOGC); prev > waveGOGC {
			settle.wave, settle.waveStart, settle.gogc = true, now, prev
		} else {
			debug.SetGCPercent(prev) // already as low, or off
		}
	}
	if settle.wave && now.Sub(settle.waveStart) > waveMax {
		endWave()
		settle.waveDone = true
	}
	if !settle.scheduled {
		settle.scheduled = true
		time.AfterFunc(settleQuiet, settleCheck)
	}
}

// endWave restores the server's GOGC. Called with settle.mu held.
func endWave() {
	if settle.wave {
		debug.SetGCPercent(settle.gogc)
		settle.wave = false
	}
}

func settleCheck() {
	settle.mu.Lock()
	now := time.Now()
	wait := settleQuiet - now.Sub(settle.changed)
	if wait <= 0 {
		// Quiet: the wave of opens is over.
		endWave()
		settle.waveDone = false
	}
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
